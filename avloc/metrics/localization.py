"""Localisation accuracy: cIoU per sample and its success-rate / AUC summary (docs/protocol.md).

* ``ciou(pred_bin, gt) = sum(pred_bin * gt) / (sum(gt) + sum(pred_bin * (gt == 0)))``, with
  ``gt`` possibly soft (Flickr ``{0, 0.5, 1}``).
* ``cIoU@0.5 = frac(ciou >= 0.5)``, ``cIoU_mean = mean(ciou)``,
  ``AUC = trapezoid area under frac(ciou >= t)`` for ``t = 0, 0.05, ..., 1`` (21 points, the
  same value as ``sklearn.metrics.auc``).

Units: :func:`ciou`, :func:`map_cious`, :func:`success_curve` and :func:`success_auc` return
fractions in ``[0, 1]``; :func:`localization_summary` returns percent.
"""

from __future__ import annotations

import numpy as np

from ._common import GRID_21, as_1d, as_map_batch, per_map_result, trapezoid
from .thresholding import binarize

__all__ = [
    "ciou",
    "localization_summary",
    "map_cious",
    "success_auc",
    "success_curve",
]


def ciou(pred_bin, gt):
    """cIoU: ``sum(pred * gt) / (sum(gt) + sum(pred * (gt == 0)))`` per ``(H, W)`` map.

    Args:
        pred_bin: ``(H, W)`` or ``(..., H, W)`` binary prediction (bool or {0, 1}).
        gt: ground truth of the same shape, binary or soft (Flickr ``{0, 0.5, 1}``).

    Returns:
        A Python float in ``[0, 1]`` for a single map, else a float64 array of the leading
        shape ``(...)``. Convention: when the denominator is 0 (empty ground truth *and* empty
        prediction) the cIoU is defined as 0.0 (the reference code gives NaN).
    """
    pred, lead = as_map_batch(pred_bin, "pred_bin")
    g, _ = as_map_batch(gt, "gt")
    if pred.shape != g.shape:
        raise ValueError(f"pred_bin shape {np.shape(pred_bin)} != gt shape {np.shape(gt)}")
    inter = np.sum(pred * g, axis=(1, 2))
    denom = np.sum(g, axis=(1, 2)) + np.sum(pred * (g == 0), axis=(1, 2))
    safe = np.where(denom > 0, denom, 1.0)
    values = np.where(denom > 0, inter / safe, 0.0)
    return per_map_result(values, lead)


def map_cious(maps, gts, method: str, uth: float | None = None) -> np.ndarray:
    """Binarise raw heatmaps with one threshold family, then :func:`ciou` per map.

    Args:
        maps: ``(N, H, W)`` (or ``(H, W)``) raw heatmaps, cosine similarity.
        gts: ground truths of the same shape (binary or soft).
        method: ``"median"``, ``"adaptive"`` or ``"universal"`` (see
            :func:`avloc.metrics.binarize`).
        uth: universal threshold in raw cosine units (``method="universal"`` only).

    Returns:
        float64 array ``(N,)`` of cIoU fractions in ``[0, 1]`` (``(1,)`` for a single map).
    """
    pred = binarize(maps, method, gt=gts, uth=uth)
    return np.atleast_1d(np.asarray(ciou(pred, gts), dtype=np.float64))


def success_curve(values, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """Success curve ``y(t) = frac(values >= t)``.

    Args:
        values: ``(N,)`` per-sample scores (e.g. cIoU fractions in ``[0, 1]``).
        thresholds: increasing 1-D grid; default ``t = i / 20``, ``i = 0..20`` (21 points).

    Returns:
        ``(thresholds, fractions)``: two float64 ``(T,)`` arrays, fractions in ``[0, 1]``.
    """
    v = as_1d(values, "values")
    t = GRID_21 if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    frac = np.mean(v[None, :] >= t[:, None], axis=1)
    return t.copy(), frac


def success_auc(values, thresholds=None) -> float:
    """AUC: trapezoid area under ``frac(values >= t)`` over ``t = 0, 0.05, ..., 1``.

    Identical to ``sklearn.metrics.auc(t, frac)`` on the same 21-point curve.

    Args:
        values: ``(N,)`` per-sample cIoU fractions.
        thresholds: optional increasing grid (default the 21-point grid).

    Returns:
        Python float, a fraction in ``[0, 1]`` for the default grid.
    """
    t, frac = success_curve(values, thresholds)
    return trapezoid(t, frac)


def localization_summary(cious) -> dict[str, float]:
    """Summary of per-sample cIoUs, **in percent**.

    Args:
        cious: ``(N,)`` cIoU fractions in ``[0, 1]`` (e.g. from :func:`map_cious`).

    Returns:
        ``{"ciou_at_05": 100 * frac(ciou >= 0.5), "ciou_mean": 100 * mean(ciou),
        "auc": 100 * AUC}`` -- plain Python floats in ``[0, 100]``; AUC over the 21-point grid.
    """
    v = as_1d(cious, "cious")
    return {
        "ciou_at_05": 100.0 * float(np.mean(v >= 0.5)),
        "ciou_mean": 100.0 * float(np.mean(v)),
        "auc": 100.0 * success_auc(v),
    }
