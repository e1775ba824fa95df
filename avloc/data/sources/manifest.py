"""``manifest``: any data set described by a JSON Lines manifest (docs/formats.md); also IS3+.

One JSON object per line (blank lines and lines starting with ``#`` are ignored)::

    {"id": "dog-01",                        # optional; default <image stem>[__<audio stem>]
     "image": "frames/dog-01.jpg",          # an image, or
     "video": "videos/dog-01.mp4",          # a video (its frame at "time", default the middle)
     "audio": "audio/dog-01.wav",           # optional for videos (default: the video's track)
     "time": 4.0,                           # optional: frame time and audio centre, seconds
     "label": "dog",                        # optional: the class of this sound
     "present": ["dog", "cat"],             # optional: classes visible (default [label])
     "boxes": [[x1, y1, x2, y2], ...],      # optional
     "box_format": "normalized",            # or "pixel" (default: --box-format)
     "box_size": [640, 480],                # pixel boxes: their frame (default: the image)
     "box_group": [0, 1],                   # optional: annotator of each box (consensus)
     "mask": "masks/dog-01.png",            # optional: binary mask (> 0 is the object)
     "group": "img-017",                    # optional: rows sharing one image (IS3+ pairs)
     "negatives": ["neg/rain.wav", {"audio": "neg/car.wav", "label": "car", "time": 2.0}]}

Relative paths are resolved against ``--root`` (default: the manifest's folder). Two sounds of
one image (IS3+) are two lines with the same image and ``group``. ``negatives`` are audio clips
for the offscreen condition (the first that decodes is stored); lines without them get a clip
of a class absent from the image from the manifest's own audio when labels name at least two
classes. ``--keep-silent`` keeps silent clips (negative test cases whose audio is silence).

Ground truth (``--ground-truth auto``): ``mask`` when every line has a mask, else ``consensus``
when boxes carry ``box_group``, else ``boxes`` when any line has boxes; lines without boxes
have an empty ground truth. ``--name`` sets the shards' ``source`` and file prefix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from avloc.data.prepare import AudioRef, Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.sources.common import (
    SourceBase,
    class_index,
    drop_duplicates,
    require_dir,
    require_file,
)
from avloc.errors import DataError
from avloc.media.items import ItemError, media_path, number, parse_media_item

GROUND_TRUTH_CHOICES = ("auto", "boxes", "consensus", "mask", "none")


def _class_name(value, key: str) -> str:
    """A class name of the manifest (a JSON string); ItemError naming ``key`` otherwise."""
    if not isinstance(value, str) or not value:
        raise ItemError(f"'{key}' must be a class name (a string), got {json.dumps(value)}")
    return value


def _box_list(value) -> tuple:
    if not isinstance(value, list):
        raise ItemError("'boxes' must be a list of [x1, y1, x2, y2]")
    boxes = []
    for box in value:
        if not isinstance(box, list) or len(box) != 4:
            raise ItemError("'boxes' must be a list of [x1, y1, x2, y2]")
        boxes.append(tuple(number(v, "boxes") for v in box))
    return tuple(boxes)


class ManifestPreparer(SourceBase):
    source = "manifest"
    split = "test"
    summary = "Any data set listed in a JSON Lines manifest (IS3+, your own data)."
    example = "avloc prepare manifest my_data.jsonl --name mine --out data/mine"
    options = (
        Option("manifest", "JSON Lines manifest (docs/formats.md)", argument=True),
        Option("--root", "Base of relative paths (default: its folder)"),
        Option("--split", "test | train"),
        Option("--name", "Source name and shard prefix"),
        Option("--box-format", "normalized | pixel (lines may override)"),
        Option("--ground-truth", "auto | boxes | consensus | mask | none"),
        Option("--keep-silent", "Keep silent clips (negative test cases)"),
    )
    shared = ("image_size", "seed", "offscreen", "class_groups", "min_audio_seconds")

    def __init__(
        self,
        manifest: Path,
        root: Path | None = None,
        split: str = "test",
        name: str = "manifest",
        box_format: str = "normalized",
        ground_truth: str = "auto",
        keep_silent: bool = False,
        **common,
    ):
        if split not in ("train", "test"):
            raise DataError(f"--split must be train or test, got {split!r}")
        if box_format not in ("normalized", "pixel"):
            raise DataError(f"--box-format must be normalized or pixel, got {box_format!r}")
        if ground_truth not in GROUND_TRUTH_CHOICES:
            choices = ", ".join(GROUND_TRUTH_CHOICES)
            raise DataError(f"--ground-truth must be one of {choices}, got {ground_truth!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
            raise DataError(f"--name must be letters, digits, '_', '.', '+' or '-', got {name!r}")
        self.split = split  # before SourceBase picks the default image size
        super().__init__(**common)
        self.manifest = Path(manifest).absolute()
        self.root = Path(root).absolute() if root else None
        self.source = name
        self.box_format = box_format
        self.ground_truth = ground_truth
        self.keep_silent = bool(keep_silent)

    def _path(self, value, what: str, base: Path) -> str:
        return str(media_path(value, what, base))

    def _line(self, entry: dict, base: Path) -> dict:
        media = parse_media_item(entry, base)
        visual_key = "image" if media.image is not None else "video"
        visual = str(media.visual)
        audio = None if media.audio is None else str(media.audio)
        when = media.time
        sample_id = media.id
        if sample_id is None:
            sample_id = Path(visual).stem
            if audio and Path(audio).stem != sample_id:
                sample_id += f"__{Path(audio).stem}"
        label = entry.get("label")
        label = None if label is None else _class_name(label, "label")
        present = entry.get("present", [] if label is None else [label])
        if not isinstance(present, list):
            raise ItemError("'present' must be a list of class names")
        present = [_class_name(p, "present") for p in present]
        boxes = _box_list(entry.get("boxes", []))
        fmt = entry.get("box_format", self.box_format)
        if fmt not in ("normalized", "pixel"):
            raise ItemError("'box_format' must be normalized or pixel")
        frame: tuple[float, float] | None = (1.0, 1.0)
        if fmt == "pixel":
            size = entry.get("box_size")
            if size is None:
                frame = None  # the image's own size
            elif isinstance(size, list) and len(size) == 2:
                frame = (number(size[0], "box_size"), number(size[1], "box_size"))
            else:
                raise ItemError("'box_size' must be [width, height]")
        groups = entry.get("box_group", [])
        if not isinstance(groups, list) or len(groups) not in (0, len(boxes)):
            raise ItemError("'box_group' must give one integer per box")
        negatives = []
        for neg in entry.get("negatives", []) or []:
            if isinstance(neg, str):
                neg = {"audio": neg}
            if not isinstance(neg, dict) or not neg.get("audio"):
                raise ItemError("'negatives' must be audio paths or {'audio': ...} objects")
            neg_time, neg_label = neg.get("time"), neg.get("label")
            negatives.append(
                (
                    self._path(neg["audio"], "negatives", base),
                    None if neg_time is None else number(neg_time, "negatives.time"),
                    None if neg_label is None else _class_name(neg_label, "negatives.label"),
                )
            )
        mask = self._path(entry["mask"], "mask", base) if entry.get("mask") else None
        return {
            "id": str(sample_id),
            visual_key: visual,
            "audio": audio,
            "time": when,
            "label": label,
            "present": present,
            "boxes": boxes,
            "frame": frame,
            "groups": tuple(int(g) for g in groups),
            "mask": mask,
            "group": str(entry.get("group", "")),
            "negatives": negatives,
        }

    def plan(self) -> Plan:
        manifest = require_file(self.manifest, "manifest")
        base = require_dir(self.root, "manifest root") if self.root else manifest.parent
        where = str(manifest)
        lines, skipped = [], []
        for n, text in enumerate(manifest.read_text().splitlines(), start=1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                lines.append(self._line(json.loads(text), base))
            except json.JSONDecodeError as exc:
                skipped.append(Skip(f"line {n}", where, f"not valid JSON ({exc.msg})"))
            except ItemError as exc:
                skipped.append(Skip(f"line {n}", where, str(exc)))
        names = [x["label"] for x in lines if x["label"]] + [p for x in lines for p in x["present"]]
        names += [str(neg[2]) for x in lines for neg in x["negatives"] if neg[2] is not None]
        class_names, index = class_index(str(n) for n in names)

        rule = self.ground_truth
        if rule == "auto":
            if lines and all(x["mask"] for x in lines):
                rule = "mask"
            elif any(x["groups"] for x in lines):
                rule = "consensus"
            elif any(x["boxes"] for x in lines):
                rule = "boxes"
            else:
                rule = "none"
        samples, negatives = [], {}
        for x in lines:
            video = x.get("video")
            samples.append(
                SampleSpec(
                    id=x["id"],
                    image=x.get("image"),
                    video=video,
                    time=x["time"],
                    audio=x["audio"],
                    audio_center=x["time"],
                    center_on_frame=bool(video),
                    label=index.get(x["label"], -1) if x["label"] else -1,
                    present=tuple(sorted({index[p] for p in x["present"]})),
                    boxes=x["boxes"],
                    box_frame=x["frame"],
                    box_group=x["groups"],
                    mask=x["mask"],
                    group=x["group"],
                    annotation=where,
                )
            )
            refs = [
                AudioRef(p, t, -1 if lbl is None else index[str(lbl)])
                for p, t, lbl in x["negatives"]
            ]
            negatives.setdefault(x["id"], refs)
        samples, dups = drop_duplicates(samples, where)
        skipped += dups
        notes = [f"{len(samples)} line(s) from {manifest}"]
        fields = []
        if class_names:
            fields += ["label", "present"]
        if rule in ("boxes", "consensus") or any(s.boxes for s in samples):
            fields.append("boxes")
            if rule == "consensus" or any(s.box_group for s in samples):
                fields.append("box_group")
        if rule == "mask":
            fields.append("mask")
        elif any(s.mask for s in samples):
            notes.append("masks: ignored (not every line has one; --ground-truth mask needs them)")
        if any(s.group for s in samples):
            fields.append("group")
        offscreen = False
        if self.split == "test":
            groups: dict[str, set[int]] = {}
            for s in samples:
                groups.setdefault(s.group or s.id, set()).update(s.present)
            samples, offscreen = self.with_offscreen(
                samples,
                class_names,
                notes,
                skipped,
                image_classes=[frozenset(groups[s.group or s.id]) for s in samples],
                extra=[negatives[s.id] for s in samples],
            )
        if offscreen:
            fields.append("offscreen_audio")
        return Plan(
            source=self.source,
            split=self.split,
            samples=samples,
            settings=self.settings(samples, fields, check_silence=not self.keep_silent),
            class_names=class_names,
            ground_truth=None if rule == "none" else rule,
            skipped=skipped,
            notes=notes,
        )
