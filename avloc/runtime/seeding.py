"""One seed for every generator a job draws from, without importing an unused framework.

:func:`set_random_seed` does what ``keras.utils.set_random_seed`` does (Python's ``random``,
NumPy's global generator, the backend's generator, and Keras' global ``SeedGenerator``, which is
recreated from the seed) except one thing: Keras seeds TensorFlow whenever it is installed, which
imports TensorFlow in torch and JAX jobs that never use it, and its start-up lines (oneDNN's
notice) then open every ``avloc train`` on torch. Here TensorFlow is seeded only when it is the
backend or already imported (saving a ``.keras`` file still imports it, silenced:
:func:`avloc.models.io.save_network`). The draws are the same: ``tests/test_seeding.py`` compares
them with Keras' function.
"""

from __future__ import annotations

import random
import sys

import numpy as np


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy, Keras' global generator and the backend (int ``seed``)."""
    import keras
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    backend = keras.backend.backend()
    if backend == "tensorflow" or "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.random.set_seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
