"""The universal threshold's statistic (docs/protocol.md), in numpy.

``Uth = statistic(per-sample maxima of raw maps under the calibration audio)``; the paper uses
the third quartile (the recipe default lives in :class:`avloc.config.EvalConfig`). The threshold
is in raw cosine-similarity units and is then used for every image and audio
(:func:`avloc.metrics.binarize_universal`, :func:`avloc.metrics.pia_pct`). Measuring those
maxima with a network (the calibration) is the maps stage's: :mod:`avloc.maps.calibration`.
"""

from __future__ import annotations

import numpy as np

from ._common import pool_1d

__all__ = ["UTH_STATISTICS", "calibrate_uth"]

#: Named statistics accepted by :func:`calibrate_uth` (besides ``"pXX"``).
UTH_STATISTICS = ("q1", "median", "q3", "max", "mean")

_PERCENTILES = {"q1": 25.0, "median": 50.0, "q3": 75.0}


def calibrate_uth(negative_maxima, statistic: str) -> float:
    """Universal threshold from per-sample maxima of negative (silence/noise) maps.

    Statistics: ``"q1"`` = ``np.percentile(x, 25)``, ``"median"`` = 50th, ``"q3"`` =
    75th, ``"pXX"`` = ``np.percentile(x, XX)`` for ``0 <= XX <= 100`` (e.g. ``"p90"``,
    ``"p99.5"``), all with linear interpolation; ``"max"`` = ``np.max``; ``"mean"`` =
    ``np.mean``.

    Args:
        negative_maxima: per-sample maxima of raw maps (cosine units): an array of any shape, a
            sequence of arrays, or a mapping ``{"silence": ..., "noise": ...}`` (pooled).
        statistic: one of the names above (case-insensitive).

    Returns:
        Python float, raw cosine units.

    Raises:
        ValueError: unknown statistic, percentile out of ``[0, 100]``, or no maxima.
    """
    x = pool_1d(negative_maxima, "negative_maxima")
    stat = str(statistic).strip().lower()
    if stat in _PERCENTILES:
        return float(np.percentile(x, _PERCENTILES[stat]))
    if stat == "max":
        return float(np.max(x))
    if stat == "mean":
        return float(np.mean(x))
    if stat.startswith("p") and len(stat) > 1:
        try:
            q = float(stat[1:])
        except ValueError:
            q = None
        if q is not None and np.isfinite(q) and 0.0 <= q <= 100.0:
            return float(np.percentile(x, q))
    raise ValueError(
        f"unknown Uth statistic {statistic!r}; expected one of {UTH_STATISTICS} "
        "or 'pXX' with 0 <= XX <= 100"
    )
