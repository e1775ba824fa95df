"""``flickr``: the Flickr-SoundNet test set (docs/protocol.md, docs/data.md).

Layout (``--root``): ``Annotations/<id>.xml``, ``frames/<id>.jpg`` and ``audio/<id>.wav`` (other
image/audio extensions are found too; ``--frames``/``--audio``/``--annotations`` point
elsewhere). ``--ids flickr_test.csv`` restricts the set (first column), otherwise every XML is
used.

Annotation XML: every ``<bbox>`` element (at any depth) is one annotator's box in a 256 x 256
frame. Its coordinates are the children named ``xmin``, ``ymin``, ``xmax``, ``ymax`` or, when
not named so, the four children after the first (the reference reader's order). Each
``<bbox>`` gets its own ``box_group``, so the ground truth is the reference consensus: every
box painted at ``int(224 * v / 256)``, summed, divided by 2, clipped to 1. Boxes are stored as
``v / 256`` (exact in float32), so the evaluator's ``int(224 * stored)`` recovers those pixels
bit for bit (:func:`avloc.metrics.gt_flickr`).

Rows: ``id``, ``image`` (224 x 224; the whole image, bicubic), ``audio`` (3 s from the middle of
the clip), ``label``/``present`` (from ``--labels id,class``; -1 without), ``boxes``,
``box_group``, and with labels of at least two classes an offscreen clip of another class.
Shard attribute ``ground_truth = "consensus"``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from avloc.data.boxes import BoxError
from avloc.data.prepare import Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.sources.common import (
    AUDIO_EXTS,
    IMAGE_EXTS,
    SourceBase,
    class_index,
    find_with_stem,
    read_id_list,
    read_labels,
    require_dir,
)

FLICKR_FRAME = 256.0
_NAMES = ("xmin", "ymin", "xmax", "ymax")


def read_flickr_xml(path: Path) -> list[tuple[float, float, float, float]]:
    """The 256 px boxes of one annotation file, one per ``<bbox>`` (BoxError when unusable)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BoxError(f"not a readable annotation XML ({exc})") from None
    boxes = []
    for element in root.iter("bbox"):
        children = list(element)
        named = {c.tag.lower(): c.text for c in children}
        if all(n in named for n in _NAMES):
            texts = [named[n] for n in _NAMES]
        else:
            texts = [c.text for c in children[1:5]]
        try:
            values = [float((t or "").strip()) for t in texts]
        except ValueError:
            raise BoxError(f"<bbox> has non-numeric coordinates {texts}") from None
        if len(values) != 4:
            raise BoxError(f"<bbox> has {len(values)} coordinates, expected 4")
        boxes.append(tuple(values))
    if not boxes:
        raise BoxError("no <bbox> in the annotation")
    return boxes


class FlickrPreparer(SourceBase):
    source = "flickr"
    split = "test"
    summary = "Flickr-SoundNet test set: 256 px annotator boxes -> soft consensus ground truth."
    example = "avloc prepare flickr --root Flickr-SoundNet/ --out data/flickr"
    options = (
        Option("--root", "Annotations/, frames/, audio/"),
        Option("--ids", "Id list (flickr_test.csv)"),
        Option("--labels", "id,class rows (for offscreen clips)"),
        Option("--annotations", "XML folder (default ROOT/Annotations)"),
        Option("--frames", "Image folder (default ROOT/frames)"),
        Option("--audio", "Audio folder (default ROOT/audio)"),
    )

    def __init__(
        self,
        root: Path,
        ids: Path | None = None,
        labels: Path | None = None,
        annotations: Path | None = None,
        frames: Path | None = None,
        audio: Path | None = None,
        **common,
    ):
        super().__init__(**common)
        self.root = Path(root).absolute()
        self.ids = ids
        self.labels = labels
        self.annotations = (
            Path(annotations).absolute() if annotations else self.root / "Annotations"
        )
        self.frames = Path(frames).absolute() if frames else self.root / "frames"
        self.audio = Path(audio).absolute() if audio else self.root / "audio"

    def plan(self) -> Plan:
        require_dir(self.root, "Flickr-SoundNet root")
        require_dir(self.annotations, "Flickr-SoundNet annotation folder")
        if self.ids:
            wanted = read_id_list(self.ids)
        else:
            wanted = sorted(p.stem for p in self.annotations.glob("*.xml"))
        names = read_labels(self.labels) if self.labels else {}
        class_names, index = class_index(names.values())
        samples, skipped = [], []
        for sample_id in wanted:
            xml = self.annotations / f"{sample_id}.xml"
            if not xml.exists():
                skipped.append(Skip(sample_id, str(xml), "no annotation file"))
                continue
            try:
                boxes = read_flickr_xml(xml)
            except BoxError as exc:
                skipped.append(Skip(sample_id, str(xml), str(exc)))
                continue
            label = index.get(names.get(sample_id, ""), -1)
            samples.append(
                SampleSpec(
                    id=sample_id,
                    image=str(find_with_stem(self.frames, sample_id, IMAGE_EXTS)),
                    audio=str(find_with_stem(self.audio, sample_id, AUDIO_EXTS)),
                    label=label,
                    present=(label,) if label >= 0 else (),
                    boxes=tuple(boxes),
                    box_frame=(FLICKR_FRAME, FLICKR_FRAME),
                    box_group=tuple(range(len(boxes))),
                    annotation=str(xml),
                )
            )
        notes: list[str] = []
        samples, offscreen = self.with_offscreen(samples, class_names, notes, skipped)
        fields = ["label", "boxes", "box_group"] + (["present"] if class_names else [])
        if offscreen:
            fields.append("offscreen_audio")
        return Plan(
            source=self.source,
            split=self.split,
            samples=samples,
            settings=self.settings(samples, fields),
            class_names=class_names,
            ground_truth="consensus",
            skipped=skipped,
            notes=notes,
            attrs={"box_frame": int(FLICKR_FRAME)},
        )
