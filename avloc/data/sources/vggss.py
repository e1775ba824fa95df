"""``vggss``: the VGG-SS test set (docs/protocol.md, docs/data.md).

Annotations (``--annotations vggss.json``): a JSON list of
``{"file": "<id>", "class": "<name>", "bbox": [[x1, y1, x2, y2], ...]}`` with coordinates
normalised to [0, 1] (most entries one box, some up to 7). Media (``--root``): video files
``<id>.mp4`` (the frame at ``--frame-time`` = 5.0 s of the 10 s clip, which the boxes belong to,
and 3 s of its audio centred on that frame) or the extracted layout ``frames/<id>.jpg`` (that
frame) + ``audio/<id>.wav`` (3 s from the middle of the clip).

Rows: ``id``, ``image`` (224 x 224 by default), ``audio``, ``label`` (index into the sorted
class names), ``present`` (the label), ``boxes`` (``(K, 4)`` normalised, NaN-padded; stored so
that ``int(v * 224)`` equals the reference's ``int(clip(v, 0, 1) * 224)``), and an offscreen
clip of another class (``offscreen_audio``/``offscreen_label``). Shard attribute
``ground_truth = "boxes"``: the binary union of the boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

from avloc.data.prepare import Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.sources.common import (
    LAYOUT,
    MediaLayout,
    SourceBase,
    class_index,
    drop_duplicates,
    require_file,
)
from avloc.errors import DataError


def read_vggss(path: Path) -> tuple[list[dict], list[Skip]]:
    """Entries ``{"id", "class", "boxes"}`` of a ``vggss.json``; malformed entries are skips."""
    path = require_file(path, "VGG-SS annotation file")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of entries with file, class and bbox")
    entries, skipped = [], []
    for n, entry in enumerate(data):
        sample_id = str(entry.get("file", "")) if isinstance(entry, dict) else ""
        if not sample_id:
            skipped.append(Skip(f"entry {n}", str(path), "entry has no 'file'"))
            continue
        boxes = entry.get("bbox", [])
        ok = isinstance(boxes, list) and all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(v, int | float) for v in b)
            for b in boxes
        )
        if not ok or not boxes:
            reason = "entry has no boxes" if ok else "'bbox' is not a list of [x1, y1, x2, y2]"
            skipped.append(Skip(sample_id, str(path), reason))
            continue
        name = str(entry.get("class", ""))
        entries.append({"id": sample_id, "class": name, "boxes": [tuple(b) for b in boxes]})
    return entries, skipped


class VGGSSPreparer(SourceBase):
    source = "vggss"
    split = "test"
    summary = "VGG-SS test set: normalised boxes, ground truth 'boxes', offscreen clips."
    example = "avloc prepare vggss --root VGGSound/ --annotations vggss.json --out data/vggss"
    options = (
        Option("--root", "Videos, or frames/ + audio/"),
        Option("--annotations", "vggss.json"),
        LAYOUT,
        Option("--frame-time", "Annotated frame time in videos, s"),
    )

    def __init__(
        self,
        root: Path,
        annotations: Path,
        layout: str = "auto",
        frame_time: float = 5.0,
        **common,
    ):
        super().__init__(**common)
        self.root = Path(root).absolute()
        self.annotations = Path(annotations).absolute()
        self.layout = layout
        self.frame_time = float(frame_time)

    def plan(self) -> Plan:
        entries, skipped = read_vggss(self.annotations)
        media = MediaLayout(self.root, self.layout)
        class_names, index = class_index(e["class"] for e in entries)
        samples = []
        for entry in entries:
            found = media.media(entry["id"])
            if found is None:
                skipped.append(media.missing(entry["id"]))
                continue
            if "video" in found:
                found.update(time=self.frame_time, center_on_frame=True)
            label = index.get(entry["class"], -1)
            samples.append(
                SampleSpec(
                    id=entry["id"],
                    label=label,
                    present=(label,) if label >= 0 else (),
                    boxes=tuple(entry["boxes"]),
                    box_frame=(1.0, 1.0),
                    annotation=str(self.annotations),
                    **found,
                )
            )
        samples, dups = drop_duplicates(samples, str(self.annotations))
        skipped += dups
        notes = [f"layout: {media.layout} ({media.root})"]
        samples, offscreen = self.with_offscreen(samples, class_names, notes, skipped)
        fields = ["label", "present", "boxes"]
        if offscreen:
            fields.append("offscreen_audio")
        return Plan(
            source=self.source,
            split=self.split,
            samples=samples,
            settings=self.settings(samples, fields),
            class_names=class_names,
            ground_truth="boxes",
            skipped=skipped,
            notes=notes,
        )
