"""The built-in synthetic data set ("synthetic scenes"): pure numpy, deterministic, fast.

There are ``K`` classes (``num_classes``, default 8, at most ``len(CLASSES)`` = 12). A class is a
visual object (a shape with its own colour and texture) paired with a sound (a distinct spectral
signature). A scene is an image with 1..``max_objects`` objects of *different* classes whose
boxes do not intersect, on a cluttered background, and an audio clip with the sound of *one* of
them (the "sounding object") mixed with white or pink noise. Several objects are visible, so
which one sounds can only be told by listening.

Sample ``i`` of a split depends only on ``(seed, split, i)`` (its random streams are spawned from
``np.random.SeedSequence([seed, split_id, i])``), so any range of samples can be made on its own,
in any order or in parallel, and the same arguments give byte-identical arrays.

Arrays of one scene (``S = config.image_size``, ``T = config.num_samples`` =
``round(sample_rate * clip_seconds)``, ``M = config.max_objects``):

============================  ============  ==========================================
key                           dtype, shape  meaning
============================  ============  ==========================================
``image``                     uint8 (S,S,3) RGB, rows top to bottom
``audio``                     float32 (T,)  mono waveform at ``sample_rate`` Hz, peak in
                                            [0.5, 0.95] (so always within [-1, 1])
``label``                     int32 ()      class of the sounding object
``box``                       float32 (4,)  sounding object's tight box ``x1, y1, x2, y2``
                                            in [0, 1]: pixel edges / S, x2 and y2 are the
                                            exclusive edges (``(max index + 1) / S``)
``mask``                      uint8 (S,S)   1 on the sounding object's pixels, else 0
``present``                   int32 (M,)    classes of the objects in the image, -1 padded
``object_boxes``              float32 (M,4) tight boxes of those objects (same order as
                                            ``present``), rows of -1 as padding
``offscreen_audio`` (test)    float32 (T,)  the sound of a class *not* in the image, with
                                            its own noise mix
``offscreen_label`` (test)    int32 ()      that class
============================  ============  ==========================================

Objects are drawn at a random size (the shape's square window is 19%-36% of the image side),
position and a small rotation (+-15 degrees). The background is a smooth random colour
gradient with low-contrast blobs, lines and speckle. The sound of a class varies per sample
(frequency jitter +-5%, phases, modulation offsets, level); the noise is white or pink at an
SNR drawn uniformly from ``config.snr_db`` (signal and noise RMS over the whole clip).

Generating one 128x128 scene with 3 s of 16 kHz audio takes about 2 ms on one CPU core (3 ms
for a test scene, which has two clips; 224x224 adds about 1 ms): :func:`make_scene` is
vectorised numpy throughout. Byte-identical output is guaranteed for the same numpy version and
machine; a different BLAS kernel (the background uses a small matrix product) may change an
image by a grey level here and there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from avloc.errors import RecipeError

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "SPLITS",
    "ClassSpec",
    "SyntheticConfig",
    "class_sound",
    "make_scene",
    "make_scenes",
    "scene_fields",
]

#: Split names and the id that enters the seed sequence.
SPLITS: dict[str, int] = {"train": 0, "test": 1}

_TAU = 2.0 * math.pi


# ---------------------------------------------------------------------------------------------
# classes
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


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

    Invalid values raise :class:`avloc.errors.RecipeError` naming the setting.
    """

    image_size: int = 128
    sample_rate: int = 16000
    clip_seconds: float = 3.0
    num_classes: int = 8
    max_objects: int = 3
    snr_db: tuple[float, float] = (0.0, 20.0)

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
    _split_id(split)
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


def _split_id(split: str) -> int:
    try:
        return SPLITS[split]
    except (KeyError, TypeError):
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}") from None


# ---------------------------------------------------------------------------------------------
# sounds
# ---------------------------------------------------------------------------------------------
# Everything heavy runs in float32; phases that grow large are reduced to [0, 1) cycles in
# float64 first. Noise uses random bytes (uniform white noise) or random-phase spectra, which
# are several times cheaper than Gaussian draws and just as white / band-limited.


@functools.lru_cache(maxsize=8)
def _time_axis(num_samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(num_samples, dtype=np.float64) / sample_rate
    t.flags.writeable = False
    return t


def _frac(x: np.ndarray) -> np.ndarray:
    """``x mod 1`` as float32 (``np.mod`` on floats is slow)."""
    return (x - np.floor(x)).astype(np.float32)


def _sin(cycles: np.ndarray) -> np.ndarray:
    """``sin(2 pi cycles)`` in float32, exact for large ``cycles`` (float64 input)."""
    return np.sin(_frac(cycles) * np.float32(_TAU))


def _uniform(rng: np.random.Generator, shape, dtype=np.uint16) -> np.ndarray:
    """Uniform float32 noise in [0, 1) from raw random bytes (fast)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype)
    return (raw.astype(np.float32) * np.float32(1.0 / (np.iinfo(dtype).max + 1))).reshape(shape)


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance uniform white noise, float32 ``(n,)``."""
    return (_uniform(rng, n) - np.float32(0.5)) * np.float32(math.sqrt(12.0))


def _spectral_noise(rng: np.random.Generator, n: int, k0: int, k1: int, tilt: float = 0.0):
    """Random-phase noise with rfft bins ``k0..k1`` (inclusive) of magnitude ``k ** -tilt``."""
    nbins = n // 2 + 1
    k0, k1 = max(1, k0), min(nbins - 1, k1)
    k1 = max(k0, k1)
    phase = _uniform(rng, k1 - k0 + 1) * np.float32(_TAU)
    spec = np.zeros(nbins, dtype=np.complex64)
    spec[k0 : k1 + 1] = np.cos(phase) + 1j * np.sin(phase)
    if tilt:
        spec[k0 : k1 + 1] *= np.arange(k0, k1 + 1, dtype=np.float32) ** np.float32(-tilt)
    return np.fft.irfft(spec, n=n).astype(np.float32, copy=False)


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Noise with a flat spectrum in [lo, hi] Hz."""
    return _spectral_noise(rng, n, math.ceil(lo * n / sr), math.floor(hi * n / sr))


def _sweep(t, rng, f0, f1, period):
    """Repeating exponential sweeps from f0 to f1 Hz, one per ``period`` s, faded at the ends."""
    pos = t * (1.0 / period) + rng.uniform()
    tau = _frac(pos)  # position within the sweep, [0, 1)
    k = math.log(f1 / f0)
    cycles = np.float32(f0 * period / k) * np.expm1(tau * np.float32(k))  # < a few hundred
    env = np.clip(np.minimum(tau, 1.0 - tau) * np.float32(period / 0.015), 0.0, 1.0)
    return np.sin(cycles * np.float32(_TAU)) * env


def _harmonics(t, rng, sr, f0, amps, vibrato=0.004):
    """Sum of harmonics ``k * f0`` with amplitudes ``amps[k]``, random phases, slight vibrato."""
    fv = rng.uniform(4.0, 6.0)
    wobble = np.float32(vibrato * f0 / (_TAU * fv)) * _sin(fv * t + rng.uniform())
    base = _frac(f0 * t) + wobble  # cycles of the fundamental, small and float32-exact
    out = np.zeros(t.shape, dtype=np.float32)
    for k, a in amps.items():
        if a and k * f0 < 0.45 * sr:
            out += np.float32(a) * np.sin((k * base + np.float32(rng.uniform())) * np.float32(_TAU))
    return out


def _square_integral(t, rng, rate):
    """Integral over time of a 50%-duty square wave in {0, 1} at ``rate`` Hz (random phase), in
    units of 1/rate seconds: switching a frequency with it keeps the phase continuous."""
    pos = t * rate + rng.uniform()
    whole = np.floor(pos)
    return whole * 0.5 + np.minimum(pos - whole, 0.5)


def _s_harm220(t, rng, sr, j):
    return _harmonics(t, rng, sr, 220.0 * j, {k: 1.0 / k for k in range(1, 7)})


def _s_odd587(t, rng, sr, j):
    return _harmonics(t, rng, sr, 587.0 * j, {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7})


def _s_hiss(t, rng, sr, j):
    return _band_noise(rng, t.size, sr, 5000.0 * j, 7000.0 * j)


def _s_rumble(t, rng, sr, j):
    return _band_noise(rng, t.size, sr, 80.0 * j, 300.0 * j)


def _s_upchirp(t, rng, sr, j):
    return _sweep(t, rng, 300.0 * j, 1200.0 * j, 0.5 * rng.uniform(0.9, 1.1))


def _s_downchirp(t, rng, sr, j):
    return _sweep(t, rng, 4000.0 * j, 2000.0 * j, 0.4 * rng.uniform(0.9, 1.1))


def _s_am1k(t, rng, sr, j):
    am = 1.0 + np.float32(0.9) * _sin(4.0 * rng.uniform(0.9, 1.1) * t + rng.uniform())
    return am * _sin(1000.0 * j * t + rng.uniform())


def _s_pings(t, rng, sr, j):
    rate = 6.0 * rng.uniform(0.9, 1.1)
    pos = t * rate + rng.uniform()
    idx = np.floor(pos)
    tau = ((pos - idx) / rate).astype(np.float32)  # seconds since the last ping
    amp = rng.uniform(0.6, 1.0, int(idx[-1]) + 1).astype(np.float32)[idx.astype(np.intp)]
    env = amp * np.exp(tau * np.float32(-1.0 / 0.012))
    return env * np.sin(tau * np.float32(_TAU * 2500.0 * j))


def _s_siren(t, rng, sr, j):
    fc, dev, fm = 750.0 * j, 150.0 * j, 0.5 * rng.uniform(0.8, 1.2)
    # instantaneous frequency fc + dev * sin(2 pi fm t + p)
    sweep = np.cos(_TAU * fm * t + rng.uniform(0, _TAU)).astype(np.float32)
    return np.sin((_frac(fc * t) - np.float32(dev / (_TAU * fm)) * sweep) * np.float32(_TAU))


def _s_buzz(t, rng, sr, j):
    # band-limited pulse train, harmonics up to 3 kHz:
    # sum_{k=1..N} cos(k theta) = sin((N + 1/2) theta) / (2 sin(theta / 2)) - 1/2
    f0 = 90.0 * j
    n = int(min(3000.0, 0.45 * sr) // f0)
    theta = _frac(f0 * t + rng.uniform()) * np.float32(_TAU)
    den = np.float32(2.0) * np.sin(np.float32(0.5) * theta)
    small = np.abs(den) < 1e-4
    out = np.sin(np.float32(n + 0.5) * theta) / np.where(small, np.float32(1.0), den) - 0.5
    return np.where(small, np.float32(n), out)


def _s_beeps(t, rng, sr, j):
    rate = 3.0 * rng.uniform(0.9, 1.1)
    frac = _frac(t * rate + rng.uniform())  # on for the first half of each period
    gate = np.clip(np.minimum(frac, 0.5 - frac) * np.float32(1.0 / (0.005 * rate)), 0.0, 1.0)
    return gate * _sin(3200.0 * j * t + rng.uniform())


def _s_trill(t, rng, sr, j):
    rate = 8.0 * rng.uniform(0.9, 1.1)
    f_lo, f_hi = 1300.0 * j, 1700.0 * j
    high_time = _square_integral(t, rng, rate)  # time on the high tone, in 1/rate s
    return _sin(f_lo * t + ((f_hi - f_lo) / rate) * high_time + rng.uniform())


_SOUNDS: dict[str, Callable] = {
    "harm220": _s_harm220,
    "hiss": _s_hiss,
    "upchirp": _s_upchirp,
    "am1k": _s_am1k,
    "odd587": _s_odd587,
    "pings": _s_pings,
    "downchirp": _s_downchirp,
    "rumble": _s_rumble,
    "siren": _s_siren,
    "buzz": _s_buzz,
    "beeps": _s_beeps,
    "trill": _s_trill,
}


def class_sound(
    label: int, rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()
) -> np.ndarray:
    """The clean sound of class ``label``: float32 ``(T,)``, peak in [0.5, 0.95].

    Every call draws a new variant from ``rng``: all frequencies scaled by one factor in
    [0.95, 1.05], random phases, modulation/repetition rates (+-10%) and offsets, and level.
    """
    if int(label) != label or not 0 <= label < config.num_classes:
        raise ValueError(f"label must be an integer in [0, {config.num_classes}), got {label!r}")
    t = _time_axis(config.num_samples, config.sample_rate)
    jitter = rng.uniform(0.95, 1.05)
    x = _SOUNDS[CLASSES[int(label)].sound](t, rng, config.sample_rate, jitter)
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(x)))
    x *= np.float32(rng.uniform(0.5, 0.95) / peak) if peak > 0 else np.float32(0.0)
    return x


def _background_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Unit-RMS noise, float32 ``(n,)``: white, or pink (power ~ 1/f from 20 Hz up), 50/50."""
    if rng.random() < 0.5:
        return _white(rng, n)
    x = _spectral_noise(rng, n, math.ceil(20.0 * n / sample_rate), n // 2, tilt=0.5)
    return x / np.float32(np.sqrt(np.mean(np.square(x), dtype=np.float64)) + 1e-12)


def _noisy_sound(label: int, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Class sound + noise at a random SNR, peak-normalised to a random peak in [0.5, 0.95]."""
    clean = class_sound(label, rng, config)
    rms = np.sqrt(np.mean(np.square(clean), dtype=np.float64))
    snr = rng.uniform(*config.snr_db)
    mix = _background_noise(rng, clean.size, config.sample_rate)
    mix *= np.float32(rms * 10.0 ** (-snr / 20.0))
    mix += clean
    mix *= np.float32(rng.uniform(0.5, 0.95) / (float(np.max(np.abs(mix))) + 1e-12))
    return np.clip(mix, -1.0, 1.0, out=mix)


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def _floor_mod(x: np.ndarray, p: float) -> np.ndarray:
    return x - np.floor(x * (1.0 / p)) * p


def _polygon(n: int, vertex_angle: float):
    """Regular n-gon with circumradius 1 and a vertex at ``vertex_angle`` (radians)."""
    mid = vertex_angle + math.pi / n  # direction of an edge midpoint
    apothem = math.cos(math.pi / n)
    sector = _TAU / n

    def inside(u, v):
        phi = _floor_mod(np.arctan2(v, u) - (mid - 0.5 * sector), sector) - 0.5 * sector
        return np.hypot(u, v) * np.cos(phi) <= apothem

    return inside


def _star(u, v, points=5, inner=0.45):
    # Fold every point into the half-sector [0, pi/points] next to the outer vertex that points
    # up (image y grows downwards, so "up" is angle -pi/2), then test it against the edge from
    # that vertex (1, 0) to the inner vertex at angle pi/points.
    r = np.hypot(u, v)
    sector = _TAU / points
    a = np.abs(_floor_mod(np.arctan2(v, u) + 0.5 * math.pi + 0.5 * sector, sector) - 0.5 * sector)
    qx, qy = r * np.cos(a), r * np.sin(a)
    px, py = inner * math.cos(math.pi / points), inner * math.sin(math.pi / points)
    return (qx - 1.0) * py - qy * (px - 1.0) >= 0.0  # same side of the edge as the centre


def _heart(u, v):
    x, y = 1.35 * u, 0.15 - 1.35 * v
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _crescent(u, v):
    return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + (v + 0.15) ** 2 >= 0.8**2)


# Shapes on the unit disc (u right, v down, both in [-1, 1] across the object's square window):
# every shape lies within radius 1, so a rotated shape stays inside its window.
_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.7071,
    "triangle": _polygon(3, -0.5 * math.pi),
    "diamond": lambda u, v: np.abs(u) * (1.0 / 0.62) + np.abs(v) <= 1.0,
    "cross": _cross,
    "ring": _ring,
    "star": _star,
    "hexagon": _polygon(6, 0.0),
    "ellipse": lambda u, v: u * u + (v * (1.0 / 0.55)) ** 2 <= 1.0,
    "crescent": _crescent,
    "pentagon": _polygon(5, -0.5 * math.pi),
    "heart": _heart,
}


def _texture(kind: str, pu: np.ndarray, pv: np.ndarray, period: float, rng) -> np.ndarray:
    """Boolean pattern (True = secondary tone) in the object's pixel frame ``(pu, pv)``."""
    ou, ov = rng.uniform(0.0, period, 2)
    half = 0.5 * period
    if kind == "solid":
        return np.zeros(np.broadcast_shapes(pu.shape, pv.shape), dtype=bool)
    if kind == "stripes":  # diagonal, in the object's frame
        return (np.floor((pu + pv + ou) * (1.0 / (half * math.sqrt(2.0)))) % 2) == 1
    if kind == "checker":
        return ((np.floor((pu + ou) * (1.0 / half)) + np.floor((pv + ov) * (1.0 / half))) % 2) == 1
    if kind == "dots":
        du = _floor_mod(pu + ou, period) - half
        dv = _floor_mod(pv + ov, period) - half
        return du * du + dv * dv <= (0.32 * period) ** 2
    raise ValueError(f"unknown texture {kind!r}")


def _secondary(colour: np.ndarray) -> np.ndarray:
    """The texture's second tone: darker for light colours, lighter for dark ones."""
    luma = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return colour * np.float32(0.55) if luma > 100 else colour + (255.0 - colour) * np.float32(0.45)


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    """Float32 (s, s, 3) cluttered background: colour gradient + soft blobs + thin lines.

    (Speckle is added by :func:`make_scene` over the whole image, objects included.)
    """
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s
    # img[y, x, c] = sum_j rows[j, y] * cols[j, x, c]: one matmul for the bilinear gradient
    # between four random, mostly grey corner colours (j = 0, 1) and for soft axis-aligned
    # elliptical blobs (j >= 2, a separable Gaussian each with its own colour offset)
    corners = (rng.uniform(70.0, 185.0) + rng.uniform(-45.0, 45.0, (2, 2, 3))).astype(np.float32)
    n = int(rng.integers(3, 8))
    cx, cy = rng.uniform(0.0, 1.0, (2, n, 1))
    sx, sy = rng.uniform(0.03, 0.15, (2, n, 1))
    amp = rng.uniform(-28.0, 28.0, (n, 1)) + rng.uniform(-8.0, 8.0, (n, 3))
    rows = np.empty((n + 2, s), dtype=np.float32)
    cols = np.empty((n + 2, s, 3), dtype=np.float32)
    rows[0], rows[1] = 1.0 - grid, grid
    cols[0] = corners[0, 0] + grid[:, None] * (corners[0, 1] - corners[0, 0])
    cols[1] = corners[1, 0] + grid[:, None] * (corners[1, 1] - corners[1, 0])
    rows[2:] = np.exp(-0.5 * ((grid - cy) / sy) ** 2)
    cols[2:] = np.exp(-0.5 * ((grid - cx) / sx) ** 2)[:, :, None] * amp[:, None, :]
    img = np.empty((s, s * 3), dtype=np.float32)
    rows_t, cols = np.ascontiguousarray(rows.T), cols.reshape(n + 2, s * 3)
    step = max(1, 65536 // (3 * s))  # small blocks: multi-threaded BLAS only slows this down
    for y in range(0, s, step):
        np.matmul(rows_t[y : y + step], cols, out=img[y : y + step])
    img = img.reshape(s, s, 3)

    # thin low-contrast line segments, drawn by PIL as offsets around 128
    n = int(rng.integers(2, 7))
    p0 = rng.uniform(-0.1, 1.1, (n, 2)) * s
    p1 = p0 + rng.uniform(-0.8, 0.8, (n, 2)) * s
    width = rng.integers(1, 3, n)
    offset = rng.uniform(-25.0, 25.0, (n, 1)) + rng.uniform(-6.0, 6.0, (n, 3))
    layer = Image.new("RGB", (s, s), (128, 128, 128))
    draw = ImageDraw.Draw(layer)
    for i in range(n):
        fill = tuple(int(round(128 + o)) for o in offset[i])
        draw.line([tuple(p0[i]), tuple(p1[i])], fill=fill, width=int(width[i]))
    img += np.asarray(layer, dtype=np.float32) - np.float32(128.0)
    return img


def _place(rng: np.random.Generator, n: int, s: int) -> list[tuple[int, int, int]]:
    """Up to ``n`` square windows ``(x0, y0, side)`` inside the image, at least 1 px apart.

    A window that does not fit among the others after 32 random tries is shrunk (x0.8) and
    tried again, up to 4 times, then dropped (the first one always fits).
    """
    placed: list[tuple[int, int, int]] = []
    for _ in range(n):
        side = max(6, int(round(rng.uniform(0.19, 0.36) * s)))
        for _shrink in range(4):
            xs = rng.integers(0, s - side + 1, 32)
            ys = rng.integers(0, s - side + 1, 32)
            ok = np.ones(32, dtype=bool)
            for x0, y0, w in placed:
                ok &= (
                    (xs >= x0 + w + 1)
                    | (xs + side + 1 <= x0)
                    | (ys >= y0 + w + 1)
                    | (ys + side + 1 <= y0)
                )
            hit = np.flatnonzero(ok)
            if hit.size:
                placed.append((int(xs[hit[0]]), int(ys[hit[0]]), side))
                break
            side = max(6, int(side * 0.8))
    return placed


def _draw_object(
    img: np.ndarray, label: int, window: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """Paint object ``label`` into its window of ``img`` (in place); return its (S, S) mask."""
    spec = CLASSES[label]
    x0, y0, side = window
    half = 0.5 * side
    # unit disc -> 96% of the window, so that round shapes do not get flat sides at its edges
    c = (np.arange(side, dtype=np.float32) + np.float32(0.5 - half)) * np.float32(
        1.0 / (0.96 * half)
    )
    u, v = c[None, :], c[:, None]
    a = math.radians(rng.uniform(-15.0, 15.0))
    ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
    ur, vr = ca * u + sa * v, ca * v - sa * u  # (side, side) each
    local = np.asarray(_SHAPES[spec.shape](ur, vr), dtype=bool)
    if not local.any():  # cannot happen for side >= 6; keeps the mask non-empty regardless
        local[side // 2, side // 2] = True
    colour = np.asarray(spec.colour, dtype=np.float32) * np.float32(rng.uniform(0.92, 1.08))
    colour = np.clip(colour, 0.0, 255.0)
    period = max(4.0, side / rng.uniform(4.0, 6.0))
    scale = np.float32(0.96 * half)  # back to pixels
    alt = _texture(spec.texture, ur * scale, vr * scale, period, rng)
    tile = np.where(alt[:, :, None], _secondary(colour), colour)
    view = img[y0 : y0 + side, x0 : x0 + side]
    view[local] = tile[local]
    mask = np.zeros(img.shape[:2], dtype=np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = local
    return mask


def _tight_box(mask: np.ndarray) -> np.ndarray:
    """Normalised ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of the non-zero pixels of ``mask``."""
    s = mask.shape[0]
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    box = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
    return np.asarray(box, dtype=np.float32) / np.float32(s)


# ---------------------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------------------


def make_scene(
    index: int, *, seed: int, split: str, config: SyntheticConfig = SyntheticConfig()
) -> dict[str, np.ndarray]:
    """Scene ``index`` of ``split`` ("train" or "test"); keys, shapes and dtypes as in the module
    docstring (test scenes add ``offscreen_audio`` and ``offscreen_label``).

    Depends only on ``(seed, split, index)`` and ``config``; ``seed`` and ``index`` are
    non-negative integers.
    """
    split_id = _split_id(split)
    if int(index) != index or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    r_img, r_audio, r_off = (
        np.random.default_rng(child)
        for child in np.random.SeedSequence([int(seed), split_id, int(index)]).spawn(3)
    )
    s, m, k = config.image_size, config.max_objects, config.num_classes

    # layout: classes, windows, which one sounds
    n = int(r_img.integers(1, m + 1))
    windows = _place(r_img, n, s)
    n = len(windows)
    labels = r_img.choice(k, size=n, replace=False)
    source = int(r_img.integers(n))

    img = _background(r_img, s)
    masks = [_draw_object(img, int(c), w, r_img) for c, w in zip(labels, windows, strict=True)]
    # speckle over everything: uniform in +-amp levels per pixel and channel; then round
    amp = np.float32(r_img.uniform(3.0, 10.0))
    img += _uniform(r_img, (s, s, 3), np.uint8) * (2 * amp) + (np.float32(0.5) - amp)
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)

    present = np.full(m, -1, dtype=np.int32)
    present[:n] = labels
    object_boxes = np.full((m, 4), -1.0, dtype=np.float32)
    for i, mk in enumerate(masks):
        object_boxes[i] = _tight_box(mk)

    label = int(labels[source])
    out = {
        "image": image,
        "audio": _noisy_sound(label, r_audio, config),
        "label": np.asarray(label, dtype=np.int32),
        "box": object_boxes[source].copy(),
        "mask": masks[source],
        "present": present,
        "object_boxes": object_boxes,
    }
    if split == "test":
        absent = np.setdiff1d(np.arange(k), labels)
        off = int(r_off.choice(absent))
        out["offscreen_audio"] = _noisy_sound(off, r_off, config)
        out["offscreen_label"] = np.asarray(off, dtype=np.int32)
    return out


def make_scenes(
    start: int, stop: int, *, seed: int, split: str, config: SyntheticConfig = SyntheticConfig()
) -> dict[str, np.ndarray]:
    """Scenes ``start .. stop-1`` of ``split`` stacked along a new leading axis ``(N, ...)``.

    Identical to stacking :func:`make_scene` for each index, so ranges can be made separately
    (shards, workers, resuming) and concatenated.
    """
    if int(start) != start or int(stop) != stop or not 0 <= start <= stop:
        raise ValueError(f"need integers 0 <= start <= stop, got start={start!r}, stop={stop!r}")
    fields = scene_fields(split, config)
    out = {key: np.empty((stop - start, *shape), dtype) for key, (shape, dtype) in fields.items()}
    for j, i in enumerate(range(start, stop)):
        scene = make_scene(i, seed=seed, split=split, config=config)
        for key in fields:
            out[key][j] = scene[key]
    return out
