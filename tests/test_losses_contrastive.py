"""The contrastive term ``ezvsl`` (docs/method.md): EZ-VSL's MIL contrastive loss, marginNCE's
margin and SSL-SaN's silence and noise negatives, against a naive per-sample loop, hand-computed
values, and gradients against an independent plain-torch float64 reference (itself checked
against the loop and finite differences); also what each term needs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_harness import (
    assert_grads_close,
    backend_grad,
    logsumexp,
    make_outputs,
    naive_mil,
    torch_grads,
    value,
)

from avloc.losses.contrastive import MILContrastive
from avloc.losses.empty_maps import NoiseMap, SilenceMap

# ------------------------------------------------------------------------------------------
# references


def naive_ezvsl(outputs, tau=0.03, margin=0.0, silence=False, noise=False) -> float:
    v = outputs["v_map"]
    batch = v.shape[0]
    sim = naive_mil(v, outputs["a_emb"])
    for i in range(batch):
        sim[i, i] -= margin
    logits = sim / tau
    extra = []
    if silence:
        extra.append(naive_mil(v, outputs["a_silence"]) / tau)
    if noise:
        extra.append(naive_mil(v, outputs["a_noise"]) / tau)
    img2aud = 0.0
    aud2img = 0.0
    for i in range(batch):
        row = list(logits[i]) + [x for e in extra for x in e[i]]
        img2aud += logsumexp(row) - logits[i, i]
        col = list(logits[:, i])
        aud2img += logsumexp(col) - logits[i, i]
    return img2aud / batch + aud2img / batch


def torch_ezvsl(v, a, a_sil, a_noise, tau=0.03, margin=0.0, silence=False, noise=False):
    """Independent vectorised torch reference (float64 tensors in, scalar out)."""
    import torch.nn.functional as F

    sim = torch.einsum("nhwd,md->nmhw", v, a).flatten(2).amax(dim=2)
    sim = sim - margin * torch.eye(sim.shape[0], dtype=sim.dtype)
    logits = sim / tau
    cols = [logits]
    if silence:
        cols.append(torch.einsum("nhwd,md->nmhw", v, a_sil).flatten(2).amax(dim=2) / tau)
    if noise:
        cols.append(torch.einsum("nhwd,md->nmhw", v, a_noise).flatten(2).amax(dim=2) / tau)
    target = torch.arange(sim.shape[0])
    return F.cross_entropy(torch.cat(cols, 1), target) + F.cross_entropy(logits.T, target)


# ------------------------------------------------------------------------------------------
# ezvsl values


EZVSL_CASES = [
    dict(),
    dict(silence_negative=True),
    dict(noise_negative=True),
    dict(silence_negative=True, noise_negative=True),
    dict(margin=-0.2),
    dict(margin=0.3, silence_negative=True, noise_negative=True),
    dict(margin=-0.2, tau=0.07, noise_negative=True),
]


@pytest.mark.parametrize("batch", [1, 2, 5, 8])
@pytest.mark.parametrize(
    "kwargs", EZVSL_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "plain"
)
def test_ezvsl_matches_naive_loop(batch, kwargs):
    rng = np.random.default_rng(batch * 31 + len(kwargs))
    outputs = make_outputs(rng, batch)
    term = MILContrastive(**kwargs)
    want = naive_ezvsl(
        outputs,
        tau=kwargs.get("tau", 0.03),
        margin=kwargs.get("margin", 0.0),
        silence=kwargs.get("silence_negative", False),
        noise=kwargs.get("noise_negative", False),
    )
    got = value(term, outputs)
    assert math.isfinite(got)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_ezvsl_hand_computed():
    """One-hot features: l = I / tau, so each CE row is log(1 + k e^{-1/tau}) for k negatives."""
    dim = 4
    eye = np.eye(dim, dtype=np.float32)
    outputs = {
        "v_map": eye[:2].reshape(2, 1, 1, dim),  # v_0 = e_0, v_1 = e_1
        "a_emb": eye[:2],  # a_0 = e_0, a_1 = e_1
        "a_silence": eye[3:4],  # orthogonal to every image: logit 0
        "a_noise": eye[2:4],  # orthogonal to every image: logits 0
    }
    tau = 1.0
    e = math.exp(-1.0)
    assert value(MILContrastive(tau=tau), outputs) == pytest.approx(2 * math.log(1 + e), rel=1e-6)
    # silence adds one zero logit to every image->audio row
    got = value(MILContrastive(tau=tau, silence_negative=True), outputs)
    assert got == pytest.approx(math.log(1 + 2 * e) + math.log(1 + e), rel=1e-6)
    # noise adds B = 2 zero logits, silence one more
    got = value(MILContrastive(tau=tau, silence_negative=True, noise_negative=True), outputs)
    assert got == pytest.approx(math.log(1 + 4 * e) + math.log(1 + e), rel=1e-6)
    # margin m on the diagonal: positive logit (1 - m) / tau in both directions
    m = -0.2
    got = value(MILContrastive(tau=tau, margin=m), outputs)
    assert got == pytest.approx(2 * math.log(1 + math.exp(-(1 - m))), rel=1e-6)


def test_margin_zero_is_ezvsl_exactly():
    rng = np.random.default_rng(3)
    outputs = make_outputs(rng, 6)
    for extra in (dict(), dict(silence_negative=True, noise_negative=True)):
        plain = value(MILContrastive(**extra), outputs)
        zero = value(MILContrastive(margin=0.0, **extra), outputs)
        assert zero == plain  # bitwise identical, not merely close


def test_negative_margin_raises_positive_logit_and_lowers_loss():
    rng = np.random.default_rng(4)
    outputs = make_outputs(rng, 6)
    losses = [value(MILContrastive(margin=m), outputs) for m in (0.2, 0.0, -0.2, -0.4)]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))


def test_extra_negatives_only_add_to_image_to_audio_direction():
    """With silence/noise negatives every row gets extra columns: the loss can only grow."""
    rng = np.random.default_rng(5)
    outputs = make_outputs(rng, 5)
    base = value(MILContrastive(), outputs)
    s = value(MILContrastive(silence_negative=True), outputs)
    n = value(MILContrastive(noise_negative=True), outputs)
    sn = value(MILContrastive(silence_negative=True, noise_negative=True), outputs)
    assert base < s < sn and base < n < sn


def test_needs():
    assert MILContrastive().needs == frozenset()
    assert MILContrastive(silence_negative=True).needs == {"silence"}
    assert MILContrastive(noise_negative=True).needs == {"noise"}
    assert MILContrastive(silence_negative=True, noise_negative=True).needs == {
        "silence",
        "noise",
    }
    assert SilenceMap().needs == {"silence"}
    assert NoiseMap().needs == {"noise"}


# ------------------------------------------------------------------------------------------
# ezvsl gradients


def test_torch_reference_matches_numpy_loop_and_finite_differences():
    """Anchor the torch reference used for the gradient tests."""
    rng = np.random.default_rng(6)
    outputs = make_outputs(rng, 3, h=2, w=2, dim=4)
    kw = dict(tau=0.1, margin=-0.2, silence=True, noise=True)
    arrays = [outputs[k] for k in ("v_map", "a_emb", "a_silence", "a_noise")]
    val, grads = torch_grads(lambda *t: torch_ezvsl(*t, **kw), *arrays)
    assert val == pytest.approx(naive_ezvsl(outputs, **kw), rel=1e-10)
    eps = 1e-6
    for key, grad in zip(
        ("v_map", "a_emb", "a_noise"), grads[:1] + grads[1:2] + grads[3:], strict=True
    ):
        flat = np.asarray(outputs[key], np.float64).ravel()
        for idx in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            plus, minus = dict(outputs), dict(outputs)
            p, q = flat.copy(), flat.copy()
            p[idx] += eps
            q[idx] -= eps
            plus[key] = p.reshape(outputs[key].shape)
            minus[key] = q.reshape(outputs[key].shape)
            fd = (naive_ezvsl(plus, **kw) - naive_ezvsl(minus, **kw)) / (2 * eps)
            assert grad.ravel()[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(silence_negative=True),
        dict(noise_negative=True),
        dict(margin=-0.2, silence_negative=True, noise_negative=True),
    ],
    ids=["plain", "silence", "noise", "margin+both"],
)
def test_ezvsl_gradients_match_torch_reference(kwargs):
    rng = np.random.default_rng(7)
    outputs = make_outputs(rng, 4, h=3, w=3, dim=8)
    keys = ("v_map", "a_emb", "a_silence", "a_noise")
    arrays = [outputs[k] for k in keys]
    term = MILContrastive(**kwargs)

    def fn(*tensors):
        return term(dict(zip(keys, tensors, strict=True)))

    got_val, got = backend_grad(fn, *arrays)
    kw = dict(
        margin=kwargs.get("margin", 0.0),
        silence=kwargs.get("silence_negative", False),
        noise=kwargs.get("noise_negative", False),
    )
    want_val, want = torch_grads(lambda *t: torch_ezvsl(*t, **kw), *arrays)
    assert got_val == pytest.approx(want_val, rel=1e-4)
    if not kw["silence"]:
        assert np.all(got[2] == 0) and np.all(want[2] == 0)
    if not kw["noise"]:
        assert np.all(got[3] == 0) and np.all(want[3] == 0)
    assert_grads_close(got, want)
