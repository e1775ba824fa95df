"""What the sources share: options, corpus layouts, id and label lists, the offscreen pool."""

from __future__ import annotations

import csv
import dataclasses
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


class MediaLayout:
    """Where a VGGSound-style corpus keeps its media (paths made absolute).

    ``extracted``: ``ROOT/frames/<id>.jpg`` + ``ROOT/audio/<id>.wav`` (other image/audio
    extensions are found too). ``video``: video files named ``<id>.<ext>`` anywhere under ROOT
    (any container PyAV reads). ``auto`` picks ``extracted`` when both folders exist.
    """

    def __init__(self, root: Path | str, layout: str = "auto"):
        self.root = require_dir(Path(root).absolute(), "corpus root")
        if layout == "auto":
            extracted = (self.root / "frames").is_dir() and (self.root / "audio").is_dir()
            layout = "extracted" if extracted else "video"
        if layout not in ("extracted", "video"):
            raise DataError(f"layout must be auto, extracted or video, got {layout!r}")
        self.layout = layout
        self._videos = index_files(self.root, VIDEO_EXTS) if layout == "video" else None

    def ids(self) -> list[str]:
        if self._videos is not None:
            return sorted(self._videos)
        return sorted(
            {p.stem for p in (self.root / "frames").iterdir() if p.suffix.lower() in IMAGE_EXTS}
        )

    def media(self, sample_id: str) -> dict | None:
        """Keyword arguments of :class:`SampleSpec` for one id (None: its media are not on disk,
        so that nothing downstream, offscreen candidates included, counts on it)."""
        if self._videos is not None:
            video = self._videos.get(sample_id)
            return None if video is None else {"video": str(video)}
        image = find_with_stem(self.root / "frames", sample_id, IMAGE_EXTS)
        audio = find_with_stem(self.root / "audio", sample_id, AUDIO_EXTS)
        if not (image.is_file() and audio.is_file()):
            return None
        return {"image": str(image), "audio": str(audio)}

    def missing(self, sample_id: str) -> Skip:
        """The report line for an id whose media are not on disk (the file that is missing)."""
        if self._videos is not None:
            return Skip(sample_id, str(self.root / f"{sample_id}.*"), "no video file for this id")
        image = find_with_stem(self.root / "frames", sample_id, IMAGE_EXTS)
        if not image.is_file():
            return Skip(sample_id, str(image), "no frame file for this id")
        audio = find_with_stem(self.root / "audio", sample_id, AUDIO_EXTS)
        return Skip(sample_id, str(audio), "no audio file for this id")


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
