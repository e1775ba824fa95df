"""LVS's term ``lvs`` (docs/method.md; the LVS paper's soft-threshold contrastive loss): a naive
float64 loop, a hand-computed case, extreme maps, and gradients against central finite
differences of the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from loss_harness import (
    assert_grads_close,
    backend_grad,
    finite_difference_grads,
    fnac_outputs,
    logsumexp,
    value,
)

from avloc.losses.lvs import SoftThresholdContrastive


def naive_sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def naive_lvs(
    outputs,
    epsilon=0.65,
    epsilon_neg=0.4,
    threshold_tau=0.03,
    tau=0.07,
    hard_negative=True,
    margin=0.0,
) -> float:
    v = np.asarray(outputs["v_map"], np.float64)
    a = np.asarray(outputs["a_emb"], np.float64)
    batch, h, w, _ = v.shape
    cells = [(y, x) for y in range(h) for x in range(w)]

    def soft_mean(i, j, eps, sign):
        values = [float(v[i, y, x] @ a[j]) for y, x in cells]
        weights = [naive_sigmoid(sign * (s - eps) / threshold_tau) for s in values]
        return sum(wt * s for wt, s in zip(weights, values, strict=True)) / sum(weights)

    total = 0.0
    for i in range(batch):
        logits = [(soft_mean(i, i, epsilon, 1) - margin) / tau]
        logits += [soft_mean(i, j, epsilon, 1) / tau for j in range(batch) if j != i]
        if hard_negative:
            logits.append(soft_mean(i, i, epsilon_neg, -1) / tau)
        total += logsumexp(logits) - logits[0]
    return total / batch


LVS_CASES = [
    dict(),
    dict(hard_negative=False),
    dict(margin=-0.2),
    dict(epsilon=0.3, epsilon_neg=0.1, threshold_tau=0.1, tau=0.2),
]


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize(
    "kwargs", LVS_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "plain"
)
def test_lvs_matches_naive_loop(batch, kwargs):
    rng = np.random.default_rng(200 + batch)
    # correlated features put some similarities above epsilon, as in a trained model
    outputs = fnac_outputs(rng, batch, h=4, w=4, dim=6, spread=0.6)
    got = value(SoftThresholdContrastive(**kwargs), outputs)
    assert math.isfinite(got)
    assert got == pytest.approx(naive_lvs(outputs, **kwargs), rel=1e-4, abs=1e-6)


def test_lvs_hand_computed():
    """1x1 maps, v_i = a_i one-hot: every soft mean is the single value (1 on the diagonal, 0
    elsewhere), so the logits are [1/tau, 0 x (B-1), 1/tau] (positive, easy, hard)."""
    batch, tau = 3, 0.5
    eye = np.eye(4, dtype=np.float32)[:batch]
    outputs = {"v_map": eye.reshape(batch, 1, 1, 4), "a_emb": eye}
    e = math.exp(1 / tau)
    want = -math.log(e / (2 * e + batch - 1))
    assert value(SoftThresholdContrastive(tau=tau), outputs) == pytest.approx(want, rel=1e-6)
    want = -math.log(e / (e + batch - 1))
    got = value(SoftThresholdContrastive(tau=tau, hard_negative=False), outputs)
    assert got == pytest.approx(want, rel=1e-6)


def test_lvs_extreme_maps_stay_finite():
    """All similarities 1 (Neg weights ~ 1e-9) or -1 (Pos weights ~ 1e-24): finite loss."""
    dim = 4
    a = np.eye(dim, dtype=np.float32)[:2]
    for sign in (1.0, -1.0):
        outputs = {"v_map": sign * np.broadcast_to(a[:, None, None, :], (2, 3, 3, dim)), "a_emb": a}
        val, grads = backend_grad(
            lambda v, aa: SoftThresholdContrastive()({"v_map": v, "a_emb": aa}),
            outputs["v_map"],
            a,
        )
        assert math.isfinite(val) and all(np.all(np.isfinite(g)) for g in grads)
        assert val == pytest.approx(naive_lvs(outputs), rel=1e-4)


@pytest.mark.parametrize("kwargs", [dict(), dict(hard_negative=False, margin=-0.2)])
def test_lvs_gradients_match_finite_differences_of_naive_loop(kwargs):
    rng = np.random.default_rng(210)
    # threshold_tau 0.1 keeps the sigmoids smooth at the finite-difference step
    kwargs = dict(kwargs, threshold_tau=0.1)
    outputs = fnac_outputs(rng, 3, h=2, w=3, dim=4, spread=0.6)
    term = SoftThresholdContrastive(**kwargs)
    arrays = [outputs["v_map"], outputs["a_emb"]]

    def naive(v, a):
        return naive_lvs({"v_map": v, "a_emb": a}, **kwargs)

    got_val, got = backend_grad(lambda v, a: term({"v_map": v, "a_emb": a}), *arrays)
    want = finite_difference_grads(naive, arrays)
    assert got_val == pytest.approx(naive(*arrays), rel=1e-4)
    assert max(float(np.abs(g).max()) for g in want) > 1e-3
    assert_grads_close(got, want, rtol=2e-3)
