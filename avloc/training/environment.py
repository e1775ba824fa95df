"""What ``meta.json`` records of the process that trained: versions, git commit, CPU kernels.

:func:`environment_info` returns a flat dict of strings and booleans (see its keys below);
``avloc train`` merges it into ``meta.json`` at every start, so a resumed run records the
software it was resumed with.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np

from avloc import __version__
from avloc.runtime.configure import tensorflow_onednn_in_force
from avloc.runtime.cpu_kernels import cap_in_force


def git_commit() -> str:
    """The commit of the avloc source tree this process runs ("" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def framework_version(backend: str) -> str | None:
    """The version of the Keras backend's framework (``torch``, ``tensorflow``, ``jax``)."""
    try:
        if backend == "torch":
            import torch

            return torch.__version__
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.__version__
        if backend == "jax":
            import jax

            return jax.__version__
    except ImportError:
        pass
    return None


def environment_info() -> dict[str, Any]:
    """``avloc``, ``backend``, ``keras``, ``numpy``, ``python``, ``git_commit``, the backend's
    own version under its name, ``onednn_cap`` (oneDNN's instruction-set cap in force,
    :mod:`avloc.runtime.cpu_kernels`) and, on TensorFlow, ``tensorflow_onednn`` (whether
    TensorFlow runs oneDNN's kernels or its own)."""
    backend = keras.backend.backend()
    info: dict[str, Any] = {
        "avloc": __version__,
        "backend": backend,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
        "onednn_cap": cap_in_force(),
    }
    if backend == "tensorflow":
        info["tensorflow_onednn"] = tensorflow_onednn_in_force()
    version = framework_version(backend)
    if version is not None:
        info[backend] = version
    return info
