"""LVS's term ``lvs`` (docs/method.md; the LVS paper's soft-threshold contrastive loss): a naive
float64 loop, a hand-computed case, extreme maps, and gradients against central finite
differences of the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_harness import (
    assert_grads_close,
    backend_grad,
    finite_difference_grads,
    fnac_outputs,
    logsumexp,
    torch_grads,
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
    silence_negative=False,
    noise_negative=False,
) -> float:
    v = np.asarray(outputs["v_map"], np.float64)
    a = np.asarray(outputs["a_emb"], np.float64)
    batch, h, w, _ = v.shape
    cells = [(y, x) for y in range(h) for x in range(w)]

    def soft_mean_with(i, audio, eps, sign):
        values = [float(v[i, y, x] @ audio) for y, x in cells]
        weights = [naive_sigmoid(sign * (s - eps) / threshold_tau) for s in values]
        return sum(wt * s for wt, s in zip(weights, values, strict=True)) / sum(weights)

    def soft_mean(i, j, eps, sign):
        return soft_mean_with(i, a[j], eps, sign)

    total = 0.0
    for i in range(batch):
        logits = [(soft_mean(i, i, epsilon, 1) - margin) / tau]
        logits += [soft_mean(i, j, epsilon, 1) / tau for j in range(batch) if j != i]
        if silence_negative:  # avloc's choice: one more easy negative, the silence clip
            silence = np.asarray(outputs["a_silence"], np.float64)[0]
            logits.append(soft_mean_with(i, silence, epsilon, 1) / tau)
        if noise_negative:  # ... and one with image i's own noise clip
            noise = np.asarray(outputs["a_noise"], np.float64)[i]
            logits.append(soft_mean_with(i, noise, epsilon, 1) / tau)
        if hard_negative:
            logits.append(soft_mean(i, i, epsilon_neg, -1) / tau)
        total += logsumexp(logits) - logits[0]
    return total / batch


LVS_CASES = [
    dict(),
    dict(hard_negative=False),
    dict(margin=-0.2),
    dict(epsilon=0.3, epsilon_neg=0.1, threshold_tau=0.1, tau=0.2),
    dict(silence_negative=True),
    dict(noise_negative=True),
    dict(silence_negative=True, noise_negative=True),
    dict(silence_negative=True, noise_negative=True, hard_negative=False, margin=-0.2),
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


# ------------------------------------------------------------------------------------------
# SSL-SaN's extra negatives: silence and noise as easy-negative columns (avloc's choice)


def torch_lvs(
    v,
    a,
    a_sil,
    a_noise,
    epsilon=0.65,
    epsilon_neg=0.4,
    threshold_tau=0.03,
    tau=0.07,
    hard_negative=True,
    margin=0.0,
    silence_negative=False,
    noise_negative=False,
):
    """Plain torch loop over the rows (float64 tensors in, scalar out), following the formula."""

    def soft_mean(image, audio, eps, sign):
        sim = (image * audio).sum(-1)  # (h, w)
        weights = torch.sigmoid(sign * (sim - eps) / threshold_tau)
        return (weights * sim).sum() / weights.sum()

    batch = v.shape[0]
    losses = []
    for i in range(batch):
        logits = [(soft_mean(v[i], a[i], epsilon, 1) - margin) / tau]
        logits += [soft_mean(v[i], a[j], epsilon, 1) / tau for j in range(batch) if j != i]
        if silence_negative:
            logits.append(soft_mean(v[i], a_sil[0], epsilon, 1) / tau)
        if noise_negative:
            logits.append(soft_mean(v[i], a_noise[i], epsilon, 1) / tau)
        if hard_negative:
            logits.append(soft_mean(v[i], a[i], epsilon_neg, -1) / tau)
        row = torch.stack(logits)
        losses.append(torch.logsumexp(row, 0) - row[0])
    return torch.stack(losses).mean()


KEYS = ("v_map", "a_emb", "a_silence", "a_noise")


def correlated_outputs(rng, batch, h, w, dim):
    """``fnac_outputs`` whose silence and noise clips lie near the audios too, so their maps
    (and gradients) are not negligible."""
    out = fnac_outputs(rng, batch, h=h, w=w, dim=dim, spread=0.6)
    for key, near in (("a_silence", out["a_emb"][:1]), ("a_noise", out["a_emb"][::-1])):
        x = near + 0.3 * rng.standard_normal(near.shape)
        out[key] = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


EXTRA_CASES = [
    dict(silence_negative=True),
    dict(noise_negative=True),
    dict(silence_negative=True, noise_negative=True),
    dict(silence_negative=True, noise_negative=True, hard_negative=False, margin=-0.2),
]


def test_torch_reference_matches_naive_loop_and_finite_differences():
    """Anchor the plain-torch row loop used for the gradient tests."""
    rng = np.random.default_rng(220)
    outputs = correlated_outputs(rng, 3, h=2, w=2, dim=4)
    kw = dict(threshold_tau=0.1, margin=-0.2, silence_negative=True, noise_negative=True)
    arrays = [outputs[k] for k in KEYS]
    val, grads = torch_grads(lambda *t: torch_lvs(*t, **kw), *arrays)
    assert val == pytest.approx(naive_lvs(outputs, **kw), rel=1e-10)

    def naive(*arrays):
        return naive_lvs(dict(zip(KEYS, arrays, strict=True)), **kw)

    want = finite_difference_grads(naive, arrays)
    assert min(float(np.abs(g).max()) for g in want) > 1e-3  # silence and noise matter
    assert_grads_close(grads, want, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs", EXTRA_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_lvs_extra_negatives_value_and_gradients_match_torch_loop(kwargs):
    rng = np.random.default_rng(230)
    kwargs = dict(kwargs, threshold_tau=0.1)
    outputs = correlated_outputs(rng, 4, h=3, w=3, dim=6)
    arrays = [outputs[k] for k in KEYS]
    term = SoftThresholdContrastive(**kwargs)

    def fn(*tensors):
        return term(dict(zip(KEYS, tensors, strict=True)))

    got_val, got = backend_grad(fn, *arrays)
    want_val, want = torch_grads(lambda *t: torch_lvs(*t, **kwargs), *arrays)
    assert got_val == pytest.approx(want_val, rel=1e-5)
    assert got_val == pytest.approx(naive_lvs(outputs, **kwargs), rel=1e-5)
    for index, option in ((2, "silence_negative"), (3, "noise_negative")):
        if kwargs.get(option):
            assert float(np.abs(want[index]).max()) > 1e-3  # a real check, not 0 == 0
        else:
            assert np.all(got[index] == 0) and np.all(want[index] == 0)
    assert_grads_close(got, want, rtol=1e-4)


def confident_outputs(batch=3, h=2, w=2):
    """Image i's first cell is e_i (its object), the rest e_B (background); a_i = e_i. Every
    positive is 1, every other audio's map and the background 0: a confident network."""
    dim = batch + 2  # e_{B+1} is orthogonal to every cell
    eye = np.eye(dim, dtype=np.float32)
    v = np.broadcast_to(eye[batch], (batch, h, w, dim)).copy()
    for i in range(batch):
        v[i, 0, 0] = eye[i]
    return {
        "v_map": v,
        "a_emb": eye[:batch],
        "a_silence": eye[batch + 1 : batch + 2],  # empty maps on every image
        "a_noise": np.broadcast_to(eye[batch + 1], (batch, dim)).copy(),  # empty maps
    }


@pytest.mark.parametrize("which", ["silence", "noise"])
def test_extra_negative_with_high_maps_raises_loss_empty_maps_barely_change_it(which):
    """Defaults (tau 0.07): the positive logit is 1 / 0.07, every other one ~0. An empty extra
    map adds one ~0 logit (the loss moves by ~e^{-14}); one that lights up image 1's object as
    its own audio does gives row 1 a second logit equal to its positive (its CE becomes ~log 2)."""
    outputs = confident_outputs()
    kw = {f"{which}_negative": True}
    base = value(SoftThresholdContrastive(), outputs)
    term = SoftThresholdContrastive(**kw)
    empty = value(term, outputs)
    assert empty == pytest.approx(naive_lvs(outputs, **kw), abs=1e-5)
    assert abs(empty - base) < 1e-5
    high = dict(outputs)
    if which == "silence":  # silence lights up image 1's object (and nothing on images 0, 2)
        high["a_silence"] = outputs["a_emb"][1:2]
    else:  # image 1's own noise clip lights up its object
        high["a_noise"] = outputs["a_noise"].copy()
        high["a_noise"][1] = outputs["a_emb"][1]
    raised = value(term, high)
    assert raised == pytest.approx(naive_lvs(high, **kw), rel=1e-5)
    e = math.exp(1 / 0.07)
    # rows 0 and 2: [1/tau, 0, 0, extra 0, hard 0]; row 1: [1/tau, 0, 0, extra 1/tau, hard 0]
    want = (2 * math.log((e + 4) / e) + math.log((2 * e + 3) / e)) / 3
    assert raised == pytest.approx(want, rel=1e-5)
    assert raised - base > 0.2


def test_extra_negatives_off_ignore_silence_and_noise():
    rng = np.random.default_rng(240)
    outputs = fnac_outputs(rng, 3, h=2, w=2, dim=4, spread=0.6)
    plain = {k: outputs[k] for k in ("v_map", "a_emb")}
    term = SoftThresholdContrastive()
    assert value(term, outputs) == value(term, plain)


def test_needs():
    assert SoftThresholdContrastive().needs == frozenset()
    assert SoftThresholdContrastive(silence_negative=True).needs == {"silence"}
    assert SoftThresholdContrastive(noise_negative=True).needs == {"noise"}
    both = SoftThresholdContrastive(silence_negative=True, noise_negative=True)
    assert both.needs == {"silence", "noise"}
