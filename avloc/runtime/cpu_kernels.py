"""oneDNN's instruction-set cap on CPU, chosen by the first network a process builds.

oneDNN (torch's ``mkldnn`` kernels) reads ``ONEDNN_MAX_CPU_ISA`` once, at its first use, and its
convolutions fail on layers with fewer channels than their vector width (16 floats for AVX-512,
8 for AVX2; :mod:`avloc.runtime.backend` has the evidence). Uncapped, its AVX-512 kernels train
the paper-size ResNet pair about 1.4x faster than under an AVX2 cap (benchmarks/RESULTS.md). So
instead of one cap for every process:

- the first network built in a process (:func:`choose_isa_for`, called with its narrowest
  first-stage width before anything runs) caps oneDNN at AVX2 when it is narrower than
  :data:`MIN_WIDTH_AVX512` and leaves it uncapped otherwise; a value the user exported is kept;
- :func:`onednn_min_width` is the narrowest width the cap in force computes correctly; a
  network narrower than that runs the framework's own kernels (the callers switch oneDNN off).

TensorFlow reads its switch for the same kernels, ``TF_ENABLE_ONEDNN_OPTS``, once when it is
imported, and it cannot be turned off afterwards for a narrower network. So importing avloc sets
it to 0 (TensorFlow's own kernels: any network may follow, e.g. the test suite's width-2 and -4
ones), and a command that knows every network it will build before TensorFlow starts
(``avloc train``: the recipe's widths) calls :func:`choose_tensorflow_kernels`, which turns
oneDNN on, under the cap above, when the narrowest width is one oneDNN computes correctly. With
it the paper-size step runs about 1.4x faster on TensorFlow (``benchmarks/profile_tf_step.py``;
its convolutions' backward passes are most of the difference). A switch the user exported is
kept.

Importing this module imports no framework (the Keras-free ``avloc localize`` path uses it).
"""

from __future__ import annotations

import os
import sys

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
_tf_switch_from_user: bool | None = None


def default_tensorflow_kernels() -> None:
    """At avloc's import: TensorFlow's own kernels unless the user exported :data:`TF_SWITCH`."""
    global _tf_switch_from_user
    if _tf_switch_from_user is None:
        _tf_switch_from_user = TF_SWITCH in os.environ
    os.environ.setdefault(TF_SWITCH, "0")


def choose_tensorflow_kernels(width: int) -> bool:
    """For a process whose every network is at least ``width`` wide, before TensorFlow starts:
    oneDNN on (``TF_ENABLE_ONEDNN_OPTS=1``) with the cap :func:`choose_isa_for` gives, when
    ``width`` is one that cap computes correctly. An exported switch is kept, and nothing
    changes once TensorFlow is imported. Returns whether TensorFlow's oneDNN is on."""
    if not _tf_switch_from_user and "tensorflow" not in sys.modules:
        choose_isa_for(width)
        os.environ[TF_SWITCH] = "1" if width >= onednn_min_width() else "0"
    return os.environ.get(TF_SWITCH) == "1"


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
