"""Negative-audio metrics (silence, noise, offscreen sound): pIA and AUC_N (docs/protocol.md).

For one negative type, with ``uth`` the universal threshold (raw cosine units):

* per sample: ``pIA_sample = count(map > uth) / (H * W)`` (a fraction in ``[0, 1]``);
* ``pIA = 100 * mean over samples of pIA_sample`` (percent, lower is better);
* ``AUC_N = 100 * trapezoid area under frac(pIA_sample <= x)`` for ``x = 0, 0.05, ..., 1``
  (21 points, pIA as a fraction; percent, higher is better).

Units: :func:`pia_fractions` returns per-sample fractions; :func:`pia_pct`, :func:`auc_n_pct`
and :func:`negative_summary` return percent.
"""

from __future__ import annotations

import numpy as np

from ._common import GRID_21, as_1d, as_map_batch, per_map_thresholds, trapezoid

__all__ = ["auc_n_pct", "negative_summary", "pia_fractions", "pia_pct"]


def pia_fractions(maps, uth) -> np.ndarray:
    """Per-sample falsely activated fraction: ``count(map > uth) / (H * W)``.

    Args:
        maps: ``(N, H, W)`` or ``(H, W)`` raw heatmaps computed with negative audio.
        uth: universal threshold, raw cosine units (strict ``>`` as in
            :func:`avloc.metrics.binarize_universal`), or one threshold per map (``(N,)``).

    Returns:
        float64 ``(N,)`` fractions in ``[0, 1]`` (``(1,)`` for a single map).
    """
    batch, lead = as_map_batch(maps)
    n_pix = batch.shape[1] * batch.shape[2]
    above = batch > per_map_thresholds(uth, lead)
    return np.count_nonzero(above, axis=(1, 2)) / n_pix


def _fractions(maps_or_fraction, uth: float | None) -> np.ndarray:
    """1-D input: per-sample fractions as is; ``(H, W)`` / ``(N, H, W)``: maps, needs ``uth``."""
    arr = np.asarray(maps_or_fraction, dtype=np.float64)
    if arr.ndim <= 1:
        frac = as_1d(arr, "pIA fractions")
        if np.any(frac < 0) or np.any(frac > 1):
            raise ValueError("per-sample pIA fractions must lie in [0, 1]")
        return frac
    if uth is None:
        raise ValueError("uth is required when heatmaps (H, W) / (N, H, W) are given")
    return pia_fractions(arr, uth)


def pia_pct(maps_or_fraction, uth: float | None = None) -> float:
    """pIA in percent: ``100 * mean_n(count(map_n > uth) / (H * W))``. Lower is better.

    Args:
        maps_or_fraction: ``(N, H, W)`` or ``(H, W)`` raw heatmaps (then ``uth`` is required),
            or a 1-D ``(N,)`` array of per-sample fractions in ``[0, 1]``.
        uth: universal threshold, raw cosine units.

    Returns:
        Python float in ``[0, 100]``.
    """
    return 100.0 * float(np.mean(_fractions(maps_or_fraction, uth)))


def auc_n_pct(maps_or_fraction, uth: float | None = None, thresholds=None) -> float:
    """AUC_N in percent: ``100 * trapezoid area under frac(pIA_sample <= x)``, ``x = i / 20``.

    ``pIA_sample`` is the per-sample fraction (not percent); the grid is ``x = 0, 0.05, ..., 1``
    (21 points, same value as ``sklearn.metrics.auc``). Higher is better; 100 means no sample
    has any pixel above ``uth``.

    Args:
        maps_or_fraction: as in :func:`pia_pct`.
        uth: universal threshold, raw cosine units (maps only).
        thresholds: optional increasing grid of ``x`` (default the 21-point grid), as in
            :func:`avloc.metrics.success_auc`.

    Returns:
        Python float in ``[0, 100]`` for the default grid.
    """
    frac = _fractions(maps_or_fraction, uth)
    x = GRID_21 if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    curve = np.mean(frac[None, :] <= x[:, None], axis=1)
    return 100.0 * trapezoid(x, curve)


def negative_summary(maps_or_fraction, uth: float | None = None) -> dict[str, float]:
    """pIA and AUC_N for one negative type, **in percent**.

    Args:
        maps_or_fraction: ``(N, H, W)`` / ``(H, W)`` raw heatmaps (``uth`` required) or 1-D
            ``(N,)`` per-sample pIA fractions in ``[0, 1]``.
        uth: universal threshold, raw cosine units.

    Returns:
        ``{"pia": pIA, "auc_n": AUC_N}`` as plain Python floats in ``[0, 100]``.
    """
    frac = _fractions(maps_or_fraction, uth)
    return {"pia": pia_pct(frac), "auc_n": auc_n_pct(frac)}
