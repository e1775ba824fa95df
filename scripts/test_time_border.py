"""Adaptive cIoU@0.5 of a trained run with a border of mean colour added around each test image
(notes 9.8, 9.9): the network sees S + 2B pixels and its (larger) map is drawn onto the S-pixel
image with aligned corners, as the protocol draws any map; half-pixel drawing beside it. The
border is B in total: the network's own ``inference_border`` is not added to it. Usage:
    python3 scripts/test_time_border.py RUN_DIR|CHECKPOINT.keras SHARDS [BORDER ...]
"""

import sys

import numpy as np

from avloc.data.shards import ShardSet
from avloc.inputs.images import preprocess_test
from avloc.maps.engine import MapsEngine
from avloc.maps.records import collect_records
from avloc.metrics import ground_truth_maps
from avloc.models.io import load_network
from avloc.runs import RunDir
from avloc.utils.interpolation import upsample

run, data, *borders = sys.argv[1:]
net = load_network(run if run.endswith(".keras") else RunDir(run).finished_model())
shards = ShardSet(data)
size = int(net.inputs["image_size"])
records = collect_records(net, shards, negatives=())  # positive maps and audio embeddings
truth = ground_truth_maps(records, np.arange(len(records)), size)
images = np.stack(
    [preprocess_test(i, size) for i in shards.read(np.arange(len(shards)), ["image"])["image"]]
)
engine = MapsEngine(net)


def adaptive_ciou_at_05(maps: np.ndarray) -> float:
    """% of samples whose top-k pixels (k = box area) overlap the box with IoU >= 0.5."""
    hits = []
    for pred, gt in zip(maps, truth, strict=True):
        k = int(gt.sum())
        above = pred >= np.sort(pred.ravel())[::-1][k - 1]
        hits.append((above * gt).sum() / (gt.sum() + (above * (gt == 0)).sum()) >= 0.5)
    return 100 * float(np.mean(hits))


for border in [int(b) for b in borders or (0, 4, 8, 12, 16)]:
    padded = np.pad(images, ((0, 0), (border, border), (border, border), (0, 0)))
    maps = engine.maps(engine.encoders.encode_image(padded), records.audio_emb)
    aligned = adaptive_ciou_at_05(upsample(maps, size))
    half = adaptive_ciou_at_05(upsample(maps, size, half_pixel=True))
    print(
        f"border {border:2d} px: {maps.shape[1]}x{maps.shape[2]} maps, adaptive cIoU@0.5 "
        f"{aligned:.1f} (aligned corners), {half:.1f} (half-pixel)"
    )
