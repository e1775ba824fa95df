"""avloc: visual sound source localization that can say "nothing here is sounding".

Keras 3 models and losses (torch / TensorFlow / JAX backends via ``KERAS_BACKEND``), data
preparation into self-describing HDF5 shards, training with silence and noise negatives
(SSL-SaN), and the negative-audio evaluation protocol.
"""

import json
import os
from pathlib import Path


def _keras_backend_name() -> str:
    """The backend Keras will load, read without importing it (``KERAS_BACKEND``, keras.json)."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return str(json.loads(config.read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


# oneDNN, torch's CPU convolution kernels, fails on layers narrower than its vector width
# (AVX-512 segfaults on the width-8 networks of the quickstart and the synthetic recipes; see
# avloc/runtime/backend.py). oneDNN reads this cap once, at its first use, so it is set here,
# before any
# framework runs, and only for the torch backend: TensorFlow (its own convolution kernels, see
# below) trains about 1.2x slower with the cap, and has no such fault. Export
# ONEDNN_MAX_CPU_ISA=DEFAULT for torch's AVX-512 kernels: about 1.3x faster at the paper's
# width 64, which they train without a fault.
if _keras_backend_name() == "torch":
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# TensorFlow's switch for the same kernels is process-wide and read at import, so TensorFlow keeps
# its own kernels (the test suite's width-2 and width-4 networks need them); export
# TF_ENABLE_ONEDNN_OPTS=1 for oneDNN with networks of width 8 or more.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
