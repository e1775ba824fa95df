"""Private helpers shared by the metric modules: shape checks, the threshold grid, trapezoids.

Nothing here is public API; the public functions re-exported by :mod:`avloc.metrics` document
the formulas (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: The 21-point grid ``t = 0, 0.05, ..., 1`` used by every AUC in docs/protocol.md (cIoU AUC,
#: AUC_N, IAUC). Written ``i / 20`` so every point is the correctly rounded decimal (``0.15``,
#: not ``0.05 * 3 == 0.15000000000000002``); the reference code's ``0.05 * i`` only differs for
#: values within one ulp of a grid point.
GRID_21 = np.arange(21, dtype=np.float64) / 20.0


def as_map_batch(maps, name: str = "maps") -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(batch, lead_shape)``: float64 ``(M, H, W)`` view of a ``(..., H, W)`` array.

    ``lead_shape`` is the shape of the leading axes (``()`` for a single ``(H, W)`` map), so a
    per-map result of shape ``(M,)`` can be reshaped back with ``reshape(lead_shape)``.
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W); got shape {arr.shape}")
    h, w = arr.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"{name} must have non-empty H and W; got shape {arr.shape}")
    lead = arr.shape[:-2]
    return arr.reshape((-1, h, w)), lead


def per_map_result(values: np.ndarray, lead: tuple[int, ...]):
    """Reshape a ``(M,)`` per-map result to ``lead``; a single map gives a Python ``float``."""
    values = np.asarray(values, dtype=np.float64)
    if lead == ():
        return float(values.reshape(()))
    return values.reshape(lead)


def per_map_thresholds(thresholds, lead: tuple[int, ...], name: str = "uth") -> np.ndarray:
    """``thresholds`` (one float, or one per map: broadcastable to ``lead``) as float64
    ``(M, 1, 1)``, ready to compare with the ``(M, H, W)`` batch of :func:`as_map_batch`."""
    if thresholds is None:
        raise ValueError(f"{name} is required: one threshold or one per map")
    arr = np.asarray(thresholds, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, lead)
    except ValueError:
        raise ValueError(
            f"{name} must be one threshold or one per map {lead}; got shape {arr.shape}"
        ) from None
    return arr.reshape(-1, 1, 1)


def as_1d(values, name: str) -> np.ndarray:
    """Flatten ``values`` to a non-empty float64 1-D array (``ValueError`` when empty)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def pool_1d(values, name: str) -> np.ndarray:
    """Pool an array, a sequence of arrays (ragged allowed) or a mapping of arrays into 1-D."""
    if isinstance(values, Mapping):
        parts = list(values.values())
    elif isinstance(values, (list, tuple)):
        parts = list(values)
    else:
        parts = [values]
    flat = [np.asarray(p, dtype=np.float64).ravel() for p in parts]
    return as_1d(np.concatenate(flat) if flat else np.zeros(0), name)


def trapezoid(x, y) -> float:
    """Trapezoid area under ``y(x)``: ``sum((x[i+1] - x[i]) * (y[i+1] + y[i]) / 2)``.

    Same value as ``sklearn.metrics.auc(x, y)`` for increasing ``x`` (pure numpy, no sklearn).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
