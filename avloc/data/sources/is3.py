"""``is3``: the IS3 interactive test set, two sounding objects per image (docs/data.md).

Annotations (``--annotations synthetic3240_bbox.json``): a JSON list with one entry per
(image, sound) pair, ``{"image": ".../visual_frames/x.jpg", "audio": ".../audio_wav/y.wav",
"gt_box": [x1, y1, x2, y2]}`` (pixels of a 224 x 224 frame, ``--box-frame``; a list of such
boxes is accepted too). An entry may name its sound's class (``"class"``, ``"label"``,
``"audio_class"`` or ``"category"``) and its mask (``"mask"`` or ``"gt_mask"``). Paths are used
as given when they exist, else looked up under ``--root`` (default: the JSON's folder) and its
``visual_frames``/``images``/``frames``/``audio_wav``/``audio`` folders, by relative path then
by file name.

Masks (optional, ``--masks``): a JSON list like the boxes file whose entries carry
``"mask"``, or a folder of ``<id>.png``. When masks are given, every pair needs one and the
shard's ``ground_truth`` is ``"mask"``; otherwise ``"boxes"`` (224 px boxes are stored so that
``int(224 * v)`` is the annotated pixel, as the reference's ``int(v)``).

Rows: one per pair, ``id = <image stem>__<audio stem>``, ``group`` = the image (its two rows
share it), ``image`` 224 x 224, ``audio`` (3 s from the middle of the clip), ``boxes``,
``label`` and ``present`` (the classes of both sounds of the image) when classes are named,
``mask`` when given, and an offscreen clip whose class is neither of the image's two classes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from avloc.data.prepare import AudioRef, Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.sources.common import (
    SourceBase,
    class_index,
    drop_duplicates,
    require_file,
    resolve_path,
)
from avloc.errors import DataError

_CLASS_KEYS = ("class", "label", "audio_class", "category")
_MASK_KEYS = ("mask", "gt_mask")


def _load_list(path: Path, what: str) -> list:
    path = require_file(path, what)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("annotations", data.get("data"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of entries with image and audio")
    return data


def _boxes(value) -> tuple | None:
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) for v in value)
    ):
        return (tuple(float(v) for v in value),)
    if isinstance(value, list) and value and all(_boxes(v) for v in value):
        return tuple(_boxes(v)[0] for v in value)
    return None


def _key(image: str, audio: str) -> tuple[str, str]:
    return Path(image).name, Path(audio).name


class IS3Preparer(SourceBase):
    source = "is3"
    split = "test"
    summary = "IS3: two sounds per image, one row per (image, sound) pair, boxes or masks."
    example = "avloc prepare is3 --annotations synthetic3240_bbox.json --out data/is3"
    options = (
        Option("--annotations", "synthetic3240_bbox.json (image, audio, gt_box)"),
        Option("--root", "Where the media are (default: JSON folder)"),
        Option("--masks", "Mask JSON (image, audio, mask) or folder"),
        Option("--box-frame", "Pixel frame of the boxes"),
    )

    def __init__(
        self,
        annotations: Path,
        root: Path | None = None,
        masks: Path | None = None,
        box_frame: float = 224.0,
        **common,
    ):
        super().__init__(**common)
        self.annotations = Path(annotations).absolute()
        self.root = Path(root).absolute() if root else None
        self.masks = Path(masks).absolute() if masks else None
        self.box_frame = float(box_frame)

    def _mask_lookup(self) -> dict[tuple[str, str], str] | Path | None:
        if self.masks is None:
            return None
        if self.masks.is_dir():
            return self.masks
        lookup = {}
        base = self.masks.parent
        for entry in _load_list(self.masks, "IS3 mask file"):
            if not isinstance(entry, dict):
                continue
            mask = next((entry[k] for k in _MASK_KEYS if k in entry), None)
            if mask and "image" in entry and "audio" in entry:
                lookup[_key(entry["image"], entry["audio"])] = str(resolve_path(mask, [base]))
        return lookup

    def plan(self) -> Plan:
        entries = _load_list(self.annotations, "IS3 annotation file")
        root = self.root or self.annotations.parent
        if self.root is not None and not self.root.is_dir():
            raise DataError(f"{self.root}: IS3 root not found (no such directory)")
        image_bases = [root] + [root / d for d in ("visual_frames", "images", "frames")]
        audio_bases = [root] + [root / d for d in ("audio_wav", "audio")]
        masks = self._mask_lookup()
        where = str(self.annotations)
        rows, skipped = [], []
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("image") or not entry.get("audio"):
                skipped.append(Skip(f"entry {n}", where, "entry lacks 'image' or 'audio'"))
                continue
            image, audio = str(entry["image"]), str(entry["audio"])
            sample_id = f"{Path(image).stem}__{Path(audio).stem}"
            boxes = _boxes(entry.get("gt_box", entry.get("bbox")))
            if boxes is None:
                skipped.append(Skip(sample_id, where, "'gt_box' is not [x1, y1, x2, y2]"))
                continue
            mask = next((str(entry[k]) for k in _MASK_KEYS if entry.get(k)), None)
            if mask:
                mask = str(resolve_path(mask, [root]))
            elif isinstance(masks, dict):
                mask = masks.get(_key(image, audio))
            elif isinstance(masks, Path):
                mask = str(masks / f"{sample_id}.png")
            cls = next((str(entry[k]) for k in _CLASS_KEYS if entry.get(k) is not None), "")
            rows.append(
                {
                    "id": sample_id,
                    "image": str(resolve_path(image, image_bases)),
                    "audio": str(resolve_path(audio, audio_bases)),
                    "group": Path(image).stem,
                    "boxes": boxes,
                    "mask": mask,
                    "class": cls,
                }
            )
        class_names, index = class_index(r["class"] for r in rows)
        classes_of = defaultdict(set)
        for r in rows:
            if r["class"]:
                classes_of[r["group"]].add(index[r["class"]])
        use_masks = self.masks is not None or any(r["mask"] for r in rows)
        samples = [
            SampleSpec(
                id=r["id"],
                image=r["image"],
                audio=r["audio"],
                label=index.get(r["class"], -1),
                present=tuple(sorted(classes_of[r["group"]])),
                boxes=r["boxes"],
                box_frame=(self.box_frame, self.box_frame),
                mask=r["mask"] if use_masks else None,
                group=r["group"],
                annotation=where,
            )
            for r in rows
        ]
        samples, dups = drop_duplicates(samples, where)
        skipped += dups
        notes: list[str] = []
        groups = {s.group for s in samples}
        notes.append(f"{len(samples)} (image, sound) pairs over {len(groups)} images")
        samples, offscreen = self.with_offscreen(
            samples,
            class_names,
            notes,
            skipped,
            image_classes=[frozenset(s.present) for s in samples],
            pool=[AudioRef(s.audio, None, s.label) for s in samples],
        )
        fields = ["boxes", "group"]
        if class_names:
            fields += ["label", "present"]
        if use_masks:
            fields.append("mask")
        if offscreen:
            fields.append("offscreen_audio")
        return Plan(
            source=self.source,
            split=self.split,
            samples=samples,
            settings=self.settings(samples, fields),
            class_names=class_names,
            ground_truth="mask" if use_masks else "boxes",
            skipped=skipped,
            notes=notes,
            attrs={"box_frame": float(self.box_frame)},
        )
