"""Loss terms (SPEC 3) against naive per-sample references, hand-computed values and gradients.

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
