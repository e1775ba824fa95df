"""The preparation engine: a planned corpus -> resumable, atomic HDF5 shards and a report.

Modules: :mod:`.plan` (what a plan is made of), :mod:`.samples` (one sample -> one row),
:mod:`.chunks` (fingerprints, state, atomic shard writes, parts), :mod:`.report` (skipped
samples), :mod:`.run` (:func:`prepare`), :mod:`.options` (the options of ``avloc prepare``).

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
   summarises the run. Broken inputs never stop the run; anything else that fails a sample (an
   ``OSError`` about the machine, such as EIO or ESTALE on a network file system, or a bug) does:
   :class:`~avloc.errors.SampleFault`, one line naming the file, raised before the sample's
   chunk is recorded, so running the command again retries it. A part writes both files for every
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

from avloc.data.prepare.chunks import parse_part, part_range
from avloc.data.prepare.plan import (
    PAUSE_ENV,
    REPORT_NAME,
    STATE_DIR,
    SUMMARY_NAME,
    AudioRef,
    Plan,
    Preparer,
    PrepareResult,
    SampleSpec,
    Settings,
    Skip,
)
from avloc.data.prepare.report import read_report, write_report
from avloc.data.prepare.run import prepare
from avloc.data.prepare.samples import frame_number, process_sample

__all__ = [
    "PAUSE_ENV",
    "REPORT_NAME",
    "STATE_DIR",
    "SUMMARY_NAME",
    "AudioRef",
    "Plan",
    "PrepareResult",
    "Preparer",
    "SampleSpec",
    "Settings",
    "Skip",
    "frame_number",
    "parse_part",
    "part_range",
    "prepare",
    "process_sample",
    "read_report",
    "write_report",
]
