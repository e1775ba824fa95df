"""oneDNN's instruction-set cap on CPU, chosen from the first widths a process configures.

oneDNN (torch's ``mkldnn`` kernels) reads ``ONEDNN_MAX_CPU_ISA`` once, at its first use, and its
convolutions fail on layers with fewer channels than their vector width (16 floats for AVX-512,
8 for AVX2; :mod:`avloc.runtime.backend` has the evidence). Uncapped, its AVX-512 kernels train
the paper-size ResNet pair about 1.4x faster than under an AVX2 cap (benchmarks/RESULTS.md). So
instead of one cap for every process:

- the first :func:`avloc.runtime.configure` call that names widths (:func:`choose_isa_for`, with
  the narrowest first-stage width, before anything runs) caps oneDNN at AVX2 when it is
  narrower than :data:`MIN_WIDTH_AVX512` and leaves it uncapped otherwise; a value the user
  exported is kept;
- :func:`onednn_min_width` is the narrowest width the cap in force computes correctly; a
  network narrower than that runs the framework's own kernels (the callers switch oneDNN off).

TensorFlow reads its switch for the same kernels, ``TF_ENABLE_ONEDNN_OPTS``, once when it is
imported; :func:`avloc.runtime.configure` sets it from the widths a job will build, before
TensorFlow starts (with oneDNN the paper-size step runs about 1.4x faster on TensorFlow,
``benchmarks/profile_tf_step.py``; its convolutions' backward passes are most of the
difference). Nothing here is called at import: :func:`avloc.runtime.configure` calls
:func:`choose_isa_for`.

Importing this module imports no framework (the Keras-free ``avloc localize`` path uses it).
"""

from __future__ import annotations

import os

#: The environment variable oneDNN reads at its first use.
CAP_VARIABLE = "ONEDNN_MAX_CPU_ISA"
#: The cap a narrow network gets.
NARROW_CAP = "AVX2"
#: The narrowest first-stage width oneDNN's AVX2 kernels train correctly.
MIN_WIDTH_AVX2 = 8
#: The narrowest first-stage width its AVX-512 kernels train correctly (their vector width).
MIN_WIDTH_AVX512 = 16
#: TensorFlow's switch for its oneDNN kernels and graph rewrites, read when it is imported.
TF_SWITCH = "TF_ENABLE_ONEDNN_OPTS"

_chosen = False


def cap_in_force() -> str:
    """The ``ONEDNN_MAX_CPU_ISA`` of this process (``DEFAULT``: every instruction set)."""
    return os.environ.get(CAP_VARIABLE, "DEFAULT")


def capped_below_avx512(cap: str | None = None) -> bool:
    """Whether ``cap`` (default: the one in force) keeps oneDNN below AVX-512 (AVX2, SSE4.1)."""
    cap = (cap_in_force() if cap is None else cap).upper()
    return cap.startswith(("AVX", "SSE")) and "512" not in cap


def choose_isa_for(width: int) -> str:
    """Cap oneDNN at AVX2 if the process's first network is narrower than AVX-512's vector width.

    Only the first call decides (oneDNN reads the variable once); an exported value is never
    changed. Returns the cap in force.
    """
    global _chosen
    if not _chosen and CAP_VARIABLE not in os.environ and width < MIN_WIDTH_AVX512:
        os.environ[CAP_VARIABLE] = NARROW_CAP
    _chosen = True
    return cap_in_force()


def onednn_min_width() -> int:
    """The narrowest first-stage width oneDNN computes correctly under the cap in force."""
    return MIN_WIDTH_AVX2 if capped_below_avx512() else MIN_WIDTH_AVX512
