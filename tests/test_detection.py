"""SLAVC's extended benchmarks (AP, max-F1): hand-computed golden values, parity with a naive
loop written from SLAVC's rules, properties, and the metrics in ``avloc eval``'s scores."""

from __future__ import annotations

import numpy as np
import pytest
from references import naive_ap, naive_max_f1, naive_pr

from avloc.metrics.detection import (
    average_precision,
    detection_summary,
    max_f1,
    precision_recall,
    top_quarter_confidence,
)

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# visible, visible (wrong place), not visible, visible; worked out by hand in the comments
VISIBLE = [True, True, False, True]
CIOU = [0.8, 0.3, 0.0, 0.9]
CONFIDENCE = [0.9, 0.8, 0.7, 0.6]


def test_golden_values():
    # thresholds 0.8, 0.7, 0.6: (P, R) = (1/2, 1/2), (1/3, 1/2), (1/2, 1)
    assert precision_recall(VISIBLE, CIOU, CONFIDENCE, 0.8) == (0.5, 0.5)
    assert precision_recall(VISIBLE, CIOU, CONFIDENCE, 0.7) == pytest.approx((1 / 3, 0.5))
    assert precision_recall(VISIBLE, CIOU, CONFIDENCE, 0.6) == (0.5, 1.0)
    # interpolated precision 1/2 everywhere; recall steps 0, 1/2 -> AP 1/4
    assert average_precision(VISIBLE, CIOU, CONFIDENCE) == pytest.approx(0.25)
    # F1 at 0.6, 0.7, 0.8, 0.9: 2/3, 0.4, 0.5, 0.5
    assert max_f1(VISIBLE, CIOU, CONFIDENCE) == pytest.approx(2 / 3)


@pytest.mark.parametrize("n", [7, 57, 450])
def test_parity_with_a_naive_loop(n):
    rng = np.random.default_rng(n)
    visible = rng.random(n) < 0.6
    ciou = rng.random(n) * visible
    confidence = np.round(rng.random(n), 2)  # ties included
    assert average_precision(visible, ciou, confidence) == pytest.approx(
        naive_ap(visible, ciou, confidence), abs=1e-12
    )
    assert max_f1(visible, ciou, confidence) == pytest.approx(
        naive_max_f1(visible, ciou, confidence), abs=1e-12
    )
    for t in (-1.0, 0.3, 0.77, 2.0):
        assert precision_recall(visible, ciou, confidence, t) == pytest.approx(
            naive_pr(visible, ciou, confidence, t)
        )


def test_a_perfect_detector_scores_one_and_a_blind_one_less():
    visible = np.array([True] * 10 + [False] * 10)
    ciou = np.where(visible, 0.9, 0.0)
    perfect = np.where(visible, 0.9, 0.1) + np.linspace(0, 0.01, 20)
    summary = detection_summary(visible, ciou, perfect)
    # SLAVC's sum starts at the recall of its first threshold (the second-highest confidence:
    # 2 of 10 visible pairs), not at 0: a perfect detector's AP is 1 - 2/10 here
    assert summary["ap"] == pytest.approx(80.0) and summary["max_f1"] == pytest.approx(100.0)
    assert summary["precision_all"] == pytest.approx(50.0)
    blind = detection_summary(visible, ciou, np.linspace(0, 1, 20)[::-1][np.r_[10:20, 0:10]])
    assert blind["ap"] < 60.0 and blind["max_f1"] < summary["max_f1"]


def test_top_quarter_confidence():
    maps = np.zeros((2, 3, 3))  # 9 pixels: the top ceil(9 / 4) = 3 count
    maps[0].flat[:3] = 1.0  # three at cos 1 -> score 1; the rest cos 0 -> score 0.5
    maps[1] = -1.0
    np.testing.assert_allclose(top_quarter_confidence(maps), [1.0, 0.0])
    maps[0].flat[3] = 1.0  # a fourth high pixel does not change the top three
    np.testing.assert_allclose(top_quarter_confidence(maps)[0], 1.0)


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="1-D of one length"):
        average_precision([True, False], [0.5], [0.1, 0.2])
