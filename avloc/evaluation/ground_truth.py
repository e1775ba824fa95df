"""Ground truth at full resolution for the metrics (docs/protocol.md), in numpy.

- :func:`ground_truth_maps` builds float32 ``(N, S, S)`` ground truth in ``[0, 1]`` from a
  record's ``gt_rule``: ``"boxes"`` (VGG-SS binary union of normalised boxes), ``"consensus"``
  (Flickr: per-annotator unions summed, halved, clipped; boxes stored as ``v / 256``), ``"mask"``
  (binary masks, nearest-neighbour resized when their size differs from ``S``).
"""

from __future__ import annotations

import numpy as np

from avloc.errors import DataError
from avloc.metrics import gt_flickr, gt_from_boxes_normalized


def ground_truth_maps(records, indices, size: int) -> np.ndarray:
    """Ground truth of samples ``indices`` of ``records`` as float32 ``(n, size, size)``."""
    rule = records.gt_rule
    indices = np.asarray(indices)
    out = np.zeros((len(indices), size, size), np.float32)
    if rule == "mask":
        if records.mask is None:
            raise DataError("the data set's ground truth rule is 'mask' but it holds no masks")
        for row, i in enumerate(indices):
            mask = records.mask[i]
            if mask.shape != (size, size):
                ys = (np.arange(size) * mask.shape[0] / size).astype(int)
                xs = (np.arange(size) * mask.shape[1] / size).astype(int)
                mask = mask[ys][:, xs]
            out[row] = mask > 0
        return out
    if rule not in ("boxes", "consensus"):
        raise DataError("the data set has no ground truth (no boxes or masks)")
    if records.boxes is None:
        raise DataError(f"the data set's ground truth rule is {rule!r} but it holds no boxes")
    for row, i in enumerate(indices):
        boxes = np.asarray(records.boxes[i], np.float64).reshape(-1, 4)
        keep = ~np.isnan(boxes).any(axis=1)
        if rule == "boxes":
            out[row] = gt_from_boxes_normalized(boxes[keep], size)
            continue
        owners = (
            np.asarray(records.box_group[i]).reshape(-1)[keep]
            if records.box_group is not None
            else np.arange(int(keep.sum()))
        )
        per_annotator = [boxes[keep][owners == a] * 256.0 for a in np.unique(owners)]
        out[row] = gt_flickr(per_annotator, size) if per_annotator else 0.0
    return out
