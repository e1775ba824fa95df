"""Tests for avloc.metrics on the maps of negative audio: pIA and AUC_N (hand-computed and on
the reference code's grid), separability and the statistics that calibrate Uth."""

import numpy as np
import pytest
from harness import GRID
from sklearn.metrics import auc as sk_auc

from avloc import metrics as M

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


# --------------------------------------------------------------------------- negatives
def test_pia_and_auc_n_hand():
    maps = np.zeros((3, 2, 2))
    maps[0] = [[0.9, 0.1], [0.3, 0.5]]  # > 0.4: 2 of 4 -> 0.5
    maps[1] = [[0.4, 0.2], [0.0, -1.0]]  # 0.4 is not > 0.4 -> 0
    maps[2] = [[0.41, 0.0], [0.0, 0.0]]  # 1 of 4 -> 0.25
    np.testing.assert_allclose(M.pia_fractions(maps, 0.4), [0.5, 0.0, 0.25])
    assert M.pia_pct(maps, 0.4) == pytest.approx(25.0)
    # frac(pIA <= x): 1/3 for x < .25, 2/3 for .25 <= x < .5, 1 for x >= .5
    # area = .2/3 + .025 + .4/3 + (2/3 + 1)/2 * .05 + .5 = 23/30
    assert M.auc_n_pct(maps, 0.4) == pytest.approx(100 * 23 / 30)
    frac = M.pia_fractions(maps, 0.4)
    ref = sk_auc(GRID, [np.mean(frac <= x) for x in GRID])
    assert M.auc_n_pct(frac) == pytest.approx(100 * ref)
    assert M.negative_summary(maps, 0.4) == pytest.approx({"pia": 25.0, "auc_n": 2300 / 30})
    assert M.negative_summary(frac) == M.negative_summary(maps, 0.4)
    # nothing above Uth -> pIA 0, AUC_N 100; a single (H, W) map works
    assert M.negative_summary(np.zeros((5, 3, 3)), 0.5) == {"pia": 0.0, "auc_n": 100.0}
    assert M.pia_pct(maps[0], 0.4) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        M.pia_pct(maps)  # maps need uth
    with pytest.raises(ValueError):
        M.auc_n_pct([1.5])
    # another grid: the reference code's 0.05 * i (0.05 * 14 = 0.7000000000000001) counts a pIA
    # of exactly that value at 0.7, the package's i / 20 does not
    assert M.auc_n_pct(frac, thresholds=GRID) == pytest.approx(100 * ref, abs=1e-12)
    on_point = np.array([GRID[14], 0.0])
    assert M.auc_n_pct(on_point, thresholds=GRID) == pytest.approx(
        100 * sk_auc(GRID, [np.mean(on_point <= x) for x in GRID]), abs=1e-12
    )
    assert M.auc_n_pct(on_point, thresholds=GRID) != M.auc_n_pct(on_point)


# --------------------------------------------------------------------------- separability / Uth
def test_separability_against_percentile():
    rng = np.random.default_rng(3)
    pos = rng.normal(0.6, 0.1, 101)
    neg = {"silence": rng.normal(0.2, 0.1, 30), "noise": rng.normal(0.3, 0.1, 40)}
    neg["offscreen"] = rng.normal(0.4, 0.1, 17)
    out = M.separability(pos, neg)
    pooled = np.concatenate(list(neg.values()))
    assert out["q1_pos"] == pytest.approx(np.percentile(pos, 25))
    assert out["q3_neg"] == pytest.approx(np.percentile(pooled, 75))
    assert out["sep"] == pytest.approx(np.percentile(pos, 25) - np.percentile(pooled, 75))
    assert M.separability(pos, list(neg.values())) == out
    assert M.separability(pos, pooled) == out
    # hand: Q1([1, 2, 3, 4, 5]) = 2, Q3([0, 1]) = 0.75 -> 1.25
    assert M.separability([1, 2, 3, 4, 5], [0, 1]) == {"sep": 1.25, "q1_pos": 2.0, "q3_neg": 0.75}
    maps = rng.uniform(-1, 1, (4, 5, 6))
    np.testing.assert_allclose(M.map_max_scores(maps), maps.reshape(4, -1).max(1))
    assert M.map_max_scores(maps[0]) == maps[0].max()


def test_calibrate_uth_statistics():
    x = np.arange(1.0, 9.0)  # 1..8
    # linear interpolation: q1 at position 1.75 -> 2.75; median 4.5; q3 at 5.25 -> 6.25
    assert M.calibrate_uth(x, "q3") == pytest.approx(6.25)
    assert M.calibrate_uth(x, "q1") == pytest.approx(2.75)
    assert M.calibrate_uth(x, "median") == pytest.approx(4.5)
    assert M.calibrate_uth(x, "max") == 8.0
    assert M.calibrate_uth(x, "mean") == pytest.approx(4.5)
    assert M.calibrate_uth(x, "p90") == pytest.approx(7.3)  # position 6.3 -> 7 + 0.3
    assert M.calibrate_uth(x, "p99.5") == pytest.approx(np.percentile(x, 99.5))
    assert M.calibrate_uth({"silence": x[:3], "noise": x[3:]}, "q3") == pytest.approx(6.25)
    assert M.calibrate_uth([x[:5], x[5:]], "q3") == pytest.approx(6.25)
    for bad in ("q2", "p101", "pfoo", "p", "", "minimum"):
        with pytest.raises(ValueError):
            M.calibrate_uth(x, bad)
    with pytest.raises(ValueError):
        M.calibrate_uth([], "q3")
