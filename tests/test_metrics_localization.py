"""Tests for avloc.metrics on the positive maps: golden FLOC/FAUC values, thresholding, cIoU
and the success AUC, ground-truth maps; hand-computed maps and naive reference loops."""

import numpy as np
import pytest
from harness import GRID, GRID_EXACT
from sklearn.metrics import auc as sk_auc

from avloc import metrics as M

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# A 4x4 raw map (cosine similarity) with ties, used by several hand-computed tests.
#   row-major flat index:  0    1    2    3  /  4    5    6    7  / 8.. all 0 / 15 = -0.5
MAP = np.array(
    [
        [0.9, 0.8, 0.8, 0.1],
        [0.8, 0.2, 0.2, 0.1],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, -0.5],
    ]
)


# --------------------------------------------------------------------------- golden values
def test_golden_floc_fauc():
    assert round(M.floc(29.61, [0.01, 0.00, 1.72]), 2) == 45.63
    assert round(M.fauc(29.97, [99.99, 100.00, 98.17]), 2) == 46.05
    assert round(M.floc(44.75, [0.02, 1.37, 0.39]), 2) == 61.72
    # mappings and plain floats are accepted
    assert M.floc(29.61, {"silence": 0.01, "noise": 0.0, "offscreen": 1.72}) == pytest.approx(
        M.floc(29.61, [0.01, 0.0, 1.72])
    )
    assert isinstance(M.fauc(29.97, 99.0), float)


def test_harmonic_mean():
    assert M.harmonic_mean(50.0, 100.0) == pytest.approx(2 * 50 * 100 / 150)
    assert M.harmonic_mean(0.0, 0.0) == 0.0
    assert M.harmonic_mean(0.0, 80.0) == 0.0
    with pytest.raises(ValueError):
        M.harmonic_mean(-1.0, 2.0)
    with pytest.raises(ValueError):
        M.floc(30.0, [])
    with pytest.raises(ValueError):
        M.fauc(30.0, [101.0])


# --------------------------------------------------------------------------- thresholding
def test_minmax_normalize_and_constant_map():
    out = M.minmax_normalize(np.array([[-1.0, 0.0], [0.5, 1.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.5], [0.75, 1.0]])
    np.testing.assert_array_equal(M.minmax_normalize(np.full((2, 3), 0.3)), np.zeros((2, 3)))


def test_binarize_median_hand():
    # arange(16): normalised v/15, sorted index int(16/2) = 8 -> thr = 8/15 -> pixels 8..15 on.
    m = np.arange(16, dtype=np.float64).reshape(4, 4) * 0.1 - 0.8  # affine: same result
    expected = np.zeros((4, 4), bool)
    expected[2:] = True
    np.testing.assert_array_equal(M.binarize_median(m), expected)
    # MAP: sorted = [-.5, 0 x7, .1, .1, .2, .2, .8, .8, .8, .9]; index 8 -> 0.1 -> values >= 0.1
    # on: 0.9, 0.8 x3, 0.2 x2, 0.1 x2 = the first two rows.
    expected = np.zeros((4, 4), bool)
    expected[:2] = True
    np.testing.assert_array_equal(M.binarize_median(MAP), expected)
    # ties at the threshold are all on: ten 0s and six 1s -> sorted[8] = 0 -> everything on
    tied = np.zeros((4, 4))
    tied[2, 2:] = 1
    tied[3] = 1
    assert M.binarize_median(tied).all()
    # constant map -> normalised zeros -> all on
    assert M.binarize_median(np.full((4, 4), 0.7)).all()
    # non-square 3x5 (15 px): sorted index int(7.5) = 7 -> values >= 7 (8 pixels on)
    ns = np.arange(15.0).reshape(3, 5)
    np.testing.assert_array_equal(M.binarize_median(ns), ns >= 7)
    # batch == per-map
    batch = np.stack([MAP, m, tied])
    np.testing.assert_array_equal(
        M.binarize_median(batch), np.stack([M.binarize_median(x) for x in batch])
    )


def test_binarize_median_matches_reference_code():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.uniform(-1, 1, (7, 6)).round(1)  # rounding creates many ties
        pred = (m - m.min()) / (m.max() - m.min())
        thr = np.sort(pred.flatten())[int(pred.size / 2)]
        np.testing.assert_array_equal(M.binarize_median(m), pred >= thr)


def test_binarize_adaptive_hand_soft_gt():
    # Flickr soft gt with 3 non-zero pixels -> k = 3. Top 3 of MAP: 0.9 (idx 0), then the three
    # tied 0.8 at idx 1, 2, 4: the stable tie-break keeps the lower indices 1 and 2.
    gt = np.zeros((4, 4))
    gt[0, 0], gt[0, 1], gt[1, 0] = 1.0, 0.5, 0.5
    expected = np.zeros((4, 4), bool)
    expected[0, :3] = True
    pred = M.binarize_adaptive(MAP, gt)
    np.testing.assert_array_equal(pred, expected)
    # cIoU = (1 + 0.5) / (sum(gt) = 2 + pred outside gt = 1 pixel (0, 2)) = 1.5 / 3 = 0.5
    assert M.ciou(pred, gt) == 0.5


def test_binarize_adaptive_empty_gt_and_ties():
    # empty gt -> k = 16 / 2 = 8: 0.9, 0.8 x3, 0.2 x2, 0.1 x2 = the first two rows
    expected = np.zeros((4, 4), bool)
    expected[:2] = True
    pred = M.binarize_adaptive(MAP, np.zeros((4, 4)))
    np.testing.assert_array_equal(pred, expected)
    assert M.ciou(pred, np.zeros((4, 4))) == 0.0  # 0 / (0 + 8)
    # all-tied map, empty gt: exactly 8 on, the first 8 in row-major order
    pred = M.binarize_adaptive(np.zeros((4, 4)), np.zeros((4, 4)))
    np.testing.assert_array_equal(pred, expected)
    # batch: k from each gt (2, 8, 5) and exactly k on
    maps = np.random.default_rng(1).uniform(-1, 1, (3, 4, 4)).round(1)
    gts = np.zeros((3, 4, 4))
    gts[0, 0, :2] = 1
    gts[2, 1:, 1:3] = 0.5
    gts[2, 0, 0] = 1
    pred = M.binarize_adaptive(maps, gts)
    np.testing.assert_array_equal(pred.sum(axis=(1, 2)), [2, 8, 7])
    for i in range(3):  # naive: stable argsort of the negated map
        k = int((gts[i] > 0).sum()) or 8
        order = np.argsort(-maps[i].ravel(), kind="stable")[:k]
        ref = np.zeros(16, bool)
        ref[order] = True
        np.testing.assert_array_equal(pred[i].ravel(), ref)


def test_topk_mask_chunking_is_invisible(monkeypatch):
    import avloc.metrics.thresholding as thresholding

    maps = np.random.default_rng(7).uniform(-1, 1, (5, 4, 4)).round(1)
    k = np.array([0, 3, 8, 16, 5])
    full = M.topk_mask(maps, k)
    monkeypatch.setattr(thresholding, "_TOPK_CHUNK_ELEMS", 2 * 16)  # 2 maps per chunk
    np.testing.assert_array_equal(M.topk_mask(maps, k), full)
    np.testing.assert_array_equal(full.sum(axis=(1, 2)), k)


def test_topk_mask_bounds():
    assert M.topk_mask(MAP, 0).sum() == 0
    assert M.topk_mask(MAP, 16).all()
    with pytest.raises(ValueError):
        M.topk_mask(MAP, 17)


def test_binarize_universal_and_dispatch():
    # > 0.2 strictly: 0.9 and the three 0.8 -> 4 pixels (the 0.2 are off)
    pred = M.binarize_universal(MAP, 0.2)
    assert pred.sum() == 4 and pred[0, 0] and not pred[1, 1]
    np.testing.assert_array_equal(M.binarize(MAP, "universal", uth=0.2), pred)
    np.testing.assert_array_equal(M.binarize(MAP, "median"), M.binarize_median(MAP))
    with pytest.raises(ValueError):
        M.binarize(MAP, "adaptive")
    with pytest.raises(ValueError):
        M.binarize(MAP, "universal")
    with pytest.raises(ValueError):
        M.binarize(MAP, "otsu")


def test_binarize_universal_and_pia_take_one_threshold_per_map():
    maps = np.stack([MAP, MAP, -MAP])
    per_map = np.array([0.2, 0.85, 0.0])
    got = M.binarize_universal(maps, per_map)
    for i, t in enumerate(per_map):
        np.testing.assert_array_equal(got[i], maps[i] > t)
        np.testing.assert_array_equal(got[i], M.binarize_universal(maps[i], t))
    assert [int(g.sum()) for g in got] == [4, 1, 1]  # -MAP > 0: only the -0.5
    np.testing.assert_allclose(M.pia_fractions(maps, per_map), [4 / 16, 1 / 16, 1 / 16])
    # one float is the same threshold for every map, as before
    np.testing.assert_array_equal(M.binarize_universal(maps, 0.2), maps > 0.2)
    np.testing.assert_array_equal(M.pia_fractions(maps, 0.2), np.mean(maps > 0.2, axis=(1, 2)))
    # leading axes of any shape: the thresholds broadcast over them
    grid = np.stack([maps, maps])  # (2, 3, 4, 4)
    np.testing.assert_array_equal(M.binarize_universal(grid, per_map), np.stack([got, got]))
    for bad in (np.zeros(2), None):
        with pytest.raises(ValueError, match="uth"):
            M.binarize_universal(maps, bad)
        with pytest.raises(ValueError, match="uth"):
            M.pia_fractions(maps, bad)


# --------------------------------------------------------------------------- cIoU and AUC
def test_ciou_hand():
    pred = np.zeros((4, 4), bool)
    pred[:2, :2] = True  # 4 pixels
    gt = np.zeros((4, 4))
    gt[:2, 1:] = 1  # 6 pixels; overlap = column 1 of rows 0-1 = 2 pixels
    # 2 / (6 + 2 predicted pixels outside gt) = 0.25
    assert M.ciou(pred, gt) == 0.25
    # Flickr soft gt: rows [1, 1, .5, 0], [.5, .5, 0, 0]; pred top-left 2x2
    soft = np.zeros((4, 4))
    soft[0, :3] = [1, 1, 0.5]
    soft[1, :2] = 0.5
    # inter = 1 + 1 + .5 + .5 = 3; sum(gt) = 3.5; pred where gt == 0: none -> 3 / 3.5 = 6/7
    assert M.ciou(pred, soft) == pytest.approx(6 / 7)
    # batch, with the empty/empty convention (0.0)
    out = M.ciou(np.stack([pred, pred, np.zeros((4, 4))]), np.stack([gt, soft, np.zeros((4, 4))]))
    np.testing.assert_allclose(out, [0.25, 6 / 7, 0.0])
    assert isinstance(M.ciou(pred, gt), float)
    with pytest.raises(ValueError):
        M.ciou(pred, np.zeros((3, 3)))


def test_map_cious():
    gt = np.zeros((4, 4))
    gt[0, 0], gt[0, 1], gt[1, 0] = 1.0, 0.5, 0.5
    np.testing.assert_allclose(M.map_cious(MAP[None], gt[None], "adaptive"), [0.5])
    # universal > 0.2: pred = idx 0, 1, 2, 4 -> inter 2, denom 2 + 1 (idx 2) = 3
    np.testing.assert_allclose(M.map_cious(MAP, gt, "universal", uth=0.2), [2 / 3])


def test_success_auc_hand_and_sklearn():
    cious = np.array([0.0, 0.25, 0.5, 1.0])
    # frac(c >= t): 1 at t=0; .75 for t in .05...25; .5 for .3...5; .25 for .55...1
    # trapezoid: .04375 + .15 + .03125 + .1 + .01875 + .1125 = .45625
    assert M.success_auc(cious) == pytest.approx(0.45625)
    t, frac = M.success_curve(cious)
    assert len(t) == 21 and t[0] == 0 and t[-1] == 1
    np.testing.assert_array_equal(t, GRID_EXACT)
    # a cIoU exactly on a grid point counts at that point (0.7 >= 0.7, unlike 0.05 * 14)
    assert M.success_curve([0.7])[1][14] == 1.0
    assert M.success_auc(cious) == pytest.approx(sk_auc(t, frac))
    s = M.localization_summary(cious)
    assert s == pytest.approx({"ciou_at_05": 50.0, "ciou_mean": 43.75, "auc": 45.625})
    assert all(isinstance(v, float) for v in s.values())
    # random cIoUs: equal to the reference code (0.05 * i grid, sklearn.metrics.auc)
    rng = np.random.default_rng(2)
    for _ in range(5):
        c = rng.uniform(0, 1, 50)
        ref = sk_auc(GRID, [np.sum(c >= 0.05 * i) / len(c) for i in range(21)])
        assert M.success_auc(c) == pytest.approx(ref, abs=1e-12)
        assert M.localization_summary(c)["auc"] == pytest.approx(100 * ref)
    with pytest.raises(ValueError):
        M.localization_summary([])


# --------------------------------------------------------------------------- ground truth
def test_gt_flickr_hand_box():
    # (10, 20, 100, 200) in 256 px -> int(224*v/256): x1 = int(8.75) = 8, y1 = int(17.5) = 17,
    # x2 = int(87.5) = 87, y2 = int(175.0) = 175 -> map[17:175, 8:87]
    one = M.gt_flickr([[10, 20, 100, 200]])
    assert one.shape == (224, 224) and one.dtype == np.float32
    expected = np.zeros((224, 224))
    expected[17:175, 8:87] = 0.5  # one annotator: 1 / 2
    np.testing.assert_array_equal(one, expected)
    two = M.gt_flickr(np.array([[10, 20, 100, 200], [10, 20, 100, 200]]))
    np.testing.assert_array_equal(two, np.minimum(2 * expected, 1))
    # three annotators overlapping: sum 3 / 2 = 1.5 -> clipped to 1
    assert M.gt_flickr([[0, 0, 256, 256]] * 3).max() == 1.0


def test_gt_flickr_small_frame_and_multibox_annotators():
    # size 8: (0, 0, 128, 96) -> (0, 0, 4, 3); (0, 0, 256, 256) -> whole map
    gt = M.gt_flickr([[0, 0, 128, 96], [0, 0, 256, 256]], size=8)
    expected = np.full((8, 8), 0.5)
    expected[0:3, 0:4] = 1.0
    np.testing.assert_array_equal(gt, expected)
    # annotator 2 gave two boxes: union inside the annotator before the consensus
    gt = M.gt_flickr([[[0, 0, 128, 96]], [[0, 0, 64, 64], [32, 0, 96, 64]]], size=8)
    expected = np.zeros((8, 8))
    expected[0:3, 0:4] += 0.5
    expected[0:2, 0:3] += 0.5
    np.testing.assert_array_equal(gt, expected)
    assert set(np.unique(gt)) <= {0.0, 0.5, 1.0}


def test_gt_from_boxes_normalized():
    # size 8: (0.1, 0.2, 0.55, 1.2) -> clip -> int(0.8)=0, int(1.6)=1, int(4.4)=4, 8 -> [1:8, 0:4]
    gt = M.gt_from_boxes_normalized([[0.1, 0.2, 0.55, 1.2]], size=8)
    expected = np.zeros((8, 8))
    expected[1:8, 0:4] = 1
    np.testing.assert_array_equal(gt, expected)
    # union of two overlapping boxes stays binary; single (4,) box accepted; 224 default
    gt = M.gt_from_boxes_normalized([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]])
    assert gt.shape == (224, 224) and set(np.unique(gt)) == {0.0, 1.0}
    assert gt.sum() == 2 * 112 * 112 - 56 * 56
    assert M.gt_from_boxes_normalized([0.0, 0.0, 1.0, 1.0], size=4).sum() == 16
    assert M.gt_from_boxes_normalized(np.zeros((0, 4)), size=4).sum() == 0
