"""xavijuanola/vssl_eval's scores of the maps :func:`avloc.evaluation.vssl_eval.collect` made
(``avloc eval --protocol vssl_eval``): cIoU and pIA at four thresholds, the curve areas on
vssl_eval's own grid, FLOC and FAUC, and the floors. avloc's metrics are reused where the rules
agree; where they differ, :mod:`avloc.evaluation.vssl_eval`'s docstring says how and why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avloc import metrics
from avloc.evaluation.vssl_eval import MAP_SIZE, NEGATIVES, THRESHOLDS, VsslRecords
from avloc.utils.interpolation import upsample

#: vssl_eval's 21-point grid, built as ``0.05 * k``: 7 of its points are one ulp above avloc's
#: ``k / 20`` (``0.05 * 14 = 0.7000000000000001``), so a value exactly on one of them counts
#: differently (see the module: "Differs from avloc's").
GRID = 0.05 * np.arange(21)


def ciou(pred: np.ndarray, gt: np.ndarray, threshold) -> np.ndarray:
    """vssl_eval's ``cal_CIOU`` for ``(n, H, W)`` maps and per-sample thresholds: avloc's cIoU
    (:func:`avloc.metrics.ciou`, 0 where vssl_eval's 0 / 0 gives NaN and it appends 0) of
    ``pred > threshold`` (:func:`avloc.metrics.binarize_universal`, a threshold per map)."""
    return np.atleast_1d(metrics.ciou(metrics.binarize_universal(pred, threshold), gt))


def curve_area(values: np.ndarray, above: bool) -> float:
    """The 21-point trapezoid of ``share(values >= 0.05 k)`` (``above``: avloc's AUC,
    :func:`avloc.metrics.success_auc`) or ``share(values <= 0.05 k)`` (AUC_N,
    :func:`avloc.metrics.auc_n_pct`, fractions in ``[0, 1]``), x 100, on vssl_eval's
    :data:`GRID`."""
    if above:
        return 100.0 * metrics.success_auc(values, GRID)
    return metrics.auc_n_pct(values, thresholds=GRID)


def sample_thresholds(positive_up: np.ndarray, gt: np.ndarray, uth: float) -> dict[str, np.ndarray]:
    """Each threshold of :data:`THRESHOLDS` per sample, from the upsampled positive maps."""
    n = len(positive_up)
    flat = np.sort(positive_up.reshape(n, -1), axis=1)
    pixels = flat.shape[1]
    gt_pixels = np.sum(gt != 0, axis=(1, 2))
    gt_pixels = np.where(gt_pixels == 0, pixels // 2, gt_pixels)
    return {
        "0.5": np.full(n, 0.5),
        "uth": np.full(n, float(uth)),
        "median": flat[:, int(pixels * 0.5)].astype(np.float64),
        "adaptive": flat[np.arange(n), pixels - gt_pixels].astype(np.float64),
    }


def score(records: VsslRecords, uth: float, chunk: int = 32) -> dict[str, Any]:
    """vssl_eval's metrics (see the module) of ``records`` at the fixed threshold ``uth``."""
    n = len(records.positive)
    ious = {t: [] for t in THRESHOLDS}
    pia = {(k, t): [] for k in NEGATIVES for t in THRESHOLDS}
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        pos = upsample(records.positive[sl], MAP_SIZE, half_pixel=not records.positive_aligned)
        gt = records.gt[sl]
        thresholds = sample_thresholds(pos, gt, uth)
        for t in THRESHOLDS:
            ious[t].append(ciou(pos, gt, thresholds[t]))
        negatives = {
            "silence": records.silence[None, sl],
            "noise": records.noise[:, sl],
            "offscreen": records.offscreen[:, sl],
        }
        for k, maps in negatives.items():
            for seed_maps in maps:
                up = upsample(seed_maps, MAP_SIZE, half_pixel=True).astype(np.float64)
                for t in THRESHOLDS:
                    pia[(k, t)].append(metrics.pia_fractions(up, thresholds[t]))
    out: dict[str, Any] = {"uth": float(uth), "family": records.family}
    for t in THRESHOLDS:
        values = np.concatenate(ious[t])
        section = {"CIoU": float(values.mean() * 100), "AUC": curve_area(values, above=True)}
        for k in NEGATIVES:
            values = np.concatenate(pia[(k, t)])
            section[f"pIA_{k}"] = metrics.pia_pct(values)
            section[f"AUC_N_{k}"] = curve_area(values, above=False)
        out[t] = section
    at = out["uth"]
    pia_at = {k: at[f"pIA_{k}"] for k in NEGATIVES}
    auc_n_at = {k: at[f"AUC_N_{k}"] for k in NEGATIVES}
    out["F"] = {  # avloc's FLOC and FAUC (harmonic means), of vssl_eval's numbers
        "F_pos_neg": metrics.floc(at["CIoU"], pia_at),
        **{f"F_pos_{k}": metrics.floc(at["CIoU"], pia_at[k]) for k in NEGATIVES},
        "F_auc": metrics.fauc(at["AUC"], auc_n_at),
        **{f"F_auc_{k}": metrics.fauc(at["AUC"], auc_n_at[k]) for k in NEGATIVES},
    }
    extremes = {}
    for condition in ("positive", *NEGATIVES):
        maps = getattr(records, condition)
        flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
        extremes[condition] = {
            "max_mean": float(flat.max(1).mean()),
            "max_median": float(np.median(flat.max(1))),
            "min_mean": float(flat.min(1).mean()),
            "min_median": float(np.median(flat.min(1))),
        }
    out["extremes"] = extremes
    return out


def with_floor(records: VsslRecords, kind: str, seed: int = 0) -> VsslRecords:
    """``records`` with every map replaced by the audio-free floor ``kind``
    (:mod:`avloc.evaluation.floors`), the same map for every condition and seed."""
    import dataclasses

    from avloc.evaluation.floors import floor_maps

    n, height, width = records.positive.shape
    maps = floor_maps(kind, n, height, width, seed)
    seeds = (len(records.noise), *maps.shape)
    return dataclasses.replace(
        records,
        family="floor",
        positive=maps,
        silence=maps,
        noise=np.broadcast_to(maps, seeds),
        offscreen=np.broadcast_to(maps, seeds),
    )
