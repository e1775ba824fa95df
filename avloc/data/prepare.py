"""The preparation engine: a planned corpus -> resumable, atomic HDF5 shards and a report.

``prepare(preparer, out)`` runs every source of :mod:`avloc.data.sources` the same way:

1. **Plan.** ``preparer.plan()`` reads the annotations and lists the corpus without decoding any
   media: one :class:`SampleSpec` per output row (paths, frame time, label, boxes as annotated,
   offscreen candidates) and the problems already visible (:class:`Skip`: an id with no media
   file, an unusable annotation entry, a duplicate id). A missing corpus root or annotation file
   is a :class:`~avloc.errors.DataError` (one line, nothing written).
2. **Fixed shard assignment.** Samples are sorted by id and cut into chunks of ``shard_size``;
   chunk ``i`` becomes ``OUT/<source>-<split>-<i:05d>.h5``. Each chunk has a fingerprint
   (SHA-256 of its sample specs, the class names and the settings), stored in the shard
   (attribute ``plan_fingerprint``) and in its state file ``OUT/.prepare/<shard>.json`` (the
   rows written and the samples skipped, with reasons).
3. **Work.** A chunk whose state file and shard carry its fingerprint is complete and kept.
   The samples of the other chunks are decoded one by one, in ``workers`` processes (spawned,
   ``workers=1`` decodes in this process), in id order; when a chunk's last sample is back its
   state file is written, then its shard, both atomically (``.name.tmp-<pid>`` then rename).
   A ``kill -9`` therefore loses at most the chunks in progress, and a re-run writes exactly the
   shards an uninterrupted run writes (decoding is deterministic), with no duplicates.
4. **Parts** (``part = (I, N)``, ``avloc prepare ... --part I/N``): the chunks are cut into N
   contiguous runs of (almost) equal length and only the I-th (1-based) is worked on, so the N
   jobs of a cluster's job array prepare a corpus in parallel into one directory. Every part
   makes the same plan and numbers chunks the same way, so the parts write disjoint shard
   names and together exactly the shards of an unsplit run; readers see them as one set. A part
   removes only its own chunks' leftovers.
5. **Report.** A sample whose inputs are broken (missing, truncated or non-media files, corrupt
   images, audio that is silent or shorter than ``min_audio_seconds``, boxes outside the image,
   no usable offscreen clip) is left out and listed in ``OUT/report.tsv`` (``id``, ``file``,
   ``reason``; sorted by id), rewritten atomically at the end of every run from the plan and
   all state files, so a resumed run lists the problems of earlier runs too. ``OUT/prepare.json``
   summarises the run. Broken inputs never stop the run. A part writes both files for every
   part finished so far (read from the state files, and read again after writing, so that the
   last part to finish leaves the complete report).

What one row holds (see :mod:`avloc.data.shards` for the schema): the frame resized (bicubic,
aspect not kept) to ``image_size``; ``clip_seconds`` of 16 kHz mono audio centred on the frame's
time (the middle of the file when there is none) as int16 PCM; ``label``; ``boxes``
``(K, 4)`` normalised float32, NaN-padded to the corpus's largest K (:mod:`avloc.data.boxes`);
``box_group`` (K,) int32 (the annotator of each box); ``present`` (classes visible in the
image, -1 padded); ``group`` (rows sharing an image); ``mask`` ``(S, S)`` uint8 (nearest
resize, 1 = object); ``time`` float32 (the frame's time in seconds within the stored audio);
``offscreen_audio``/``offscreen_label`` (a clip of a class absent from the image: the first
candidate of the plan that decodes and is neither silent nor too short).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avloc.data.boxes import BoxError, normalise_boxes, pad_boxes
from avloc.data.shards import SCHEMA_VERSION, read_info, shard_name, to_pcm16, write_shard
from avloc.errors import AvlocError, DataError, MediaError
from avloc.utils.files import atomic_write_bytes, atomic_write_json

__all__ = [
    "AudioRef",
    "Plan",
    "PrepareResult",
    "SampleSpec",
    "Settings",
    "Skip",
    "parse_part",
    "part_range",
    "prepare",
    "process_sample",
    "read_report",
]

#: Environment variable: seconds to sleep after each shard is written (lets tests interrupt a
#: multi-shard run at a known point).
PAUSE_ENV = "AVLOC_PREPARE_PAUSE_AFTER_SHARD"
REPORT_NAME = "report.tsv"
SUMMARY_NAME = "prepare.json"
STATE_DIR = ".prepare"


# --------------------------------------------------------------------------------------------
# What a plan is made of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioRef:
    """An audio clip: a file (audio or video) and where to centre the clip in it."""

    path: str
    center: float | None = None  # seconds; None: the middle of the file
    label: int = -1


@dataclass(frozen=True)
class SampleSpec:
    """Everything needed to decode one output row (picklable; part of the chunk fingerprint).

    The visual input is ``image`` (a picture) or ``video`` (the frame closest to ``time`` s,
    the middle when None, or for AVSBench frame number :func:`frame_number` of ``second``).
    The audio is ``audio`` or, when None, the video's own track, centred on ``audio_center`` s,
    or on the decoded frame's time when ``center_on_frame`` (else the middle of the file).
    Boxes are as annotated, in ``box_frame`` = (width, height) pixels, ``(1, 1)`` for
    normalised coordinates, None for pixels of the image itself.
    """

    id: str
    image: str | None = None
    video: str | None = None
    time: float | None = None
    second: int | None = None  # AVSBench: frame k (1-based) is frame number frame_number(k, fps)
    audio: str | None = None
    audio_center: float | None = None
    center_on_frame: bool = False
    stored_time: float | None = None  # value of the ``time`` field when the frame has no time
    label: int = -1
    present: tuple[int, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    box_frame: tuple[float, float] | None = (1.0, 1.0)
    box_group: tuple[int, ...] = ()
    mask: str | None = None
    group: str = ""
    annotation: str = ""  # the annotation file (reported with box problems)
    offscreen: tuple[AudioRef, ...] = ()

    @property
    def visual(self) -> str:
        return self.video or self.image or ""

    @property
    def sound(self) -> str:
        return self.audio or self.video or ""


@dataclass(frozen=True)
class Skip:
    """A sample left out: its id, the offending file and why (one line each)."""

    id: str
    file: str
    reason: str


@dataclass(frozen=True)
class Settings:
    """How rows are made; identical for every sample of a corpus (part of the fingerprint)."""

    image_size: int = 224
    sample_rate: int = 16000
    clip_seconds: float = 3.0
    fields: tuple[str, ...] = ()  # optional fields besides id, image, audio
    max_boxes: int = 0
    max_present: int = 0
    min_audio_seconds: float = 1.0
    silence_peak: float = 1e-4  # a clip whose peak |amplitude| is below this is silent
    check_silence: bool = True
    box_tolerance: float = 0.02


@dataclass
class Plan:
    """A corpus as listed by a preparer, before any decoding."""

    source: str
    split: str
    samples: list[SampleSpec]
    settings: Settings
    class_names: list[str] = field(default_factory=list)
    ground_truth: str | None = None
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.source}-{self.split}"


class Preparer(Protocol):
    source: str

    def plan(self) -> Plan: ...


@dataclass
class PrepareResult:
    out: Path
    source: str
    split: str
    planned: int  # rows planned (after plan-time skips)
    written: int  # rows in the finished shards
    shards: list[Path]
    new_shards: int
    reused_shards: int
    decoded: int  # samples decoded in this run
    skipped: list[Skip]
    report: Path
    seconds: float
    notes: list[str]
    class_names: list[str]


# --------------------------------------------------------------------------------------------
# One sample
# --------------------------------------------------------------------------------------------


class _Problem(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path = path
        self.reason = reason


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _media(path: str, fn: Callable[..., Any], *args, **kwargs):
    """Call a decoder; a MediaError becomes a _Problem naming ``path`` and the reason alone."""
    try:
        return fn(*args, **kwargs)
    except MediaError as exc:
        message = _one_line(exc)
        prefix = f"{path}: "
        reason = message[len(prefix) :] if message.startswith(prefix) else message
        raise _Problem(path, reason) from None


def frame_number(k: int, fps: float) -> int:
    """AVSBench (SPEC 5): frame ``k`` (1-based) of a video is ``int((k-1)*fps + 15/16*fps)``."""
    return int((k - 1) * fps + 15 / 16 * fps)


def _video_fps(path: str) -> float:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise _Problem(path, "has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except _Problem:
        raise
    except Exception as exc:
        raise _Problem(path, f"not a readable video ({_one_line(exc)})") from None
    if not rate:
        raise _Problem(path, "not a readable video (unknown frame rate)")
    return float(rate)


def _load_mask(path: str, size: int) -> np.ndarray:
    from PIL import Image

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise MediaError(f"{name}: no such file")
    try:
        with Image.open(name) as img:
            img.load()
            gray = np.asarray(img.convert("L"), dtype=np.uint8)
    except Exception as exc:
        raise MediaError(f"{name}: not a readable mask image ({_one_line(exc)})") from None
    binary = Image.fromarray(((gray > 0) * 255).astype(np.uint8), mode="L")
    if binary.size != (size, size):
        binary = binary.resize((size, size), resample=Image.NEAREST)
    return (np.asarray(binary) > 0).astype(np.uint8)


def _load_clip(ref_path: str, center: float | None, settings: Settings) -> np.ndarray:
    from avloc.media.audio import clip_centered, load_audio

    wave = _media(ref_path, load_audio, ref_path, settings.sample_rate)
    seconds = wave.shape[0] / settings.sample_rate
    if seconds < settings.min_audio_seconds:
        raise _Problem(
            ref_path,
            f"audio too short ({seconds:.2f} s; at least {settings.min_audio_seconds:g} s needed)",
        )
    clip = clip_centered(wave, settings.sample_rate, settings.clip_seconds, center)
    peak = float(np.abs(clip).max())
    if settings.check_silence and peak < settings.silence_peak:
        where = "around the frame" if center is not None else "in the clip"
        raise _Problem(ref_path, f"audio is silent {where} (peak {peak:.1e})")
    return clip


def _row(spec: SampleSpec, settings: Settings) -> dict[str, Any]:
    from avloc.media.image import extract_video_frame, load_image, resize_uint8

    size = settings.image_size
    fields = settings.fields
    row: dict[str, Any] = {"id": spec.id}

    # Boxes whose frame is known need no decoding: check them first.
    boxes = None
    if "boxes" in fields and spec.box_frame is not None:
        try:
            boxes = normalise_boxes(spec.boxes, spec.box_frame, size, settings.box_tolerance)
        except BoxError as exc:
            raise _Problem(spec.annotation or spec.visual, str(exc)) from None

    frame_time = None
    if spec.video:
        when = spec.time
        if spec.second is not None:
            fps = _video_fps(spec.video)
            when = frame_number(spec.second, fps) / fps
        frame, frame_time = _media(spec.video, extract_video_frame, spec.video, when)
    elif spec.image:
        frame = _media(spec.image, load_image, spec.image)
    else:
        raise _Problem("", "no image or video given")
    height, width = frame.shape[:2]

    if "boxes" in fields and boxes is None:
        try:
            boxes = normalise_boxes(
                spec.boxes, (float(width), float(height)), size, settings.box_tolerance
            )
        except BoxError as exc:
            raise _Problem(spec.annotation or spec.visual, str(exc)) from None

    sound = spec.sound
    if not sound:
        raise _Problem(spec.visual, "no audio given")
    center = frame_time if spec.center_on_frame and frame_time is not None else spec.audio_center
    audio = _load_clip(sound, center, settings)

    mask = None
    if "mask" in fields:
        if not spec.mask:
            raise _Problem(spec.annotation or spec.visual, "no mask given for this sample")
        mask = _media(spec.mask, _load_mask, spec.mask, size)

    offscreen = None
    if "offscreen_audio" in fields:
        for ref in spec.offscreen:
            try:
                offscreen = (_load_clip(ref.path, ref.center, settings), ref.label)
                break
            except _Problem:
                continue  # that clip is broken (and reported with its own sample): try the next
        if offscreen is None:
            raise _Problem(
                "",
                f"no usable offscreen clip of another class ({len(spec.offscreen)} candidate(s))",
            )

    row["image"] = resize_uint8(frame, size)
    row["audio"] = to_pcm16(audio)
    if "label" in fields:
        row["label"] = np.int32(spec.label)
    if "boxes" in fields:
        padded, owner = pad_boxes(boxes, spec.box_group, settings.max_boxes)
        row["boxes"] = padded
        if "box_group" in fields:
            row["box_group"] = owner
    if "present" in fields:
        present = np.full((settings.max_present,), -1, np.int32)
        present[: len(spec.present)] = spec.present
        row["present"] = present
    if "group" in fields:
        row["group"] = spec.group or spec.id
    if "mask" in fields:
        row["mask"] = mask
    if "time" in fields:
        value = frame_time if frame_time is not None else spec.stored_time
        row["time"] = np.float32(np.nan if value is None else value)
    if "offscreen_audio" in fields:
        row["offscreen_audio"] = to_pcm16(offscreen[0])
        row["offscreen_label"] = np.int32(offscreen[1])
    return row


def process_sample(spec: SampleSpec, settings: Settings) -> dict[str, Any] | Skip:
    """Decode one sample into a row (dict of arrays), or a :class:`Skip` saying why not."""
    try:
        return _row(spec, settings)
    except _Problem as exc:
        return Skip(spec.id, exc.path, _one_line(exc.reason))
    except Exception as exc:  # a broken input must never stop the run: report it instead
        return Skip(spec.id, spec.visual, f"cannot be prepared ({type(exc).__name__}: {exc})")


def _process_many(specs: Sequence[SampleSpec], settings: Settings) -> list[dict | Skip]:
    return [process_sample(s, settings) for s in specs]


def _results(
    specs: Sequence[SampleSpec], settings: Settings, workers: int, batch: int = 2
) -> Iterator[dict | Skip]:
    """Rows of ``specs`` in order; ``workers > 1`` decodes in a pool of spawned processes."""
    if workers <= 1:
        for spec in specs:
            yield process_sample(spec, settings)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    batches = [specs[i : i + batch] for i in range(0, len(specs), batch)]
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    pending: deque = deque()
    try:
        todo = iter(batches)
        for part in todo:
            pending.append(executor.submit(_process_many, part, settings))
            if len(pending) >= 4 * workers:
                break
        while pending:
            results = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(executor.submit(_process_many, nxt, settings))
            yield from results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# Chunks, fingerprints, state
# --------------------------------------------------------------------------------------------


def _fingerprint(plan: Plan, chunk: Sequence[SampleSpec]) -> str:
    payload = {
        "schema": SCHEMA_VERSION,
        "source": plan.source,
        "split": plan.split,
        "class_names": plan.class_names,
        "ground_truth": plan.ground_truth,
        "attrs": plan.attrs,
        "settings": dataclasses.asdict(plan.settings),
        "samples": [dataclasses.asdict(s) for s in chunk],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _state_path(out: Path, shard: Path) -> Path:
    return out / STATE_DIR / f"{shard.stem}.json"


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _chunk_complete(shard: Path, state: dict | None, fingerprint: str) -> bool:
    if not state or state.get("fingerprint") != fingerprint:
        return False
    if int(state.get("written", -1)) == 0:
        return not shard.exists()
    try:
        info = read_info(shard)
    except DataError:
        return False
    return info.count == int(state["written"]) and info.attrs.get("plan_fingerprint") == fingerprint


def _stack(rows: list[dict], name: str) -> Any:
    values = [r[name] for r in rows]
    if name in ("id", "group"):
        return values
    return np.stack(values)


def _write_chunk(
    plan: Plan, path: Path, state_path: Path, index: int, fingerprint: str, rows, skips
) -> None:
    state = {
        "fingerprint": fingerprint,
        "planned": len(rows) + len(skips),
        "written": len(rows),
        "skipped": [[s.id, s.file, s.reason] for s in skips],
    }
    atomic_write_json(state_path, state)  # first: a shard never exists without its state
    if not rows:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    names = ["id", "image", "audio", *plan.settings.fields]
    if "offscreen_audio" in names:
        names.append("offscreen_label")
    arrays = {name: _stack(rows, name) for name in dict.fromkeys(names)}
    attrs = {"plan_fingerprint": fingerprint, "chunk": index, "chunk_planned": state["planned"]}
    if plan.ground_truth:
        attrs["ground_truth"] = plan.ground_truth
    attrs.update(plan.attrs)
    write_shard(
        path,
        arrays,
        source=plan.source,
        split=plan.split,
        class_names=plan.class_names,
        sample_rate=plan.settings.sample_rate,
        clip_seconds=plan.settings.clip_seconds,
        extra_attrs=attrs,
    )


_TMP = re.compile(r"^\.(?P<stem>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\..*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tidy(out: Path, prefix: str, count: int, owned: range | None = None) -> None:
    """Remove temporary files of dead writers and shards/states beyond the plan's chunks.

    With ``owned`` (a part's chunks), only the temporary files of those chunks are removed: the
    other parts may be writing theirs on other machines, where their pids mean nothing here.
    """
    own = re.compile(rf"^{re.escape(prefix)}-(\d{{5}})$")
    for directory in (out, out / STATE_DIR):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            tmp = _TMP.match(path.name)
            if tmp and not _pid_alive(int(tmp["pid"])):
                chunk = own.match(tmp["stem"])
                if owned is None or (chunk and int(chunk.group(1)) in owned):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                continue
            stem = path.name.rsplit(".", 1)[0]
            match = own.match(stem)
            if match and int(match.group(1)) >= count and path.suffix in (".h5", ".json"):
                path.unlink()


def _check_out(out: Path, prefix: str) -> None:
    own = re.compile(rf"^{re.escape(prefix)}-\d{{5}}\.h5$")
    foreign = sorted(
        p.name for p in out.glob("*.h5") if not p.name.startswith(".") and not own.match(p.name)
    )
    if foreign:
        raise DataError(
            f"{out}: holds other shards ({', '.join(foreign[:3])}); prepare each data set "
            "into a directory of its own"
        )


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def parse_part(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``1 <= I <= N``; an :class:`AvlocError` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise AvlocError(f"--part {text}: expected I/N with 1 <= I <= N, e.g. --part 2/8")
    return int(match.group(1)), int(match.group(2))


def part_range(count: int, part: tuple[int, int]) -> range:
    """The chunks ``0 <= j < count`` of part ``part = (I, N)``: the I-th of N contiguous runs."""
    index, parts = part
    if not 1 <= index <= parts:
        raise ValueError(f"part {index}/{parts}: expected 1 <= I <= N")
    return range((index - 1) * count // parts, index * count // parts)


def _finished_chunks(out: Path, paths: Sequence[Path], prints: Sequence[str]):
    """Over every chunk whose shard and state are complete: (chunks, rows, skips, shards)."""
    finished, written, skipped, shards = [], 0, [], []
    for index, (path, fp) in enumerate(zip(paths, prints, strict=True)):
        state = _read_state(_state_path(out, path))
        if _chunk_complete(path, state, fp):
            finished.append(index)
            written += int(state["written"])
            skipped += [Skip(*row) for row in state["skipped"]]
            if path.exists():
                shards.append(path)
    return finished, written, skipped, shards


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def write_report(path: Path, skipped: Iterable[Skip]) -> Path:
    """Write ``id<TAB>file<TAB>reason`` rows (header first, sorted by id) atomically."""
    buffer = io.StringIO()
    buffer.write("id\tfile\treason\n")
    for s in sorted(skipped, key=lambda s: (s.id, s.file, s.reason)):
        buffer.write(f"{_clean(s.id)}\t{_clean(s.file)}\t{_clean(s.reason)}\n")
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def read_report(path: str | Path) -> list[Skip]:
    """The rows of a ``report.tsv`` (empty when the file does not exist)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_NAME
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        return [Skip(*row[:3]) for row in reader if len(row) >= 3]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def prepare(
    preparer: Preparer | Plan,
    out: str | Path,
    *,
    workers: int = 1,
    shard_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    part: tuple[int, int] = (1, 1),
) -> PrepareResult:
    """Prepare ``preparer``'s corpus (or an already made plan) into ``out``; resumable.

    ``progress(done, total)`` is called as samples are finished (kept shards count at once).
    ``part = (I, N)`` prepares only the I-th of N parts (the result then counts that part; the
    plan-time skips count in part 1). See the module docstring for the steps.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    started = time.monotonic()
    plan = preparer if isinstance(preparer, Plan) else preparer.plan()
    out = Path(out)
    samples = sorted(plan.samples, key=lambda s: s.id)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{plan.source}: the plan holds duplicate ids")
    if not samples:  # nothing is touched: an unmounted corpus must not erase earlier shards
        first = f"; first: {plan.skipped[0].id}: {plan.skipped[0].reason}" if plan.skipped else ""
        raise DataError(
            f"{plan.source}: no samples found ({len(plan.skipped)} annotated entries unusable"
            f"{first})"
        )
    out.mkdir(parents=True, exist_ok=True)
    _check_out(out, plan.prefix)

    chunks = [samples[i : i + shard_size] for i in range(0, len(samples), shard_size)]
    split = part[1] > 1
    owned = part_range(len(chunks), part)
    _tidy(out, plan.prefix, len(chunks), owned if split else None)
    paths = [out / shard_name(plan.prefix, i) for i in range(len(chunks))]
    prints = [_fingerprint(plan, c) for c in chunks]

    skipped: list[Skip] = list(plan.skipped) if part[0] == 1 else []
    written = 0
    todo: list[int] = []
    done = 0
    for i in owned:
        path, fp = paths[i], prints[i]
        state = _read_state(_state_path(out, path))
        if _chunk_complete(path, state, fp):
            written += int(state["written"])
            skipped += [Skip(*row) for row in state["skipped"]]
            done += len(chunks[i])
        else:
            todo.append(i)
    total = sum(len(chunks[i]) for i in owned)
    if progress:
        progress(done, total)

    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    decoded = 0
    stream = _results([s for i in todo for s in chunks[i]], plan.settings, workers)
    try:
        for i in todo:
            rows, skips = [], []
            for _ in chunks[i]:
                result = next(stream)
                (skips if isinstance(result, Skip) else rows).append(result)
                done += 1
                decoded += 1
                if progress:
                    progress(done, total)
            _write_chunk(plan, paths[i], _state_path(out, paths[i]), i, prints[i], rows, skips)
            written += len(rows)
            skipped += skips
            if pause > 0:
                time.sleep(pause)
    finally:
        stream.close()

    shards = [paths[i] for i in owned if paths[i].exists()]
    kept = set(owned) - set(todo)
    if split:
        report = _write_combined(out, plan, paths, prints)
    else:
        report = write_report(out / REPORT_NAME, skipped)
        _write_summary(out, plan, len(samples), written, skipped, shards)
    return PrepareResult(
        out=out,
        source=plan.source,
        split=plan.split,
        planned=total,
        written=written,
        shards=shards,
        new_shards=sum(1 for i in todo if paths[i].exists()),
        reused_shards=sum(1 for i in kept if paths[i].exists()),
        decoded=decoded,
        skipped=sorted(skipped, key=lambda s: (s.id, s.file)),
        report=report,
        seconds=time.monotonic() - started,
        notes=list(plan.notes),
        class_names=list(plan.class_names),
    )


def _write_summary(
    out: Path, plan: Plan, planned: int, written: int, skipped: list[Skip], shards: list[Path]
) -> None:
    atomic_write_json(
        out / SUMMARY_NAME,
        {
            "source": plan.source,
            "split": plan.split,
            "planned": planned,
            "written": written,
            "skipped": len(skipped),
            "shards": [p.name for p in shards],
            "class_names": plan.class_names,
            "ground_truth": plan.ground_truth,
            "settings": dataclasses.asdict(plan.settings),
            "notes": plan.notes,
        },
    )


def _write_combined(out: Path, plan: Plan, paths: list[Path], prints: list[str]) -> Path:
    """report.tsv and prepare.json over every finished chunk of every part.

    Written, then the state files are read again and everything rewritten if another part
    finished meanwhile: the part that finishes last always leaves the complete files.
    """
    seen = None
    while True:
        finished, written, skipped, shards = _finished_chunks(out, paths, prints)
        if finished == seen:
            return out / REPORT_NAME
        report = list(plan.skipped) + skipped
        write_report(out / REPORT_NAME, report)
        _write_summary(out, plan, len(plan.samples), written, report, shards)
        seen = finished
