"""Separability of positive and negative audio by map maxima (docs/protocol.md).

``Sep = Q1(scores of positive pairs) - Q3(scores of negative pairs)``, where a pair's score is
the maximum of its raw heatmap (cosine units) and negatives are pooled over silence, noise and
offscreen audio. Quartiles use ``np.percentile`` with linear interpolation (the numpy default).
Positive ``Sep`` means at least 75 % of positives score above 75 % of negatives.
"""

from __future__ import annotations

import numpy as np

from ._common import as_map_batch, per_map_result, pool_1d

__all__ = ["map_max_scores", "separability"]


def map_max_scores(maps):
    """A pair's score: ``max`` of its raw heatmap over ``H x W``.

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps (cosine similarity).

    Returns:
        Python float for one map, else float64 array of the leading shape; raw cosine units.
    """
    batch, lead = as_map_batch(maps)
    return per_map_result(batch.max(axis=(1, 2)), lead)


def separability(pos_scores, neg_scores) -> dict[str, float]:
    """``Sep = np.percentile(pos, 25) - np.percentile(neg, 75)`` (linear interpolation).

    Args:
        pos_scores: per-pair scores (maxima of raw maps) of positive pairs, any shape.
        neg_scores: per-pair scores of negative pairs: an array, a sequence of arrays or a
            mapping ``{"silence": ..., "noise": ..., "offscreen": ...}``; all are pooled.

    Returns:
        ``{"sep": Sep, "q1_pos": Q1(pos), "q3_neg": Q3(neg)}`` as Python floats in raw cosine
        units (not percent).
    """
    pos = pool_1d(pos_scores, "pos_scores")
    neg = pool_1d(neg_scores, "neg_scores")
    q1 = float(np.percentile(pos, 25))
    q3 = float(np.percentile(neg, 75))
    return {"sep": q1 - q3, "q1_pos": q1, "q3_neg": q3}
