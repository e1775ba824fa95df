"""Backend-specific set-up, applied once before any model is built.

torch on CPU: oneDNN (mkldnn) convolution backward in torch 2.13.0 corrupts the heap for the
ResNet pair trained here (``corrupted size vs. prev_size`` / segfault in ``backward``, reproduced
with plain torch modules). avloc therefore turns oneDNN off for CPU training; torch then uses its
native convolution kernels, which measured as fast or faster for the widths in the recipes
(see benchmarks/). GPUs are unaffected (cuDNN is used there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

_configured = False


def configure_backend() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    if keras.backend.backend() == "torch":
        import torch

        if not torch.cuda.is_available():
            torch.backends.mkldnn.enabled = False


@contextlib.contextmanager
def inference_mode() -> Iterator[None]:
    """No autograd bookkeeping for forward passes whose gradients nobody needs.

    torch records a graph for every eager call on trainable weights unless told otherwise
    (evaluation, calibration and localization would pay for it in time and memory); TensorFlow
    and JAX record nothing outside a gradient tape or transform, so this is a no-op there.
    """
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield
