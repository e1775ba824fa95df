"""Loss terms (docs/method.md) vs naive per-sample references, hand-computed values, gradients.

Terms: ``ezvsl`` (EZ-VSL / marginNCE / SSL-SaN negatives), ``silence_map``, ``noise_map``,
FNAC's ``fnac_fns1``, ``fnac_fns2``, ``fnac_tne`` and LVS's ``lvs``. FNAC and LVS gradients are
checked against central finite differences of their NumPy float64 loops.

References:
- a NumPy float64 loop over (n, m) pairs with explicit log-sum-exp (values);
- a plain-torch float64 reimplementation (gradients, via torch autograd; torch is installed under
  every backend), itself checked against the NumPy loop and finite differences.
Gradients of the avloc terms are taken with the active Keras backend (:func:`backend_grad`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import torch
from keras import ops

from avloc.errors import RecipeError
from avloc.losses import LOSS_TERMS, build_terms
from avloc.losses.contrastive import MILContrastive
from avloc.losses.empty_maps import NoiseMap, SilenceMap
from avloc.losses.fnac import (
    FalseNegativeSuppressionAudio,
    FalseNegativeSuppressionVisual,
    TrueNegativeEnhancement,
)
from avloc.losses.lvs import SoftThresholdContrastive

# ------------------------------------------------------------------------------------------
# helpers


def normalised(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_outputs(rng: np.random.Generator, batch: int, h: int = 3, w: int = 4, dim: int = 8):
    return {
        "v_map": normalised(rng, batch, h, w, dim),
        "a_emb": normalised(rng, batch, dim),
        "a_silence": normalised(rng, 1, dim),
        "a_noise": normalised(rng, batch, dim),
    }


def to_tensors(outputs: dict) -> dict:
    return {k: ops.convert_to_tensor(v) for k, v in outputs.items()}


def value(term, outputs: dict) -> float:
    return float(ops.convert_to_numpy(term(to_tensors(outputs))))


def backend_grad(fn, *arrays):
    """``(value, [d fn / d array, ...])`` of a scalar ``fn(*tensors)``, with the active backend."""
    backend = keras.backend.backend()
    arrays = [np.asarray(a, np.float32) for a in arrays]
    if backend == "torch":
        tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*tensors)
        out.backward()
        grads = [
            np.zeros_like(a) if t.grad is None else t.grad.detach().cpu().numpy()
            for a, t in zip(arrays, tensors, strict=True)
        ]
        return float(out.detach().cpu()), grads
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            out = fn(*tensors)
        grads = tape.gradient(out, tensors)  # None for an input the output does not use
        grads = [
            np.zeros_like(a) if g is None else g.numpy() for a, g in zip(arrays, grads, strict=True)
        ]
        return float(out.numpy()), grads
    if backend == "jax":
        import jax

        out, grads = jax.value_and_grad(fn, argnums=tuple(range(len(arrays))))(*arrays)
        return float(out), [np.asarray(g) for g in grads]
    raise NotImplementedError(backend)


def logsumexp(row: np.ndarray) -> float:
    top = max(row)
    return top + math.log(sum(math.exp(x - top) for x in row))


def naive_mil(v_map: np.ndarray, audios: np.ndarray) -> np.ndarray:
    """``l[n, m] = max_{h,w} <v[n, h, w], a[m]>`` by explicit loops (float64)."""
    v = np.asarray(v_map, np.float64)
    a = np.asarray(audios, np.float64)
    n_img, h, w, _ = v.shape
    out = np.zeros((n_img, a.shape[0]))
    for n in range(n_img):
        for m in range(a.shape[0]):
            out[n, m] = max(float(v[n, y, x] @ a[m]) for y in range(h) for x in range(w))
    return out


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


def naive_map_norm(v_map: np.ndarray, audios: np.ndarray) -> float:
    """``mean_j sum_{h,w} <v[j, h, w], a[j]>^2``; a single audio row is shared by every image."""
    v = np.asarray(v_map, np.float64)
    a = np.asarray(audios, np.float64)
    batch, h, w, _ = v.shape
    total = 0.0
    for j in range(batch):
        aj = a[0] if a.shape[0] == 1 else a[j]
        total += sum(float(v[j, y, x] @ aj) ** 2 for y in range(h) for x in range(w))
    return total / batch


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


def torch_grads(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward()
    grads = [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in tensors]
    return float(out.detach()), grads


def assert_grads_close(actual, expected, rtol=1e-4):
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        scale = max(float(np.abs(want).max()), 1e-6)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)
        assert np.all(np.isfinite(got))


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


# ------------------------------------------------------------------------------------------
# empty-map terms


@pytest.mark.parametrize("batch", [1, 3, 6])
def test_silence_map_matches_naive_loop(batch):
    rng = np.random.default_rng(10 + batch)
    outputs = make_outputs(rng, batch, h=3, w=5, dim=8)
    want = naive_map_norm(outputs["v_map"], outputs["a_silence"])
    assert value(SilenceMap(), outputs) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 6])
def test_noise_map_matches_naive_loop(batch):
    rng = np.random.default_rng(20 + batch)
    outputs = make_outputs(rng, batch, h=4, w=2, dim=8)
    want = naive_map_norm(outputs["v_map"], outputs["a_noise"])
    assert value(NoiseMap(), outputs) == pytest.approx(want, rel=1e-5)


def test_map_terms_hand_computed():
    """Every location equal to a_S / a_N: each map is all ones, so the loss is h * w."""
    dim, h, w = 4, 2, 3
    a = np.eye(dim, dtype=np.float32)[:1]
    v_map = np.broadcast_to(a[0], (2, h, w, dim)).copy()
    outputs = {"v_map": v_map, "a_emb": a.repeat(2, 0), "a_silence": a, "a_noise": a.repeat(2, 0)}
    assert value(SilenceMap(), outputs) == pytest.approx(h * w)
    assert value(NoiseMap(), outputs) == pytest.approx(h * w)
    # half the images see the noise clip with opposite sign: squares, so no change
    outputs["a_noise"] = np.stack([a[0], -a[0]])
    assert value(NoiseMap(), outputs) == pytest.approx(h * w)


def _orthogonal_outputs(rng, batch=3, h=2, w=3, dim=6):
    """Features live in the first dim - 1 channels; a_S and a_N are the last unit vector."""
    v = rng.standard_normal((batch, h, w, dim)).astype(np.float32)
    v[..., -1] = 0
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    unit = np.zeros((1, dim), np.float32)
    unit[0, -1] = 1
    return {
        "v_map": v,
        "a_emb": normalised(rng, batch, dim),
        "a_silence": unit,
        "a_noise": unit.repeat(batch, 0),
    }


@pytest.mark.parametrize("term_cls", [SilenceMap, NoiseMap])
def test_empty_map_terms_are_zero_with_finite_gradient(term_cls):
    rng = np.random.default_rng(30)
    zero = make_outputs(rng, 3)
    zero["v_map"] = np.zeros_like(zero["v_map"])
    cases = [zero, _orthogonal_outputs(rng)]
    audio_key = "a_silence" if term_cls is SilenceMap else "a_noise"
    term = term_cls()
    for outputs in cases:
        assert value(term, outputs) == 0.0

        def fn(v, a, outputs=outputs):
            return term({**outputs, "v_map": v, audio_key: a})

        val, grads = backend_grad(fn, outputs["v_map"], outputs[audio_key])
        assert val == 0.0
        for g in grads:
            assert np.all(np.isfinite(g))
            np.testing.assert_array_equal(g, 0.0)  # d(x^2)/dx = 0 at a zero map


@pytest.mark.parametrize("term_cls", [SilenceMap, NoiseMap])
def test_empty_map_gradients_match_torch(term_cls):
    rng = np.random.default_rng(40)
    outputs = make_outputs(rng, 4, h=3, w=2, dim=8)
    audio_key = "a_silence" if term_cls is SilenceMap else "a_noise"
    term = term_cls()

    def fn(v, a):
        return term({**outputs, "v_map": v, audio_key: a})

    def ref(v, a):
        if a.shape[0] == 1:
            maps = torch.einsum("bhwd,d->bhw", v, a[0])
        else:
            maps = torch.einsum("bhwd,bd->bhw", v, a)
        return (maps**2).sum(dim=(1, 2)).mean()

    got_val, got = backend_grad(fn, outputs["v_map"], outputs[audio_key])
    want_val, want = torch_grads(ref, outputs["v_map"], outputs[audio_key])
    assert got_val == pytest.approx(want_val, rel=1e-5)
    assert_grads_close(got, want, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# registry


def test_registry_names():
    assert {"ezvsl", "silence_map", "noise_map"} <= set(LOSS_TERMS.names())


def test_registry_builds_typed_terms():
    terms = build_terms(
        {"ezvsl": {"weight": 1, "tau": 0.07, "margin": -0.2}, "silence_map": {"weight": 2}}
    )
    assert list(terms) == ["ezvsl", "silence_map"]
    assert isinstance(terms["ezvsl"], MILContrastive)
    assert terms["ezvsl"].tau == 0.07 and terms["ezvsl"].margin == -0.2
    assert isinstance(terms["ezvsl"].weight, float)  # int accepted for float, converted
    assert terms["silence_map"].weight == 2.0


@pytest.mark.parametrize(
    "loss, fragment",
    [
        ({"ezvsl": {"temperature": 0.1}}, "loss.ezvsl.temperature: unknown key"),
        ({"silence_map": {"tau": 0.1}}, "loss.silence_map.tau: unknown key"),
        ({"ezvsl": {"tau": "small"}}, "loss.ezvsl.tau: expected float, got str"),
        ({"ezvsl": {"silence_negative": 1}}, "loss.ezvsl.silence_negative: expected bool"),
        ({"noise_map": {"weight": True}}, "loss.noise_map.weight: expected float, got bool"),
        ({"noise_map": {"weight": [1.0]}}, "loss.noise_map.weight: expected float, got list"),
        ({"silence": {"weight": 1.0}}, "loss.silence: unknown loss term 'silence'"),
    ],
)
def test_registry_rejects_bad_kwargs(loss, fragment):
    with pytest.raises(RecipeError) as info:
        build_terms(loss)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_registry_rejects_empty_loss():
    with pytest.raises(RecipeError, match="loss"):
        build_terms({})


# ------------------------------------------------------------------------------------------
# FNAC (docs/method.md; the FNAC paper): naive float64 loops, hand-computed cases, finite diffs


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


def fnac_outputs(rng, batch, h=3, w=3, dim=6, spread=1.0):
    """Normalised features; ``spread`` < 1 keeps similarities small (FNAC-like soft targets)."""
    out = make_outputs(rng, batch, h, w, dim)
    if spread != 1.0:
        # a shared direction plus noise gives correlated embeddings: non-trivial adjacencies
        common = rng.standard_normal(dim)
        for key in ("v_map", "a_emb"):
            x = out[key] * spread + common
            out[key] = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


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


def finite_difference_grads(fn, arrays, eps=1e-6):
    """Central differences of a float64 scalar ``fn(*arrays)`` for every input entry."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    grads = []
    for k, base in enumerate(arrays):
        grad = np.zeros(base.shape)
        flat = grad.reshape(-1)
        for idx in range(base.size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[k].reshape(-1)[idx] += eps
            minus[k].reshape(-1)[idx] -= eps
            flat[idx] = (fn(*plus) - fn(*minus)) / (2 * eps)
        grads.append(grad)
    return grads


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


# ------------------------------------------------------------------------------------------
# LVS (docs/method.md): naive float64 loop, hand-computed case, finite differences


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


def test_new_terms_are_registered_with_start_epoch():
    assert {"fnac_fns1", "fnac_fns2", "fnac_tne", "lvs"} <= set(LOSS_TERMS.names())
    terms = build_terms(
        {
            "ezvsl": {"start_epoch": 0},
            "fnac_tne": {"weight": 50, "start_epoch": 2, "threshold": 0.5},
            "lvs": {"epsilon": 0.6, "hard_negative": False},
            "silence_map": {"start_epoch": 1},
        }
    )
    assert terms["fnac_tne"].weight == 50.0 and terms["fnac_tne"].start_epoch == 2
    assert terms["fnac_tne"].threshold == 0.5
    assert terms["lvs"].epsilon == 0.6 and terms["lvs"].hard_negative is False
    assert terms["silence_map"].start_epoch == 1 and terms["ezvsl"].start_epoch == 0
    with pytest.raises(RecipeError, match="loss.fnac_fns1.start_epoch: expected int"):
        build_terms({"fnac_fns1": {"start_epoch": 1.5}})
    with pytest.raises(RecipeError, match="loss.lvs.temperature: unknown key"):
        build_terms({"lvs": {"temperature": 0.07}})
