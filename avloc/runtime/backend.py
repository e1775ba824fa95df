"""CPU kernel choice: oneDNN where it computes correctly, the frameworks' own kernels elsewhere.

oneDNN (torch's ``mkldnn`` kernels, TensorFlow's oneDNN ops) runs the ResNet pair about twice as
fast on CPU as the frameworks' own kernels (benchmarks/RESULTS.md), but in torch 2.13.0 and
TensorFlow 2.21.0 its convolution kernels fail on layers with fewer channels than their vector
width (16 floats for AVX-512, 8 for AVX2):

- AVX-512: the stride-2 1x1 convolution's backward (``brgconv_strided:avx512_core``) on 8
  channels, channels-last, 56x56 (the width-8 shortcut of layer 2 at 112 px) segfaults; training
  the width-8 quickstart dies within its first steps on torch and on TensorFlow alike
  (``ONEDNN_VERBOSE=1`` names that convolution last). Widths 16, 32 and 64 train.
- AVX2: width 8 trains its full epoch, also under glibc's malloc checks, with gradients
  repeatable bit for bit and as close to torch's own kernels' as float32 allows
  (tests/test_backend.py); at widths 2 and 4 (the test suite's networks) the ``jit:avx2``
  backward-weights convolution hangs or gives different gradients on a repeat.

So the kernels are chosen per process, explicitly, by :func:`avloc.runtime.configure`, which
each job calls with the widths it will build before building them: the first widths cap oneDNN
at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, read once by oneDNN at its first use) when the narrowest
is below 16 and leave it uncapped otherwise (a value the user exported is kept); torch's oneDNN
stays on while every network configured is at least as wide as the cap computes correctly (8
under AVX2, 16 uncapped), and TensorFlow's switch (read at its import) is set the same way
before TensorFlow starts. Building a trunk changes nothing: it asks
:func:`avloc.runtime.check_width` and is refused in one line under kernels that would compute it
wrong. GPUs are unaffected (cuDNN is used there); for training on a CUDA GPU under torch,
``configure(..., gpu_autotune=True)`` lets cuDNN time its convolution algorithms once per shape
and keep the fastest (TensorFlow and JAX autotune by themselves).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from avloc.runtime.cpu_kernels import cap_in_force, capped_below_avx512


def trains_on_gpu() -> bool:
    """Whether the Keras backend of this process has a GPU to train on."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() not in ("cpu",)
    return False


def preprocess_on_device(setting: bool | str) -> bool:
    """``data.preprocess_on_device`` resolved: ``"auto"`` is on with a GPU and off on a CPU,
    where Pillow in the loader's threads is the cheaper place (benchmarks/RESULTS.md, "Loader")."""
    return trains_on_gpu() if setting == "auto" else bool(setting)


def jit_compile(setting: bool | str) -> bool:
    """``train.jit_compile`` resolved for this process: ``"auto"`` compiles with XLA on JAX
    (whose steps otherwise run op by op) and on TensorFlow when it sees a GPU, and leaves torch
    (``torch.compile`` spends minutes before the first step) and TensorFlow on a CPU as they
    are; ``true`` or ``false`` choose for every backend."""
    if setting != "auto":
        return bool(setting)
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    return backend == "tensorflow" and trains_on_gpu()


def batch_shapes_may_vary() -> bool:
    """Whether the training batches of one run may change shape from batch to batch: yes on
    torch (each step runs as it comes) and JAX (one compiled step per shape); not on TensorFlow,
    whose ``tf.data`` input signature is fixed from the first batches Keras looks at."""
    return keras.backend.backend() != "tensorflow"


def onednn_isa_cap() -> str:
    """The ``ONEDNN_MAX_CPU_ISA`` in force for this process (avloc's choice or the user's value)."""
    return cap_in_force()


def cpu_bf16_warning(precision: str, cuda: bool | None = None) -> str | None:
    """One line for the user when bf16 training would run on CPU without fast bf16 kernels.

    Under the AVX2 cap oneDNN has no bf16 convolutions, and the ResNet pair trains 5-13x
    slower in ``mixed_bfloat16`` than in float32 (benchmarks/RESULTS.md); uncapped, on a CPU with
    AMX, it is about 2x faster. ``None`` when this does not apply (float32, a GPU, TensorFlow or
    JAX, or an uncapped oneDNN). ``cuda``: whether a GPU is used (default: torch sees one).
    """
    if precision != "mixed_bfloat16" or keras.backend.backend() != "torch":
        return None
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    cap = onednn_isa_cap().upper()
    if cuda or not capped_below_avx512(cap):
        return None
    return (
        f'train.precision = "mixed_bfloat16" on CPU with oneDNN capped at {cap} '
        "(avloc/runtime/backend.py):"
        " no fast bf16 convolutions here, 5-13x slower than float32; use float32 (avloc"
        " lifts the cap itself for networks of width 16 or more)"
    )


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
