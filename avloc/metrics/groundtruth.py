"""Ground-truth maps from bounding boxes (docs/protocol.md): VGG-SS and Flickr-SoundNet.

Box pixel convention (both datasets): a box ``(x1, y1, x2, y2)`` is converted to integer pixel
coordinates first and then painted as ``map[y1:y2, x1:x2] = 1`` -- ``x1``/``y1`` inclusive,
``x2``/``y2`` exclusive, ``x`` along the width (columns), ``y`` along the height (rows). A box
with ``x2 <= x1`` or ``y2 <= y1`` paints nothing. Integer coordinates are clipped to
``[0, W]`` / ``[0, H]`` so that no negative index wraps around.

* **VGG-SS**: boxes normalised to ``[0, 1]``; ``int(clip(v, 0, 1) * size)``; the map is the
  binary union of all boxes.
* **Flickr**: boxes in a 256x256 pixel frame; ``int(size * v / 256)``; one binary map per
  annotator, summed over annotators, divided by 2 and clipped to 1 (values ``{0, 0.5, 1}`` for
  the usual one-box-per-annotator annotations).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["gt_flickr", "gt_from_boxes_normalized"]


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
