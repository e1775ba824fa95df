"""``vggsound``: VGGSound / VGGSound-144K training pairs (docs/method.md, docs/data.md).

Inputs (``--root``), either layout (:class:`~avloc.data.sources.common.MediaLayout`):

- video files ``<id>.mp4`` (any container PyAV reads) anywhere under ROOT: the frame at
  ``--frame-time`` seconds (default: the middle of the video) and 3 s of the video's own audio
  centred on that frame's timestamp;
- the extracted layout ``ROOT/frames/<id>.jpg`` + ``ROOT/audio/<id>.wav``: the image and the
  3 s in the middle of the audio file.

Ids are ``<youtube id>_<start sec:06d>``; file and list names in the other forms in circulation
(unpadded start, ``<start>_<end>`` in seconds or milliseconds, as the mirrors name them: see
:data:`~avloc.data.sources.common.CLIP_NAMES`) are read as that id. ``--ids vggss_144k.txt``
restricts the corpus to a public list (ids without media are reported in ``report.tsv`` and
listed in ``missing_ids.txt``, with "N of M clips found" among the notes), otherwise every clip
found is used. The extracted layouts of EZ-VSL/SLAVC/FNAC (``frames/`` + ``audio/``) and
SSL-TIE (``total_video_frames/<id>/*.jpg`` + ``total_video_3s_audio/``) are read too. ``--labels``
(the public ``vggsound.csv``: ``youtube_id,start,class,split``, or ``id,class`` rows) fills
``label``; without it labels are -1.

Rows: ``id``, ``image`` (S x S, S = ``--image-size``, default 256 so the loader's
resize-to-246 and random 224 crop only downsample; bicubic, aspect not kept, like the test-time
resize), ``audio`` (3 s, 16 kHz, int16), ``label``. Split ``train``; no ground truth.
"""

from __future__ import annotations

from pathlib import Path

from avloc.data.prepare import Plan, SampleSpec, Skip
from avloc.data.prepare.options import Option
from avloc.data.prepare.plan import MISSING_IDS_NAME
from avloc.data.sources.common import (
    LAYOUT,
    MediaLayout,
    SourceBase,
    class_index,
    clip_id,
    read_id_list,
    read_labels,
)


class VGGSoundPreparer(SourceBase):
    source = "vggsound"
    split = "train"
    summary = "VGGSound training pairs: a frame and the 3 s of audio around it."
    example = (
        "avloc prepare vggsound --root VGGSound/ --ids vggss_144k.txt "
        "--out data/vggsound144k --workers 8"
    )
    options = (
        Option("--root", "Videos, or frames/ + audio/"),
        Option("--ids", "Id list (vggss_144k.txt)"),
        Option("--labels", "vggsound.csv or id,class rows"),
        LAYOUT,
        Option("--frame-time", "Frame time, s (default: middle)"),
    )
    shared = ("image_size", "min_audio_seconds")

    def __init__(
        self,
        root: Path,
        ids: Path | None = None,
        labels: Path | None = None,
        layout: str = "auto",
        frame_time: float | None = None,
        **common,
    ):
        super().__init__(**common)
        self.root = Path(root).absolute()
        self.ids = ids
        self.labels = labels
        self.layout = layout
        self.frame_time = frame_time

    def plan(self) -> Plan:
        media = MediaLayout(self.root, self.layout)
        listed = [clip_id(i) for i in read_id_list(self.ids)] if self.ids else None
        wanted = list(dict.fromkeys(listed)) if listed is not None else media.ids()
        names = {clip_id(k): v for k, v in read_labels(self.labels).items()} if self.labels else {}
        class_names, index = class_index(names.values())
        samples: list[SampleSpec] = []
        skipped: list[Skip] = []
        for sample_id in wanted:
            found = media.media(sample_id)
            if found is None:
                skipped.append(media.missing(sample_id))
                continue
            if "video" in found:
                found.update(time=self.frame_time, center_on_frame=True)
            samples.append(
                SampleSpec(id=sample_id, label=index.get(names.get(sample_id, ""), -1), **found)
            )
        notes = [f"layout: {media.layout} ({media.root})"]
        missing = None
        if listed is not None:
            missing = [s.id for s in skipped]
            notes.append(
                f"id list {Path(self.ids).name}: {len(wanted) - len(missing)} of {len(wanted)} "
                f"clips found, {len(missing)} missing (their ids: {MISSING_IDS_NAME})"
            )
        if names:
            unlabelled = sum(1 for s in samples if s.label < 0)
            notes.append(f"labels: {len(class_names)} classes, {unlabelled} clip(s) without one")
        return Plan(
            source=self.source,
            split=self.split,
            samples=samples,
            settings=self.settings(samples, ("label",)),
            class_names=class_names,
            skipped=skipped,
            notes=notes,
            missing_ids=missing,
        )
