"""IS3 interactive localisation: IIoU and IAUC (docs/protocol.md).

Each image has two sounding objects, each with its own audio and ground truth, hence two cIoUs
``c[n, 0], c[n, 1]`` (:func:`avloc.metrics.ciou`). Per image the interactive indicator at ``t``
is ``min_s 1[c[n, s] >= t]`` (both sounds localised), which equals ``1[min_s c[n, s] >= t]``:

* ``IIoU = mean_n min_s 1[c[n, s] >= 0.5]``;
* ``IAUC = trapezoid area under mean_n min_s 1[c[n, s] >= t]`` for ``t = 0, 0.05, ..., 1``.

Units: :func:`interactive_indicator`, :func:`iiou` and :func:`iauc` return fractions;
:func:`interactive_summary` returns percent.
"""

from __future__ import annotations

import numpy as np

from ._common import GRID_21, trapezoid

__all__ = ["iauc", "iiou", "interactive_indicator", "interactive_summary"]


def _pairs(cious) -> np.ndarray:
    c = np.asarray(cious, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"cious must be (N, S) with one column per sound (S = 2); got {c.shape}")
    return c


def interactive_indicator(cious, t: float = 0.5) -> np.ndarray:
    """Per-image ``min_s 1[cious[n, s] >= t]``.

    Args:
        cious: ``(N, 2)`` cIoU fractions, one column per sounding object (any ``S >= 1`` works).
        t: cIoU threshold (fraction).

    Returns:
        bool ``(N,)``.
    """
    return np.all(_pairs(cious) >= t, axis=1)


def iiou(cious) -> float:
    """IIoU: ``mean_n min_s 1[cious[n, s] >= 0.5]``; Python float fraction in ``[0, 1]``."""
    return float(np.mean(interactive_indicator(cious, 0.5)))


def iauc(cious) -> float:
    """IAUC: trapezoid area under ``mean_n min_s 1[cious[n, s] >= t]``, ``t = i / 20``.

    Args:
        cious: ``(N, 2)`` cIoU fractions.

    Returns:
        Python float fraction in ``[0, 1]`` (same value as ``sklearn.metrics.auc``).
    """
    c = _pairs(cious).min(axis=1)
    curve = np.mean(c[None, :] >= GRID_21[:, None], axis=1)
    return trapezoid(GRID_21, curve)


def interactive_summary(cious) -> dict[str, float]:
    """``{"iiou": 100 * IIoU, "iauc": 100 * IAUC}`` -- Python floats in percent.

    Args:
        cious: ``(N, 2)`` cIoU fractions, one column per sounding object.
    """
    return {"iiou": 100.0 * iiou(cious), "iauc": 100.0 * iauc(cious)}
