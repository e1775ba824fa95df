"""``avsbench-s4``: AVSBench single-source (S4) frames with binary masks (docs/data.md).

Layout (``--root``: the ``Single-source`` folder, or any folder holding ``s4_meta_data.csv``;
the data may sit in ``ROOT/s4_data`` or in ROOT itself):

- ``s4_meta_data.csv`` with columns ``name``, ``category``, ``split`` (``--meta`` elsewhere);
- ``visual_frames/<split>/<category>/<name>/<name>_<k>.png`` (or without the ``<name>/``
  folder), ``k = 1..5``;
- ``gt_masks/<split>/<category>/<name>/<name>_<k>.png`` (same two forms; any value > 0 is the
  object);
- ``audio_wav/<split>/<category>/<name>.wav``, 5 s.

With ``--videos DIR`` the frames come from the raw videos ``<name>.<ext>`` instead (and the
audio too when no wav exists): frame ``k`` is frame number ``int((k - 1) * fps + 15/16 * fps)``
(:func:`avloc.data.prepare.frame_number`). Test and val videos have masks for all five
frames; for ``--split train`` only frame 1 is annotated, so only frame 1 is prepared.

Rows: one per frame, ``id = <name>_<k>``, ``group = <name>``, ``image`` 224 x 224, ``mask``
(224 x 224, nearest), ``label``/``present`` (the category), ``time`` (the frame's time in the
clip: the decoded timestamp for videos, the nominal ``k - 1 + 15/16`` s for extracted frames),
and ``audio``: the **whole 5 s clip** at 16 kHz (``clip_seconds = 5``). The evaluator takes the
3 s it needs with ``clip_centered(audio, 16000, 3.0)`` (the middle 3 s, which is what the
reference protocol's centre crop of the 5 s spectrogram keeps), or centred on ``time`` for a
per-frame window. Offscreen clips (5 s) come from videos of other categories. Shard attribute
``ground_truth = "mask"``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from avloc.data.prepare import Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.sources.common import (
    VIDEO_EXTS,
    SourceBase,
    class_index,
    index_files,
    require_dir,
    require_file,
)
from avloc.errors import DataError

S4_FRAMES = 5
S4_SECONDS = 5.0


def _either(base: Path, name: str, k: int) -> Path:
    nested = base / name / f"{name}_{k}.png"
    flat = base / f"{name}_{k}.png"
    return flat if flat.exists() and not nested.exists() else nested


class AVSBenchS4Preparer(SourceBase):
    source = "avsbench-s4"
    split = "test"
    summary = "AVSBench S4: 5 frames per video with masks and the video's 5 s audio."
    example = "avloc prepare avsbench-s4 --root AVSBench/Single-source --out data/s4"
    options = (
        Option("--root", "Single-source/ (s4_meta_data.csv)"),
        Option("--split", "test | val | train"),
        Option("--meta", "Meta CSV (default ROOT/s4_meta_data.csv)"),
        Option("--videos", "Raw videos: frame k at (k - 1 + 15/16) s, as AVSBench"),
    )
    shared = ("image_size", "seed", "offscreen", "class_groups", "min_audio_seconds")

    def __init__(
        self,
        root: Path,
        split: str = "test",
        meta: Path | None = None,
        videos: Path | None = None,
        **common,
    ):
        if split not in ("train", "val", "test"):
            raise DataError(f"--split must be train, val or test, got {split!r}")
        self.split = split
        super().__init__(**common)
        self.root = Path(root).absolute()
        self.meta = Path(meta).absolute() if meta else None
        self.videos = Path(videos).absolute() if videos else None

    def _rows(self, meta: Path) -> list[dict]:
        with open(meta, newline="") as f:
            reader = csv.DictReader(f)
            columns = {c.strip().lower() for c in reader.fieldnames or []}
            if not {"name", "category", "split"} <= columns:
                raise DataError(
                    f"{meta}: expected columns name, category and split, got "
                    f"{', '.join(sorted(columns)) or 'none'}"
                )
            rows = []
            for row in reader:
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                if row["split"] == self.split and row["name"]:
                    rows.append(row)
        return rows

    def plan(self) -> Plan:
        root = require_dir(self.root, "AVSBench root")
        meta = require_file(self.meta or root / "s4_meta_data.csv", "AVSBench S4 meta data")
        data = root / "s4_data" if (root / "s4_data").is_dir() else root
        videos = None
        if self.videos is not None:
            videos = index_files(require_dir(self.videos, "AVSBench video folder"), VIDEO_EXTS)
        rows = self._rows(meta)
        class_names, index = class_index(r["category"] for r in rows)
        frames = 1 if self.split == "train" else S4_FRAMES
        specs, skipped = [], []
        for row in rows:
            name, category = row["name"], row["category"]
            label = index[category]
            audio = data / "audio_wav" / self.split / category / f"{name}.wav"
            video = videos.get(name) if videos is not None else None
            if videos is not None and video is None:
                for k in range(1, frames + 1):
                    where = str(self.videos / f"{name}.*")
                    skipped.append(Skip(f"{name}_{k}", where, "no video file for this name"))
                continue
            for k in range(1, frames + 1):
                if video is not None:
                    visual = {"video": str(video), "second": k}
                    sound = str(audio) if audio.exists() else None  # else the video's track
                else:
                    base = data / "visual_frames" / self.split / category
                    visual = {"image": str(_either(base, name, k))}
                    sound = str(audio)
                specs.append(
                    SampleSpec(
                        id=f"{name}_{k}",
                        audio=sound,
                        stored_time=(k - 1) + 15 / 16,
                        label=label,
                        present=(label,),
                        mask=str(_either(data / "gt_masks" / self.split / category, name, k)),
                        group=name,
                        annotation=str(meta),
                        **visual,
                    )
                )
        notes = [f"{len(rows)} {self.split} videos, {frames} frame(s) each"]
        specs, offscreen = self.with_offscreen(specs, class_names, notes, skipped)
        fields = ["label", "present", "group", "mask", "time"]
        if offscreen:
            fields.append("offscreen_audio")
        return Plan(
            source=self.source,
            split=self.split,
            samples=specs,
            settings=self.settings(specs, fields, clip_seconds=S4_SECONDS),
            class_names=class_names,
            ground_truth="mask",
            skipped=skipped,
            notes=notes,
            attrs={"eval_clip_seconds": 3.0},
        )
