"""The empty-map terms ``silence_map`` and ``noise_map`` (docs/method.md, SSL-SaN): against a naive
per-sample loop and hand-computed values, zero with a finite (zero) gradient on empty maps, and
gradients against plain torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loss_harness import (
    assert_grads_close,
    backend_grad,
    make_outputs,
    normalised,
    torch_grads,
    value,
)

from avloc.losses.empty_maps import NoiseMap, SilenceMap


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
