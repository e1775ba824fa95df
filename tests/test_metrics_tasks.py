"""Tests for avloc.metrics of the other tasks, against naive reference loops: audio-image
retrieval (recall at k with ties), AVSBench S4 (F-score, mIoU) and IS3 interactive (IIoU,
IAUC)."""

import numpy as np
import pytest
from harness import GRID_EXACT
from sklearn.metrics import auc as sk_auc

from avloc import metrics as M

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


# --------------------------------------------------------------------------- retrieval
def _naive_recall(sim, qlab, glab, k):
    hits = 0
    for q in range(len(sim)):
        ranked = sorted(range(len(sim[q])), key=lambda j: -sim[q][j])  # stable
        hits += any(glab[j] == qlab[q] for j in ranked[:k])
    return hits / len(sim)


def test_recall_at_k_ties_against_naive():
    rng = np.random.default_rng(4)
    sim = rng.integers(0, 4, (30, 30)).astype(float)  # many exact ties
    lab = rng.integers(0, 6, 30)
    out = M.recall_at_k(sim, lab, lab, ks=(1, 5, 10))
    for k in (1, 5, 10):
        assert out[k] == pytest.approx(_naive_recall(sim.tolist(), lab, lab, k))
    inst = M.recall_at_k(sim, np.arange(30), np.arange(30), ks=(1, 5, 10, 100))
    for k in (1, 5, 10, 100):
        assert inst[k] == pytest.approx(_naive_recall(sim.tolist(), range(30), range(30), k))
    assert inst[100] == 1.0
    assert M.recall_at_k(sim, lab, lab, ks=(1, 5, 10), chunk=7) == out
    # hand: row 0 ties between items 0 and 1 -> stable sort ranks item 0 first
    sim = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert M.recall_at_k(sim, [0, 1], [0, 1], ks=(1,)) == {1: 0.5}


def test_retrieval_summary_against_naive():
    rng = np.random.default_rng(5)
    n, d = 40, 8
    a = rng.normal(size=(n, d))
    v_map = rng.normal(size=(n, 3, 2, d))
    labels = rng.integers(0, 5, n)
    img = M.image_embedding_from_map(v_map)
    # naive image embedding
    for i in range(n):
        locs = [v_map[i, y, x] / np.linalg.norm(v_map[i, y, x]) for y in range(3) for x in range(2)]
        mean = np.sum(locs, axis=0) / len(locs)
        np.testing.assert_allclose(img[i], mean / np.linalg.norm(mean), atol=1e-12)
    out = M.retrieval_summary(a, img, labels)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    sim = (an @ img.T).tolist()
    sim_t = [list(r) for r in zip(*sim, strict=True)]
    for k in (1, 5, 10):
        assert out[f"a2i_semantic_R@{k}"] == pytest.approx(
            100 * _naive_recall(sim, labels, labels, k)
        )
        assert out[f"i2a_semantic_R@{k}"] == pytest.approx(
            100 * _naive_recall(sim_t, labels, labels, k)
        )
        assert out[f"a2i_instance_R@{k}"] == pytest.approx(
            100 * _naive_recall(sim, range(n), range(n), k)
        )
        assert out[f"i2a_instance_R@{k}"] == pytest.approx(
            100 * _naive_recall(sim_t, range(n), range(n), k)
        )
    assert len(out) == 12
    assert set(M.retrieval_summary(a, img)) == {
        f"{d}_instance_R@{k}" for d in ("a2i", "i2a") for k in (1, 5, 10)
    }
    # perfect pairing: instance R@1 = 100 both ways
    perfect = M.retrieval_summary(np.eye(6), np.eye(6))
    assert perfect["a2i_instance_R@1"] == 100.0 and perfect["i2a_instance_R@1"] == 100.0


# --------------------------------------------------------------------------- AVSBench S4
def _naive_fscore(maps, masks, beta2=0.3, num=255):
    th = np.linspace(0, 1 - 1e-10, num)
    total, count = np.zeros(num), 0
    for m, y in zip(maps, masks, strict=True):
        y = (y > 0).astype(float)
        if y.sum() == 0:
            continue
        p = (m - m.min()) / (m.max() - m.min())
        f = np.zeros(num)
        for i, t in enumerate(th):
            pred = (p >= t).astype(float)
            tp = (pred * y).sum()
            prec, rec = tp / (pred.sum() + 1e-10), tp / (y.sum() + 1e-10)
            f[i] = (1 + beta2) * prec * rec / (beta2 * prec + rec + 1e-10)
        total += f
        count += 1
    return (total / count).max()


def _naive_miou(pred, masks):
    ious = []
    for p, y in zip(pred, masks, strict=True):
        p, y = p > 0, y > 0
        if y.sum() == 0:
            ious.append((~p & ~y).sum() / p.size)
        else:
            ious.append((p & y).sum() / (p | y).sum())
    return float(np.mean(ious))


def test_s4_fscore_and_miou_against_naive():
    rng = np.random.default_rng(6)
    maps = rng.uniform(-1, 1, (6, 7, 9))
    maps[1] = maps[1].round(1)  # ties
    masks = (rng.uniform(size=(6, 7, 9)) > 0.6).astype(np.uint8) * 255
    masks[2] = 0  # skipped by the F-score, TN rule for the IoU
    assert M.s4_fscore(maps, masks) == pytest.approx(_naive_fscore(maps, masks), abs=1e-12)
    for method in ("median", "adaptive", "universal"):
        pred = M.binarize(maps, method, gt=masks, uth=0.3)
        assert M.s4_miou(pred, masks) == pytest.approx(_naive_miou(pred, masks))
        s = M.s4_summary(maps, masks, method, uth=0.3)
        assert s["miou"] == pytest.approx(100 * _naive_miou(pred, masks))
        assert s["fscore"] == pytest.approx(100 * _naive_fscore(maps, masks))
    # hand mIoU: pred top-left 2x2 vs mask top row (4 px): inter 2, union 6 -> 1/3;
    # empty mask + empty pred -> 16/16 = 1 -> mIoU = 2/3
    pred = np.zeros((2, 4, 4), bool)
    pred[0, :2, :2] = True
    mask = np.zeros((2, 4, 4))
    mask[0, 0] = 1
    np.testing.assert_allclose(M.s4_iou(pred, mask), [1 / 3, 1.0])
    assert M.s4_miou(pred, mask) == pytest.approx(2 / 3)
    # perfect map: F = (1.3 P R) / (0.3 P + R) -> 1 at the right threshold
    perfect = mask[:1] * 2 - 1
    assert M.s4_fscore(perfect, mask[:1]) == pytest.approx(1.0, abs=1e-9)
    assert M.s4_fscore(maps[2:3], masks[2:3]) == 0.0  # every mask empty


# --------------------------------------------------------------------------- IS3 interactive
def test_interactive_hand_and_naive():
    cious = np.array([[0.6, 0.7], [0.6, 0.4], [0.9, 0.5], [0.1, 0.2]])
    # both >= 0.5 in rows 0 and 2 -> IIoU = 0.5
    np.testing.assert_array_equal(M.interactive_indicator(cious), [True, False, True, False])
    assert M.iiou(cious) == 0.5
    # cIoUs on grid points (0.6, 0.7): the grid must be i / 20 so that 0.7 >= t holds at t = 0.7
    curve = [np.mean(np.minimum(cious[:, 0] >= t, cious[:, 1] >= t)) for t in GRID_EXACT]
    assert M.iauc(cious) == pytest.approx(sk_auc(GRID_EXACT, curve))
    assert M.interactive_summary(cious) == pytest.approx(
        {"iiou": 50.0, "iauc": 100 * sk_auc(GRID_EXACT, curve)}
    )
    # equals the localisation AUC of the per-image minimum
    assert M.iauc(cious) == pytest.approx(M.success_auc(cious.min(axis=1)))
    with pytest.raises(ValueError):
        M.iiou(np.zeros(4))
