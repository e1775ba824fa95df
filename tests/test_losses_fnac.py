"""FNAC's terms ``fnac_fns1``, ``fnac_fns2`` and ``fnac_tne`` (docs/method.md; the FNAC paper):
naive float64 loops of the FNAC reference code, hand-computed cases, the paper's defaults, and
gradients against central finite differences of the loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from loss_harness import (
    assert_grads_close,
    backend_grad,
    finite_difference_grads,
    fnac_outputs,
    naive_mil,
    value,
)

from avloc.losses.fnac import (
    FalseNegativeSuppressionAudio,
    FalseNegativeSuppressionVisual,
    TrueNegativeEnhancement,
)


def naive_row_softmax(m: np.ndarray) -> np.ndarray:
    out = np.zeros_like(m, dtype=np.float64)
    for i in range(m.shape[0]):
        top = max(m[i])
        exps = [math.exp(x - top) for x in m[i]]
        total = sum(exps)
        for j, e in enumerate(exps):
            out[i, j] = e / total
    return out


def naive_l1(p: np.ndarray, q: np.ndarray) -> float:
    rows, cols = p.shape
    return sum(abs(p[i, j] - q[i, j]) for i in range(rows) for j in range(cols)) / (rows * cols)


def naive_gram(x: np.ndarray, tau: float) -> np.ndarray:
    n = x.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = sum(x[i, d] * x[j, d] for d in range(x.shape[1])) / tau
    return out


def naive_fnac(outputs, tau=0.03, threshold=0.6) -> dict[str, float]:
    """FNS1, FNS2, TNE of the FNAC reference code, one sample / location at a time."""
    v = np.asarray(outputs["v_map"], np.float64)
    a = np.asarray(outputs["a_emb"], np.float64)
    batch, h, w, dim = v.shape
    mil = naive_row_softmax(naive_mil(v, a) / tau)
    audio = naive_row_softmax(naive_gram(a, tau))
    vbar = np.zeros((batch, dim))
    regions = np.zeros((batch, dim))
    for i in range(batch):
        cells = [(y, x) for y in range(h) for x in range(w)]
        for y, x in cells:
            vbar[i] += v[i, y, x] / (h * w)
        s = {(y, x): float(v[i, y, x] @ a[i]) / tau for y, x in cells}
        low, high = min(s.values()), max(s.values())
        for y, x in cells:
            if (s[y, x] - low) / (high - low + 1e-5) > threshold:
                regions[i] += v[i, y, x] / (h * w)  # masked-out locations count as zeros
    visual = naive_row_softmax(naive_gram(vbar, tau))
    region = naive_row_softmax(naive_gram(regions, tau))
    return {
        "fnac_fns1": naive_l1(audio, mil),
        "fnac_fns2": naive_l1(visual, mil),
        "fnac_tne": naive_l1(audio, region),
    }


FNAC_TERMS = {
    "fnac_fns1": FalseNegativeSuppressionAudio,
    "fnac_fns2": FalseNegativeSuppressionVisual,
    "fnac_tne": TrueNegativeEnhancement,
}


@pytest.mark.parametrize("name", list(FNAC_TERMS))
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@pytest.mark.parametrize("batch, spread, tau", [(1, 1.0, 0.03), (4, 1.0, 0.03), (5, 0.5, 0.1)])
def test_fnac_terms_match_naive_loop(name, batch, spread, tau):
    rng = np.random.default_rng(100 + batch)
    outputs = fnac_outputs(rng, batch, spread=spread)
    want = naive_fnac(outputs, tau=tau)[name]
    got = value(FNAC_TERMS[name](tau=tau), outputs)
    assert math.isfinite(got)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_fnac_tne_threshold_changes_the_region():
    rng = np.random.default_rng(110)
    outputs = fnac_outputs(rng, 4, h=4, w=4)
    for threshold in (0.0, 0.3, 0.9):
        want = naive_fnac(outputs, threshold=threshold)["fnac_tne"]
        got = value(TrueNegativeEnhancement(threshold=threshold), outputs)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert value(TrueNegativeEnhancement(threshold=0.0), outputs) != pytest.approx(
        value(TrueNegativeEnhancement(threshold=0.9), outputs), rel=1e-3
    )


def test_fnac_hand_computed():
    """1x1 maps with v_i = a_i one-hot: l = aa^T / tau = vbar vbar^T / tau, so FNS1 = FNS2 = 0.

    A 1x1 map is constant, so minmax gives 0 < 0.6: f = 0, ``softmax(f f^T)`` is uniform and
    TNE = mean |softmax(I / tau) - 1/2| = sigmoid(1 / tau) - 1/2 for B = 2.
    """
    eye = np.eye(3, dtype=np.float32)[:2]
    outputs = {"v_map": eye.reshape(2, 1, 1, 3), "a_emb": eye}
    tau = 1.0
    assert value(FalseNegativeSuppressionAudio(tau=tau), outputs) == pytest.approx(0, abs=1e-7)
    assert value(FalseNegativeSuppressionVisual(tau=tau), outputs) == pytest.approx(0, abs=1e-7)
    sigma = 1 / (1 + math.exp(-1 / tau))
    assert value(TrueNegativeEnhancement(tau=tau), outputs) == pytest.approx(sigma - 0.5, rel=1e-6)


def test_fnac_defaults_follow_the_paper():
    for cls in FNAC_TERMS.values():
        term = cls()
        assert term.weight == 100.0 and term.start_epoch == 3 and term.tau == 0.03
        assert term.needs == frozenset()
    assert TrueNegativeEnhancement().threshold == 0.6


@pytest.mark.parametrize("name", list(FNAC_TERMS))
def test_fnac_gradients_match_finite_differences_of_naive_loop(name):
    rng = np.random.default_rng(120)
    outputs = fnac_outputs(rng, 3, h=2, w=3, dim=4, spread=0.7)
    term = FNAC_TERMS[name](tau=0.1)
    arrays = [outputs["v_map"], outputs["a_emb"]]

    def naive(v, a):
        return naive_fnac({"v_map": v, "a_emb": a}, tau=0.1)[name]

    got_val, got = backend_grad(lambda v, a: term({"v_map": v, "a_emb": a}), *arrays)
    want = finite_difference_grads(naive, arrays)
    assert got_val == pytest.approx(naive(*arrays), rel=1e-4)
    assert max(float(np.abs(g).max()) for g in want) > 1e-3  # a non-trivial gradient
    assert_grads_close(got, want, rtol=2e-3)
