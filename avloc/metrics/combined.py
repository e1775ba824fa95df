"""Combined positive/negative scores FLOC and FAUC (docs/protocol.md), all in percent.

* ``FLOC = HM(cIoU_Uth, mean over negative types of (100 - pIA))``
* ``FAUC = HM(AUC_Uth, mean over negative types of AUC_N)``

with ``HM(a, b) = 2 a b / (a + b)`` the harmonic mean, ``cIoU_Uth`` the mean cIoU x 100 and
``AUC_Uth`` the AUC (percent) of positive pairs under the universal threshold (``ciou_mean`` and
``auc`` of :func:`avloc.metrics.localization_summary`, as :mod:`avloc.evaluation.scoring` passes
them), and pIA / AUC_N (percent) from :mod:`avloc.metrics.negatives`. Example (the paper's
reported values):
``floc(29.61, [0.01, 0.00, 1.72])``
rounds to 45.63 and ``fauc(29.97, [99.99, 100.00, 98.17])`` to 46.05.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["fauc", "floc", "harmonic_mean"]


def harmonic_mean(a: float, b: float) -> float:
    """Harmonic mean ``HM(a, b) = 2 a b / (a + b)`` for ``a, b >= 0``; 0.0 when ``a + b == 0``.

    Returns a Python float in the unit of the inputs (percent for FLOC / FAUC).
    """
    a, b = float(a), float(b)
    if a < 0 or b < 0:
        raise ValueError(f"harmonic_mean needs non-negative inputs; got {a}, {b}")
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def _per_type(values, name: str) -> np.ndarray:
    if isinstance(values, Mapping):
        values = list(values.values())
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty: give one value per negative type")
    if np.any(arr < 0) or np.any(arr > 100):
        raise ValueError(f"{name} must be percentages in [0, 100]; got {arr.tolist()}")
    return arr


def floc(ciou_uth_pct: float, pia_pcts) -> float:
    """FLOC in percent: ``HM(cIoU_Uth, mean_types(100 - pIA))``.

    Args:
        ciou_uth_pct: mean cIoU x 100 of positive pairs under the universal threshold.
        pia_pcts: pIA per negative type, percent -- a float, a sequence or a mapping
            ``{"silence": ..., "noise": ..., "offscreen": ...}``.

    Returns:
        Python float in ``[0, 100]``.
    """
    pia = _per_type(pia_pcts, "pia_pcts")
    return harmonic_mean(ciou_uth_pct, float(np.mean(100.0 - pia)))


def fauc(auc_uth_pct: float, auc_n_pcts) -> float:
    """FAUC in percent: ``HM(AUC_Uth, mean_types(AUC_N))``.

    Args:
        auc_uth_pct: cIoU AUC of positive pairs under the universal threshold, percent.
        auc_n_pcts: AUC_N per negative type, percent (float, sequence or mapping).

    Returns:
        Python float in ``[0, 100]``.
    """
    auc_n = _per_type(auc_n_pcts, "auc_n_pcts")
    return harmonic_mean(auc_uth_pct, float(np.mean(auc_n)))
