"""Ground truth (docs/protocol.md): how a data set's boxes or masks become a map, in numpy.

The one home of ground truth: the box rules of VGG-SS and Flickr-SoundNet, the rule a shard set
follows (its ``ground_truth`` attribute, :func:`gt_rule_of`) and the fields that carry it
(:data:`GT_FIELDS`, read with the maps by :mod:`avloc.maps.records`), and the full-resolution
maps of a test set's samples (:func:`ground_truth_maps`) that every scorer uses.

Box pixel convention (both datasets): a box ``(x1, y1, x2, y2)`` is converted to integer pixel
coordinates first and then painted as ``map[y1:y2, x1:x2] = 1`` -- ``x1``/``y1`` inclusive,
``x2``/``y2`` exclusive, ``x`` along the width (columns), ``y`` along the height (rows). A box
with ``x2 <= x1`` or ``y2 <= y1`` paints nothing. Integer coordinates are clipped to
``[0, W]`` / ``[0, H]`` so that no negative index wraps around.

* **VGG-SS** (rule ``"boxes"``): boxes normalised to ``[0, 1]``; ``int(clip(v, 0, 1) * size)``;
  the map is the binary union of all boxes.
* **Flickr** (rule ``"consensus"``): boxes in a 256x256 pixel frame (stored as ``v / 256``);
  ``int(size * v / 256)``; one binary map per annotator, summed over annotators, divided by 2
  and clipped to 1 (values ``{0, 0.5, 1}`` for the usual one-box-per-annotator annotations).
* **Masks** (rule ``"mask"``, AVSBench S4, IS3): binary masks, nearest-neighbour resized when
  their size differs from the map's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avloc.errors import DataError

__all__ = [
    "GT_FIELDS",
    "ground_truth_maps",
    "gt_flickr",
    "gt_from_boxes_normalized",
    "gt_rule_of",
    "stored_boxes",
]

#: The shard fields that carry ground truth: normalised boxes ``(K, 4)`` per sample (or one
#: ``box``), the annotator of each box (Flickr), masks.
GT_FIELDS = ("boxes", "box", "box_group", "mask")


def _hw(size) -> tuple[int, int]:
    if np.ndim(size) == 0:
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive; got {size!r}")
    return h, w


def _as_boxes(boxes, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be (x1, y1, x2, y2) boxes of shape (K, 4); got {arr.shape}")
    return arr


def _paint(mask: np.ndarray, ix: np.ndarray) -> None:
    """Paint integer boxes ``(x1, y1, x2, y2)`` into ``mask[y1:y2, x1:x2] = 1`` (in place)."""
    h, w = mask.shape
    for x1, y1, x2, y2 in ix:
        x1, x2 = (int(np.clip(v, 0, w)) for v in (x1, x2))
        y1, y2 = (int(np.clip(v, 0, h)) for v in (y1, y2))
        mask[y1:y2, x1:x2] = 1.0


def gt_from_boxes_normalized(boxes, size=224) -> np.ndarray:
    """VGG-SS ground truth: binary union of boxes given normalised to ``[0, 1]``.

    Each coordinate becomes ``int(clip(v, 0, 1) * S)`` (``S = W`` for x, ``H`` for y; truncation
    as in the reference ``(np.clip(box, 0, 1) * 224).astype(int)``) and each box paints
    ``map[y1:y2, x1:x2] = 1``.

    Args:
        boxes: ``(K, 4)`` or ``(4,)`` array-like of ``(x1, y1, x2, y2)`` in ``[0, 1]``; ``K = 0``
            gives an empty map.
        size: output side in pixels (int, default 224) or ``(H, W)``.

    Returns:
        float32 ``(H, W)`` map with values in ``{0, 1}``.
    """
    h, w = _hw(size)
    arr = _as_boxes(boxes, "boxes")
    scale = np.array([w, h, w, h], dtype=np.float64)
    ix = np.trunc(np.clip(arr, 0.0, 1.0) * scale).astype(np.int64)
    out = np.zeros((h, w), dtype=np.float32)
    _paint(out, ix)
    return out


def gt_flickr(boxes_256_per_annotator, size=224) -> np.ndarray:
    """Flickr-SoundNet ground truth: annotator consensus ``clip(sum_a box_map_a / 2, 0, 1)``.

    Each coordinate (256 px frame) becomes ``int(S * v / 256)`` (``S = W`` for x, ``H`` for y;
    e.g. ``int(224 * 100 / 256) = int(87.5) = 87``), each annotator's map is 1 inside its box
    (the union when an annotator gave several), the maps are summed over annotators, divided by
    2 and clipped to 1.

    Args:
        boxes_256_per_annotator: one entry per annotator, each a ``(4,)`` box or a ``(K, 4)``
            array of boxes ``(x1, y1, x2, y2)`` in 256 px coordinates. A plain ``(A, 4)`` array
            means one box per annotator (the reference code's layout).
        size: output side in pixels (int, default 224) or ``(H, W)``.

    Returns:
        float32 ``(H, W)`` map with values in ``{0, 0.5, 1}`` (soft ground truth).
    """
    h, w = _hw(size)
    scale = np.array([w, h, w, h], dtype=np.float64)
    entries = boxes_256_per_annotator
    try:
        regular = np.asarray(entries, dtype=np.float64)
    except ValueError:  # ragged: annotators with different numbers of boxes
        regular = None
    if regular is not None and regular.ndim <= 2:
        entries = list(_as_boxes(regular, "boxes_256_per_annotator"))  # one box per annotator
    elif regular is not None:
        entries = list(regular)  # (A, K, 4)
    elif not isinstance(entries, Sequence):
        raise ValueError("boxes_256_per_annotator must be a sequence of per-annotator boxes")
    total = np.zeros((h, w), dtype=np.float64)
    for entry in entries:
        arr = _as_boxes(entry, "an annotator's boxes")
        ix = np.trunc(scale * arr / 256.0).astype(np.int64)
        ann = np.zeros((h, w), dtype=np.float64)
        _paint(ann, ix)
        total += ann
    return np.minimum(total / 2.0, 1.0).astype(np.float32)


def gt_rule_of(shards) -> str:
    """The ground-truth rule of a shard set: its ``ground_truth`` attribute, else by fields.

    ``"boxes"``, ``"consensus"``, ``"mask"``, or ``""`` when the shards hold no ground truth.
    """
    rule = str(shards.attrs.get("ground_truth", ""))
    if rule:
        return rule
    if "boxes" in shards.fields or "box" in shards.fields:
        return "boxes"
    if "mask" in shards.fields:
        return "mask"
    return ""


def stored_boxes(columns) -> np.ndarray | None:
    """The boxes of rows read from shards (a mapping of fields) as ``(N, K, 4)``, NaN-padded:
    the ``boxes`` field, else the one ``box`` per sample as ``K = 1``; None without either."""
    if columns.get("boxes") is not None:
        return columns["boxes"]
    if columns.get("box") is not None:
        return columns["box"][:, None, :].astype(np.float32)
    return None


def ground_truth_maps(records, indices, size: int) -> np.ndarray:
    """Ground truth of samples ``indices`` of ``records`` as float32 ``(n, size, size)``.

    ``records``: anything with ``gt_rule``, ``boxes`` (``(N, K, 4)`` normalised, NaN-padded),
    ``box_group`` (``(N, K)`` annotator of each box, or None) and ``mask`` (``(N, S, S)`` or
    None), such as :class:`avloc.maps.records.SampleRecords`.
    """
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
