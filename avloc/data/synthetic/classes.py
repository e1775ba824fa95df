"""The classes of the synthetic world: shape, colour, texture and sound of each, and the
splits; the scene configuration (:class:`SyntheticConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avloc.errors import RecipeError

#: Split names and the id that enters the seed sequence.
SPLITS: dict[str, int] = {"train": 0, "test": 1}

TAU = 2.0 * math.pi


@dataclass(frozen=True)
class ClassSpec:
    """One class: what the object looks like and what it sounds like."""

    shape: str  #: one of the shape names in ``_SHAPES``
    colour_name: str
    colour: tuple[int, int, int]  #: RGB of the primary tone
    texture: str  #: "solid", "stripes", "checker" or "dots"
    sound: str  #: key of the sound generator in ``_SOUNDS``
    sound_name: str  #: human-readable description of the sound

    @property
    def name(self) -> str:
        """E.g. ``"red solid circle / harmonic 220 Hz"``."""
        return f"{self.colour_name} {self.texture} {self.shape} / {self.sound_name}"


#: The classes, in label order. The first 8 (the default ``num_classes``) are the most distinct.
CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec("circle", "red", (220, 40, 40), "solid", "harm220", "harmonic 220 Hz"),
    ClassSpec("square", "blue", (40, 80, 225), "stripes", "hiss", "hiss 5-7 kHz"),
    ClassSpec("triangle", "green", (40, 175, 60), "checker", "upchirp", "up-chirp 0.3-1.2 kHz"),
    ClassSpec("diamond", "yellow", (240, 215, 40), "dots", "am1k", "AM tone 1 kHz @ 4 Hz"),
    ClassSpec("cross", "magenta", (215, 50, 205), "solid", "odd587", "odd harmonics 587 Hz"),
    ClassSpec("ring", "cyan", (40, 210, 220), "stripes", "pings", "2.5 kHz pings @ 6 Hz"),
    ClassSpec("star", "orange", (250, 140, 25), "checker", "downchirp", "down-chirp 4-2 kHz"),
    ClassSpec("hexagon", "purple", (115, 45, 170), "dots", "rumble", "rumble 80-300 Hz"),
    ClassSpec("ellipse", "white", (245, 245, 245), "stripes", "siren", "siren 600-900 Hz"),
    ClassSpec("crescent", "brown", (125, 75, 35), "solid", "buzz", "buzz 90 Hz"),
    ClassSpec("pentagon", "pink", (250, 150, 195), "checker", "beeps", "beeps 3.2 kHz @ 3 Hz"),
    ClassSpec("heart", "teal", (15, 115, 105), "dots", "trill", "trill 1.3/1.7 kHz @ 8 Hz"),
)

#: Human-readable class names, ``CLASS_NAMES[label]``.
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic scenes.

    Attributes:
        image_size: side ``S`` of the square image, pixels (32..4096).
        sample_rate: audio sample rate, Hz (16000..192000; the highest class band reaches
            7.35 kHz).
        clip_seconds: clip length, seconds (0.1..600).
        num_classes: number of classes ``K`` used, the first ``K`` of :data:`CLASSES` (2..12).
        max_objects: most objects per image (1..6, and < ``num_classes`` so that an
            off-screen class always exists).
        snr_db: (low, high) range of the uniform signal-to-noise ratio of the audio, dB.
        object_scale: (low, high) range of the uniform side of an object's square window, as a
            fraction of ``image_size`` (0.05..0.9; a window that does not fit among the others
            shrinks, see :func:`avloc.data.synthetic.images.place`).

    Invalid values raise :class:`avloc.errors.RecipeError` naming the setting.
    """

    image_size: int = 128
    sample_rate: int = 16000
    clip_seconds: float = 3.0
    num_classes: int = 8
    max_objects: int = 3
    snr_db: tuple[float, float] = (0.0, 20.0)
    object_scale: tuple[float, float] = (0.19, 0.36)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> RecipeError:
            return RecipeError(f"synthetic config: {name} {why}, got {getattr(self, name)!r}")

        def integer(name: str, lo: int, hi: int) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)):
                raise bad(name, f"must be an integer in [{lo}, {hi}]")
            if not math.isfinite(value) or int(value) != value or not lo <= value <= hi:
                raise bad(name, f"must be an integer in [{lo}, {hi}]")
            object.__setattr__(self, name, int(value))
            return int(value)

        try:
            snr = tuple(float(x) for x in self.snr_db)
        except (TypeError, ValueError):
            raise bad("snr_db", "must be two numbers (low, high)") from None
        if len(snr) != 2 or not all(math.isfinite(x) for x in snr) or snr[0] > snr[1]:
            raise bad("snr_db", "must be two finite numbers (low, high) with low <= high")
        object.__setattr__(self, "snr_db", snr)
        try:
            scale = tuple(float(x) for x in self.object_scale)
        except (TypeError, ValueError):
            raise bad("object_scale", "must be two numbers (low, high)") from None
        if len(scale) != 2 or not (0.05 <= scale[0] <= scale[1] <= 0.9):
            raise bad("object_scale", "must be two fractions with 0.05 <= low <= high <= 0.9")
        object.__setattr__(self, "object_scale", scale)
        integer("image_size", 32, 4096)
        integer("sample_rate", 16000, 192000)
        try:
            seconds = float(self.clip_seconds)
        except (TypeError, ValueError):
            raise bad("clip_seconds", "must be a number") from None
        if not 0.1 <= seconds <= 600.0:  # also rejects NaN
            raise bad("clip_seconds", "must be in [0.1, 600] seconds")
        object.__setattr__(self, "clip_seconds", seconds)
        classes = integer("num_classes", 2, len(CLASSES))
        integer("max_objects", 1, min(6, classes - 1))

    @property
    def num_samples(self) -> int:
        """Audio clip length ``T`` in samples."""
        return round(self.sample_rate * self.clip_seconds)


def scene_fields(split: str, config: SyntheticConfig = SyntheticConfig()) -> dict:
    """``{key: (shape, dtype)}`` of one scene of ``split`` (no leading sample axis)."""
    split_number(split)
    s, t, m = config.image_size, config.num_samples, config.max_objects
    fields = {
        "image": ((s, s, 3), np.dtype(np.uint8)),
        "audio": ((t,), np.dtype(np.float32)),
        "label": ((), np.dtype(np.int32)),
        "box": ((4,), np.dtype(np.float32)),
        "mask": ((s, s), np.dtype(np.uint8)),
        "present": ((m,), np.dtype(np.int32)),
        "object_boxes": ((m, 4), np.dtype(np.float32)),
    }
    if split == "test":
        fields["offscreen_audio"] = ((t,), np.dtype(np.float32))
        fields["offscreen_label"] = ((), np.dtype(np.int32))
    return fields


def split_number(split: str) -> int:
    try:
        return SPLITS[split]
    except (KeyError, TypeError):
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}") from None
