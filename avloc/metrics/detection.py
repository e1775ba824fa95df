"""SLAVC's extended benchmarks: is there a sounding object, and is it where the map says?

Mo and Morgado (NeurIPS 2022, stoneMo/SLAVC ``utils.EvaluatorFull``) score localization as
detection over a test set that mixes **visible** pairs (the sounding object is in the image) with
**non-sounding** pairs (its source is not visible, or there is no sound). Every pair gets

- a *confidence*: the mean of the top quarter of its map's scores (``ceil(n / 4)`` of the
  ``n`` pixels), scores being the cosine map mapped to [0, 1] by ``(cos + 1) / 2`` (SLAVC's min-max
  of the logits ``cos / tau`` over their range ``[-1 / tau, 1 / tau]``: the same for any tau);
- for visible pairs, a cIoU (fraction) against the ground truth.

At a confidence threshold ``t``: a visible pair with confidence >= t is a true positive when its
cIoU >= ``ciou_thr`` and a false positive otherwise; a non-sounding pair with confidence >= t is
a false positive; a visible pair below t is a false negative (precision and recall are 1 when
their denominators are 0, as in SLAVC).

- **AP** (:func:`average_precision`): precision interpolated to the best at any higher recall,
  summed over recall steps; thresholds are the sorted confidences without the largest, from the
  top, every ``max(1, N // 200)``-th (SLAVC's ``calc_ap``). As there, the sum starts at the
  recall of the first threshold, not at 0, so even a perfect detector scores below 1 on a small
  set (``1 - 2 / V`` with ``V`` visible pairs and distinct confidences); kept for comparability.
- **max-F1** (:func:`max_f1`): the best F1 over the thresholds ``sorted(confidence)[::max(1,
  N // 10)]`` (SLAVC's ``finalize_stats``, which prints that F1 list; papers report its maximum).

Inputs are 1-D arrays of one value per pair (``visible`` bool, ``ciou`` fraction, ignored for
non-sounding pairs, ``confidence`` float); results are fractions (the evaluation reports them
in %).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "average_precision",
    "detection_summary",
    "max_f1",
    "precision_recall",
    "top_quarter_confidence",
]


def top_quarter_confidence(cos_maps) -> np.ndarray:
    """``(N, H, W)`` cosine maps -> ``(N,)`` mean of the top ``ceil(H * W / 4)`` of
    ``(cos + 1) / 2``."""
    maps = np.asarray(cos_maps, np.float64)
    flat = (maps.reshape(len(maps), -1) + 1.0) / 2.0
    k = -(-flat.shape[1] // 4)
    return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def _arrays(visible, ciou, confidence):
    visible = np.asarray(visible, bool)
    ciou = np.asarray(ciou, np.float64)
    confidence = np.asarray(confidence, np.float64)
    if not visible.shape == ciou.shape == confidence.shape or visible.ndim != 1:
        raise ValueError(
            f"visible, ciou and confidence must be 1-D of one length, got {visible.shape}, "
            f"{ciou.shape}, {confidence.shape}"
        )
    return visible, ciou, confidence


def precision_recall(
    visible, ciou, confidence, threshold: float, ciou_thr: float = 0.5
) -> tuple[float, float]:
    """Precision and recall (fractions) at confidence ``threshold``; see the module."""
    visible, ciou, confidence = _arrays(visible, ciou, confidence)
    detected = confidence >= threshold
    true_pos = int(np.sum(detected & visible & (ciou >= ciou_thr)))
    false_pos = int(np.sum(detected & ~visible) + np.sum(detected & visible & (ciou < ciou_thr)))
    false_neg = int(np.sum(~detected & visible))
    precision = 1.0 if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
    recall = 1.0 if true_pos + false_neg == 0 else true_pos / (true_pos + false_neg)
    return precision, recall


def average_precision(visible, ciou, confidence, ciou_thr: float = 0.5) -> float:
    """SLAVC's AP (fraction); see the module. 0 for fewer than two pairs."""
    visible, ciou, confidence = _arrays(visible, ciou, confidence)
    step = max(1, len(confidence) // 200)
    thresholds = np.sort(confidence)[:-1][::-step]
    curve = [precision_recall(visible, ciou, confidence, t, ciou_thr) for t in thresholds]
    if len(curve) < 2:
        return 0.0
    precision = np.array([p for p, _ in curve])
    recall = np.array([r for _, r in curve])
    best_after = np.maximum.accumulate(precision[::-1])[::-1]  # max(precision[i:])
    return float(np.sum(best_after[:-1] * np.diff(recall)))


def max_f1(visible, ciou, confidence, ciou_thr: float = 0.5) -> float:
    """The best F1 (fraction) over SLAVC's ten-or-so confidence thresholds; see the module."""
    visible, ciou, confidence = _arrays(visible, ciou, confidence)
    if len(confidence) == 0:
        return 0.0
    thresholds = np.sort(confidence)[:: max(1, len(confidence) // 10)]
    best = 0.0
    for t in thresholds:
        p, r = precision_recall(visible, ciou, confidence, t, ciou_thr)
        best = max(best, 2 * p * r / (p + r) if p + r > 0 else 0.0)
    return float(best)


def detection_summary(visible, ciou, confidence, ciou_thr: float = 0.5) -> dict[str, float]:
    """``{"ap", "max_f1", "precision_all"}`` in %, the last with every pair detected."""
    p_all, _ = precision_recall(visible, ciou, confidence, -np.inf, ciou_thr)
    return {
        "ap": 100.0 * average_precision(visible, ciou, confidence, ciou_thr),
        "max_f1": 100.0 * max_f1(visible, ciou, confidence, ciou_thr),
        "precision_all": 100.0 * p_all,
    }
