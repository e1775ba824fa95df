"""Shared pieces of the loss-term tests (tests/test_losses_*.py): random unit features, a term's
value, gradients with the active Keras backend, and the naive float64 references they share.

References:
- a NumPy float64 loop over (n, m) pairs with explicit log-sum-exp (values);
- a plain-torch float64 reimplementation (gradients, via torch autograd; torch is installed under
  every backend), itself checked against the NumPy loop and finite differences;
- central finite differences of the NumPy float64 loops (:func:`finite_difference_grads`).
Gradients of the avloc terms are taken with the active Keras backend (:func:`backend_grad`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import torch
from keras import ops


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
