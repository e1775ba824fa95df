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


# oneDNN, torch's CPU convolution kernels, fails on layers narrower than its vector width, so
# its instruction-set cap (ONEDNN_MAX_CPU_ISA, read once at its first use) is chosen by the first
# network a process builds: AVX2 below width 16, uncapped (AVX-512, AMX) otherwise; an exported
# value is kept (avloc/runtime/cpu_kernels.py).
# TensorFlow's switch for the same kernels is process-wide and read at import, so TensorFlow keeps
# its own kernels (the test suite's width-2 and width-4 networks need them) unless a command that
# knows its networks' widths first turns oneDNN on (avloc train), or the user exported
# TF_ENABLE_ONEDNN_OPTS (avloc/runtime/cpu_kernels.py).
from avloc.runtime.cpu_kernels import default_tensorflow_kernels  # noqa: E402

default_tensorflow_kernels()

__version__ = "0.1.0"
