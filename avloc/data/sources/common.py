"""What the sources share: options, corpus layouts, id and label lists, the offscreen pool."""

from __future__ import annotations

import csv
import dataclasses
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from avloc.data.prepare import AudioRef, Plan, SampleSpec, Settings, Skip, prepare
from avloc.data.prepare.options import OUT, PART, SHARD_SIZE, WORKERS, Option, resolve
from avloc.data.sources.class_groups import default_groups, expand, read_groups
from avloc.errors import DataError
from avloc.media.formats import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, strip_media_ext

#: Offscreen candidates listed per sample (the first that decodes is used).
OFFSCREEN_CANDIDATES = 8
#: Train images are stored this large so the loader's resize-to-246 + random 224 crop
#: (docs/method.md) downsamples instead of upsampling; test images are stored at the model size.
TRAIN_IMAGE_SIZE = 256
TEST_IMAGE_SIZE = 224


def require_dir(path: Path | str, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: {what} not found (no such directory)")
    return path


def require_file(path: Path | str, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found (no such file)")
    return path


def read_id_list(path: Path | str) -> list[str]:
    """Ids from a text/CSV list (``vggss_144k.txt`` style): first column, one per line.

    Blank lines and ``#`` comments are ignored; a media extension on an id is dropped.
    """
    path = require_file(path, "id list")
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = next(csv.reader([line]))[0].strip()
        if first:
            ids.append(strip_media_ext(first))
    return list(dict.fromkeys(ids))


def read_labels(path: Path | str) -> dict[str, str]:
    """``id -> class`` from a CSV/TSV file.

    Two layouts: ``id,class`` rows, or the VGGSound list ``youtube_id,start_seconds,class,split``
    (the id becomes ``<youtube_id>_<start:06d>``). A header row is skipped.
    """
    path = require_file(path, "label file")
    text = path.read_text()
    delimiter = "\t" if text.count("\t") > text.count(",") else ","
    labels: dict[str, str] = {}
    for row in csv.reader(text.splitlines(), delimiter=delimiter):
        row = [c.strip() for c in row]
        if len(row) < 2 or not row[0] or row[0].startswith("#"):
            continue
        if len(row) >= 3 and row[1].lstrip("-").isdigit():
            labels[f"{row[0]}_{int(row[1]):06d}"] = row[2]
        elif row[0].lower() in ("id", "file", "name", "ytid", "youtube_id", "video_id"):
            continue
        else:
            labels[strip_media_ext(row[0])] = row[1]
    return labels


def index_files(root: Path, exts: Sequence[str]) -> dict[str, Path]:
    """``stem -> path`` of every file under ``root`` (recursive) with one of ``exts``.

    When two files share a stem, the first in sorted path order wins.
    """
    found: dict[str, Path] = {}
    wanted = {e.lower() for e in exts}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted):
        if path.is_file() and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


def find_with_stem(directory: Path, stem: str, exts: Sequence[str]) -> Path:
    """``directory/stem<ext>`` for the first ext that exists (else the first ext's path)."""
    for ext in exts:
        candidate = directory / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return directory / f"{stem}{exts[0]}"


def resolve_path(value: str, bases: Sequence[Path]) -> Path:
    """An annotation's path: absolute, or under one of ``bases`` (as given, then by basename)."""
    path = Path(value)
    if path.is_absolute() and path.exists():
        return path
    for base in bases:
        if (base / path).exists():
            return base / path
    for base in bases:
        if (base / path.name).exists():
            return base / path.name
    return path if path.is_absolute() else bases[0] / path


#: A YouTube id: 11 characters of ``[A-Za-z0-9_-]`` (so a name's first 11 characters are the id
#: even when it holds ``_`` or ``-``, e.g. ``---g-f_I2yQ_000001``).
_YTID = r"(?P<yt>[A-Za-z0-9_-]{11})"
#: The VGGSound clip names in circulation (docs/data.md, "VGGSound as it circulates"); each is
#: read as (YouTube id, start second) and written back as the canonical ``<ytid>_<start:06d>``.
CLIP_NAMES = (
    # <ytid>_<start>: VGGSound's own ids, zero-padded to 6 digits (vggsound.csv's youtube_id +
    # start, vggss.json's "file", EZ-VSL / SLAVC / FNAC metadata/vggss_144k.txt, SSL-TIE
    # metadata/train_vggss_train_144k.txt), the Hugging Face mirror Loie/VGGSound's mp4 names
    # (vggsound_NN.tar.gz: scratch/shared/beegfs/hchen/train_data/VGGSound_final/video/
    # <ytid>_<start:06d>.mp4), and the same without padding, as download scripts that write
    # f"{ytid}_{start}" name them.
    re.compile(_YTID + r"_(?P<start>\d+)"),
    # <ytid>_<start>_<end>: in seconds, zero-padded (<ytid>_000030_000040: Kinetics / AudioSet
    # style downloaders), or in milliseconds (hpDY7u8B8hE_5000_15000: SpecVQGAN's VGGSound
    # lists, hche11/VGGSound issue #6); an end more than 60 after the start means milliseconds.
    re.compile(_YTID + r"_(?P<start>\d+)_(?P<end>\d+)"),
)


def clip_id(name: str) -> str:
    """The canonical id ``<ytid>_<start:06d>`` of a VGGSound clip name (a file name or a list
    entry: folders and a media extension are dropped), whatever its padding or naming
    (:data:`CLIP_NAMES`); a name of no known pattern is returned without folder and extension.
    """
    stem = strip_media_ext(name.replace("\\", "/").rsplit("/", 1)[-1].strip())
    for pattern in CLIP_NAMES:
        match = pattern.fullmatch(stem)
        if match is None:
            continue
        start = int(match["start"])
        end = match.groupdict().get("end")
        if end is not None and int(end) - start > 60:
            start //= 1000
        return f"{match['yt']}_{start:06d}"
    return stem


#: Frame / audio folders of the extracted layouts, in the order they are looked for:
#: ``frames/`` + ``audio/`` (EZ-VSL, SLAVC, FNAC: frames/<id>.jpg, audio/<id>.wav), ``frame/``
#: (SSL-TIE's VGG-SS test set), ``total_video_frames/<id>/<n>.jpg`` + ``total_video_3s_audio/``
#: (SSL-TIE's VGGSound training set: a folder of 25 fps frames per clip, 3 s of audio).
FRAME_DIRS = ("frames", "frame", "total_video_frames")
AUDIO_DIRS = ("audio", "total_video_3s_audio")


def _first_dir(root: Path, names: Sequence[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def middle_image(folder: Path) -> Path | None:
    """The middle image of a folder of frames in name order (SSL-TIE's ``125.jpg`` of 250)."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    return images[(len(images) - 1) // 2] if images else None


class MediaLayout:
    """Where a VGGSound-style corpus keeps its media (paths made absolute), by clip id.

    ``extracted``: a frame folder + an audio folder (:data:`FRAME_DIRS`, :data:`AUDIO_DIRS`):
    ``<id>.jpg`` (any image extension) or a folder ``<id>/`` of frames (its middle image), and
    ``<id>.wav`` (any audio extension). ``video``: video files named ``<id>.<ext>`` anywhere under
    ROOT (any container PyAV reads). ``auto`` picks ``extracted`` when both folders exist. File
    names are read with :func:`clip_id`, so ``abc_30.mp4`` is found for the id ``abc_000030``.
    """

    def __init__(self, root: Path | str, layout: str = "auto"):
        self.root = require_dir(Path(root).absolute(), "corpus root")
        frames, audio = _first_dir(self.root, FRAME_DIRS), _first_dir(self.root, AUDIO_DIRS)
        if layout == "auto":
            layout = "extracted" if frames and audio else "video"
        if layout not in ("extracted", "video"):
            raise DataError(f"layout must be auto, extracted or video, got {layout!r}")
        self.layout = layout
        self._videos: dict[str, Path] = {}
        self._images: dict[str, Path] = {}
        self._audio: dict[str, Path] = {}
        if layout == "video":
            for stem, path in index_files(self.root, VIDEO_EXTS).items():
                self._videos.setdefault(clip_id(stem), path)
            return
        if frames is None or audio is None:
            raise DataError(
                f"{self.root}: no extracted layout here (a frame folder, one of "
                f"{', '.join(FRAME_DIRS)}, and an audio folder, one of {', '.join(AUDIO_DIRS)})"
            )
        self.frames, self.audio = frames, audio
        for path in sorted(frames.iterdir()):
            if path.is_dir() or path.suffix.lower() in IMAGE_EXTS:
                self._images.setdefault(clip_id(path.stem if path.is_file() else path.name), path)
        for path in sorted(audio.iterdir()):
            if path.suffix.lower() in AUDIO_EXTS and path.is_file():
                self._audio.setdefault(clip_id(path.stem), path)

    def ids(self) -> list[str]:
        return sorted(self._videos if self.layout == "video" else self._images)

    def media(self, sample_id: str) -> dict | None:
        """Keyword arguments of :class:`SampleSpec` for one id (None: its media are not on disk,
        so that nothing downstream, offscreen candidates included, counts on it)."""
        key = clip_id(sample_id)
        if self.layout == "video":
            video = self._videos.get(key)
            return None if video is None else {"video": str(video)}
        image, audio = self._images.get(key), self._audio.get(key)
        if image is not None and image.is_dir():
            image = middle_image(image)
        if image is None or audio is None:
            return None
        return {"image": str(image), "audio": str(audio)}

    def missing(self, sample_id: str) -> Skip:
        """The report line for an id whose media are not on disk (the file that is missing)."""
        if self.layout == "video":
            return Skip(sample_id, str(self.root / f"{sample_id}.*"), "no video file for this id")
        key = clip_id(sample_id)
        image = self._images.get(key)
        if image is None or (image.is_dir() and middle_image(image) is None):
            where = image if image is not None else self.frames / f"{sample_id}.jpg"
            return Skip(sample_id, str(where), "no frame file for this id")
        return Skip(sample_id, str(self.audio / f"{sample_id}.wav"), "no audio file for this id")


def class_index(names: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    ordered = sorted({n for n in names if n})
    return ordered, {n: i for i, n in enumerate(ordered)}


def _stable_seed(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def assign_offscreen(
    samples: list[SampleSpec],
    image_classes: Sequence[frozenset[int]],
    pool: Sequence[AudioRef],
    *,
    seed: int,
    extra: Sequence[Sequence[AudioRef]] | None = None,
    count: int = OFFSCREEN_CANDIDATES,
) -> tuple[list[SampleSpec], list[Skip]]:
    """Give each sample up to ``count`` offscreen candidates from ``pool``.

    A candidate's class (``AudioRef.label`` >= 0) must be absent from the sample's image
    (``image_classes[i]``: one class, or both for a two-source image) and it must not be the
    sample's own audio. Candidates are drawn with ``default_rng([seed, crc32(id)])``, so they
    depend only on the sample and the pool (sorted by the caller). ``extra[i]`` (explicit
    negatives) come first. Samples with no candidate at all are returned as skips.
    """
    labels = np.array([ref.label for ref in pool], dtype=np.int64)
    out: list[SampleSpec] = []
    skipped: list[Skip] = []
    for i, spec in enumerate(samples):
        chosen: list[AudioRef] = list(extra[i]) if extra else []
        excluded = image_classes[i]
        own = spec.sound

        def ok(j: int, excluded=excluded, own=own) -> bool:
            return labels[j] >= 0 and int(labels[j]) not in excluded and pool[j].path != own

        rng = np.random.default_rng([seed, _stable_seed(spec.id)])
        picked: list[int] = []
        if len(pool):
            for j in rng.integers(0, len(pool), size=16 * count):
                if len(picked) == count:
                    break
                if j not in picked and ok(int(j)):
                    picked.append(int(j))
            if len(picked) < count:  # rare classes: choose among all valid clips
                valid = [j for j in range(len(pool)) if ok(j) and j not in picked]
                rest = rng.permutation(len(valid))[: count - len(picked)]
                picked += [valid[k] for k in rest]
        chosen += [pool[j] for j in picked]
        if not chosen:
            skipped.append(
                Skip(spec.id, spec.sound, "no offscreen clip of a class absent from the image")
            )
            continue
        out.append(dataclasses.replace(spec, offscreen=tuple(chosen)))
    return out, skipped


def drop_duplicates(samples: list[SampleSpec], where: str) -> tuple[list[SampleSpec], list[Skip]]:
    """Keep the first sample of each id; later ones are reported."""
    seen: set[str] = set()
    kept, skipped = [], []
    for spec in samples:
        if spec.id in seen:
            skipped.append(Skip(spec.id, where, "duplicate id (the first entry is kept)"))
            continue
        seen.add(spec.id)
        kept.append(spec)
    return kept, skipped


#: The corpus options of :class:`SourceBase`, declared once; a source's command offers those its
#: ``shared`` names.
SHARED_OPTIONS = {
    option.name: option
    for option in (
        Option("--image-size", "Stored image side (default 224 test, 256 train)", min=8),
        Option("--seed", "Seed of the offscreen clip choice"),
        Option("--offscreen/--no-offscreen", "Store an offscreen clip (test sets)"),
        Option(
            "--class-groups",
            'JSON {"group": ["class", ...]}: classes of one group are never each other\'s '
            "offscreen clip (default: person and human-voice classes form one group)",
            type=Path | None,
        ),
        Option("--min-audio-seconds", "Shorter audio files are skipped", min=0.0),
        Option(
            "--audio-seconds",
            "Seconds of audio stored per sample, centred on the frame (10: the whole "
            "VGGSound clip, which --protocol vssl_eval's windows are cut from)",
        ),
    )
}
#: ``--layout`` of the sources that read a :class:`MediaLayout`.
LAYOUT = Option("--layout", "auto | video | extracted (frames/ + audio/)")


class SourceBase:
    """Options every source shares; subclasses implement :meth:`plan`.

    A subclass declares its command ``avloc prepare <source>``: ``options`` (its constructor's
    own keyword arguments, in help order), ``shared`` (which of :data:`SHARED_OPTIONS` it
    offers), ``summary`` (the command's help) and ``example`` (a command line).
    """

    source = ""
    split = "test"
    summary = ""
    example = ""
    options: tuple[Option, ...] = ()
    shared: tuple[str, ...] = tuple(SHARED_OPTIONS)

    @classmethod
    def command_options(cls) -> tuple[Option, ...]:
        """The options of ``avloc prepare <source>``, resolved, in help order: the source's
        required ones, ``--out``, its other ones, ``--workers``, ``--shard-size``, the shared
        corpus options it offers, ``--part``."""
        own = resolve(cls, *cls.options)
        shared = resolve(SourceBase, *(SHARED_OPTIONS[name] for name in cls.shared))
        out, workers, shard_size, part = resolve(prepare, OUT, WORKERS, SHARD_SIZE, PART)
        return (
            *(o for o in own if o.required),
            out,
            *(o for o in own if not o.required),
            workers,
            shard_size,
            *shared,
            part,
        )

    def __init__(
        self,
        *,
        image_size: int | None = None,
        seed: int = 0,
        offscreen: bool = True,
        min_audio_seconds: float = 1.0,
        class_groups: str | Path | None = None,
        audio_seconds: float = 3.0,
    ):
        default = TRAIN_IMAGE_SIZE if self.split == "train" else TEST_IMAGE_SIZE
        self.image_size = int(image_size or default)
        if self.image_size < 8:
            raise DataError(f"--image-size must be at least 8, got {self.image_size}")
        self.seed = int(seed)
        self.offscreen = bool(offscreen)
        self.min_audio_seconds = float(min_audio_seconds)
        self.class_groups = Path(class_groups) if class_groups else None
        #: seconds of audio stored per sample, centred on the frame (``--audio-seconds``)
        self.audio_seconds = float(audio_seconds)
        if not 0.1 <= self.audio_seconds <= 60:
            raise DataError(f"--audio-seconds must be between 0.1 and 60, got {audio_seconds}")

    def settings(
        self,
        samples: Sequence[SampleSpec],
        fields: Sequence[str],
        *,
        clip_seconds: float | None = None,
        check_silence: bool = True,
    ) -> Settings:
        return Settings(
            image_size=self.image_size,
            clip_seconds=self.audio_seconds if clip_seconds is None else clip_seconds,
            fields=tuple(fields),
            max_boxes=max((len(s.boxes) for s in samples), default=0),
            max_present=max((len(s.present) for s in samples), default=0),
            min_audio_seconds=self.min_audio_seconds,
            check_silence=check_silence,
        )

    def with_offscreen(
        self,
        samples: list[SampleSpec],
        class_names: Sequence[str],
        notes: list[str],
        skipped: list[Skip],
        *,
        image_classes: Sequence[frozenset[int]] | None = None,
        pool: Sequence[AudioRef] | None = None,
        extra: Sequence[Sequence[AudioRef]] | None = None,
    ) -> tuple[list[SampleSpec], bool]:
        """Attach offscreen candidates when the corpus allows it; returns (samples, enabled)."""
        if not self.offscreen:
            notes.append("offscreen pool: off (--no-offscreen)")
            return samples, False
        all_extra = bool(extra) and all(extra)
        if len(class_names) < 2 and not all_extra:
            why = "no class labels" if not class_names else "only one class"
            notes.append(f"offscreen pool: off ({why}; every clip could share the image's class)")
            return samples, False
        if image_classes is None:
            image_classes = [
                frozenset(s.present or ((s.label,) if s.label >= 0 else ())) for s in samples
            ]
        image_classes = self.grouped(image_classes, class_names, notes)
        if pool is None:
            pool = [
                AudioRef(s.sound, s.audio_center if not s.center_on_frame else s.time, s.label)
                for s in samples
            ]
        kept, lost = assign_offscreen(samples, image_classes, pool, seed=self.seed, extra=extra)
        skipped += lost
        notes.append(
            f"offscreen pool: clips of other classes from this corpus ({len(kept)} samples)"
        )
        return kept, True

    def grouped(
        self,
        image_classes: Sequence[frozenset[int]],
        class_names: Sequence[str],
        notes: list[str],
    ) -> list[frozenset[int]]:
        """Each image's classes plus those of the same class group (:mod:`.class_groups`)."""
        if self.class_groups is not None:
            groups = read_groups(self.class_groups, class_names)
            where = str(self.class_groups)
        else:
            groups = default_groups(class_names)
            where = "default: person and human-voice classes as one"
        shared = sum(groups.count(g) > 1 for g in groups)
        notes.append(f"class groups: {where} ({shared} of {len(class_names)} classes grouped)")
        return [expand(classes, groups) for classes in image_classes]

    def plan(self) -> Plan:  # pragma: no cover - every source overrides it
        raise NotImplementedError
