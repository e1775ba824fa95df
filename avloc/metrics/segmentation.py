"""AVSBench S4 segmentation metrics: mIoU and F-score (beta^2 = 0.3) (docs/protocol.md).

Masks are binary ``(N, H, W)``; any value ``> 0`` is the object (so ``{0, 1}`` and ``{0, 255}``
masks both work).

* **mIoU**: per image ``IoU = |P & M| / |P | M|`` of the binarised map ``P`` (any threshold
  family, :func:`avloc.metrics.binarize`) with the mask ``M``, averaged over images. As in the
  AVSBench reference, an image with an empty mask scores ``|~P & ~M| / (H * W)`` (the fraction
  of correctly empty pixels); unlike the reference no ``1e-7`` is added to the union (so a
  perfect match is exactly 1).
* **F-score** (AVSBench ``Eval_Fmeasure`` with min-max instead of sigmoid): per image the map is
  min-max normalised to ``[0, 1]``; for each of the 255 thresholds
  ``th = np.linspace(0, 1 - 1e-10, 255)``: ``pred = map >= th``, ``tp = sum(pred * M)``,
  ``P = tp / (sum(pred) + 1e-10)``, ``R = tp / (sum(M) + 1e-10)``,
  ``F = (1 + b2) P R / (b2 P + R + 1e-10)`` with ``b2 = 0.3``; ``F`` is averaged over the images
  with a non-empty mask (empty masks are skipped, as in the reference) per threshold, and the
  result is the maximum over thresholds.

Units: :func:`s4_iou`, :func:`s4_miou` and :func:`s4_fscore` return fractions in ``[0, 1]``;
:func:`s4_summary` returns percent.
"""

from __future__ import annotations

import numpy as np

from ._common import as_map_batch, per_map_result
from .thresholding import binarize, minmax_normalize

__all__ = ["s4_fscore", "s4_fscore_totals", "s4_iou", "s4_miou", "s4_summary"]


def _masks(masks, shape) -> np.ndarray:
    m, _ = as_map_batch(masks, "masks")
    if m.shape != shape:
        raise ValueError(f"masks shape {m.shape} does not match the maps shape {shape}")
    return m > 0


def s4_iou(pred_bin, masks):
    """Per-image IoU ``|P & M| / |P | M|``; empty mask: ``|~P & ~M| / (H * W)``.

    Args:
        pred_bin: ``(H, W)`` or ``(..., H, W)`` binary prediction (bool or {0, 1}).
        masks: binary masks of the same shape (``> 0`` is the object).

    Returns:
        Python float for one image, else float64 array of the leading shape; fractions.
    """
    p, lead = as_map_batch(pred_bin, "pred_bin")
    p = p > 0
    m = _masks(masks, p.shape)
    n_pix = p.shape[1] * p.shape[2]
    inter = np.count_nonzero(p & m, axis=(1, 2))
    union = np.count_nonzero(p | m, axis=(1, 2))
    empty = ~m.any(axis=(1, 2))
    tn = np.count_nonzero(~p & ~m, axis=(1, 2))
    iou = np.where(empty, tn / n_pix, inter / np.maximum(union, 1))
    return per_map_result(iou, lead)


def s4_miou(pred_bin, masks) -> float:
    """mIoU: mean over images of :func:`s4_iou`; a Python float fraction in ``[0, 1]``.

    Args:
        pred_bin: ``(N, H, W)`` binarised maps; masks: ``(N, H, W)`` binary masks.
    """
    return float(np.mean(s4_iou(pred_bin, masks)))


def s4_fscore(maps, masks, beta2: float = 0.3, n_thresholds: int = 255) -> float:
    """Max over thresholds of the image-averaged F-beta (AVSBench convention, module docstring).

    ``th = np.linspace(0, 1 - 1e-10, n_thresholds)`` on the per-image min-max normalised map;
    ``F = (1 + b2) P R / (b2 P + R + 1e-10)`` with ``P = tp / (pred_pos + 1e-10)`` and
    ``R = tp / (gt_pos + 1e-10)``; images with an empty mask are skipped.

    Args:
        maps: ``(N, H, W)`` or ``(H, W)`` raw heatmaps (any real values; normalised inside).
        masks: binary masks of the same shape (``> 0`` is the object).
        beta2: ``beta^2`` (0.3).
        n_thresholds: number of thresholds (255).

    Returns:
        Python float fraction in ``[0, 1]``; 0.0 when every mask is empty.
    """
    total, count = s4_fscore_totals(maps, masks, beta2, n_thresholds)
    if count == 0:
        return 0.0
    return float(np.max(total / count))


def s4_fscore_totals(maps, masks, beta2: float = 0.3, n_thresholds: int = 255):
    """Per-threshold sums of F over images with a non-empty mask, and their count.

    :func:`s4_fscore` is ``max(total / count)``; summing ``total`` and ``count`` over chunks of
    a large data set gives the same value without holding every map in memory.

    Returns:
        ``(total, count)``: float64 ``(n_thresholds,)`` and a Python int.
    """
    pred, _ = as_map_batch(minmax_normalize(maps))
    m = _masks(masks, pred.shape)
    th = np.linspace(0.0, 1.0 - 1e-10, int(n_thresholds))
    n, hw = pred.shape[0], pred.shape[1] * pred.shape[2]
    total = np.zeros_like(th)
    count = 0
    for i in range(n):
        y = m[i].ravel()
        gt_pos = float(np.count_nonzero(y))
        if gt_pos == 0:
            continue
        x = pred[i].ravel()
        order = np.argsort(x, kind="stable")
        xs = x[order]
        # tp_suffix[j] = number of mask pixels among the pixels ranked j.. (values >= xs[j])
        tp_suffix = np.concatenate([np.cumsum(y[order][::-1])[::-1], [0]]).astype(np.float64)
        first = np.searchsorted(xs, th, side="left")  # first index with xs >= th
        pred_pos = (hw - first).astype(np.float64)
        tp = tp_suffix[first]
        prec = tp / (pred_pos + 1e-10)
        rec = tp / (gt_pos + 1e-10)
        total += (1 + beta2) * prec * rec / (beta2 * prec + rec + 1e-10)
        count += 1
    return total, count


def s4_summary(maps, masks, method: str = "median", uth: float | None = None) -> dict[str, float]:
    """S4 mIoU (of the ``method``-binarised maps) and F-score, **in percent**.

    Args:
        maps: ``(N, H, W)`` raw heatmaps (cosine similarity).
        masks: ``(N, H, W)`` binary masks.
        method: threshold family for mIoU: ``"median"``, ``"adaptive"`` (top-k with k = mask
            area) or ``"universal"`` (needs ``uth``, raw cosine units).
        uth: universal threshold.

    Returns:
        ``{"miou": 100 * mIoU, "fscore": 100 * F}`` as Python floats in ``[0, 100]``.
    """
    pred = binarize(maps, method, gt=masks, uth=uth)
    return {"miou": 100.0 * s4_miou(pred, masks), "fscore": 100.0 * s4_fscore(maps, masks)}
