"""What a plan is made of: samples, skips, settings, the plan and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: Environment variable: seconds to sleep after each shard is written (lets tests interrupt a
#: multi-shard run at a known point).
PAUSE_ENV = "AVLOC_PREPARE_PAUSE_AFTER_SHARD"
REPORT_NAME = "report.tsv"
SUMMARY_NAME = "prepare.json"
#: The ids of a source's id list that have no media (one a line), when a list was given.
MISSING_IDS_NAME = "missing_ids.txt"
STATE_DIR = ".prepare"


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
    #: ids of the given id list that have no media (None: no list); written to missing_ids.txt
    missing_ids: list[str] | None = None

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
