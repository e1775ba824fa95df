"""``keras.ops`` with a Python number that make no tensor from host data on torch.

Keras' torch backend turns every Python number an op takes into a tensor (``torch.as_tensor``
on the host, then a copy to the device: a wait for the device on a GPU), and ``ops.full_like``
reads its fill value back with ``.item()``. In a training step these run every step; the twins
here pass the number to torch as a scalar instead. Same values, same dtypes, any backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

#: Whether Keras runs on torch (fixed when Keras is imported); one place for every module
TORCH = keras.backend.backend() == "torch"


def full_like(x, value: float):
    """A tensor shaped and typed like ``x``, every element ``value``."""
    if TORCH:
        import torch

        return torch.full_like(x, value)
    return ops.full_like(x, value)


def floor_at(x, value: float):
    """``max(x, value)`` element-wise (``ops.maximum(x, value)``)."""
    if TORCH:
        return x.clamp_min(value)
    return ops.maximum(x, value)


def clip(x, low, high):
    """``ops.clip(x, low, high)`` with Python bounds."""
    if TORCH:
        return x.clamp(low, high)
    return ops.clip(x, low, high)


_CONSTANTS: dict = {}


def constant(key: tuple, make):
    """``ops.convert_to_tensor(make())``, on torch made once per ``key`` and device.

    ``key`` names the array ``make`` builds (a NumPy array that depends on nothing but
    ``key``): a step that needs an interpolation matrix or index grid makes it the first time
    and reuses the device's copy afterwards. Other backends convert it each time they trace.
    """
    if not TORCH:
        return ops.convert_to_tensor(make())
    from keras.src.backend.torch.core import get_device

    full_key = (key, str(get_device()))
    held = _CONSTANTS.get(full_key)
    if held is None:
        held = _CONSTANTS[full_key] = ops.convert_to_tensor(make())
    return held


def number(value, dtype: str = "float32"):
    """A NumPy scalar of ``dtype`` for an op's operand; on torch its 0-d device tensor, made once
    per value and device (Keras makes a tensor of a NumPy scalar on the host at every call)."""
    scalar = np.dtype(dtype).type(value)
    if not TORCH:
        return scalar
    return constant(("number", dtype, scalar.item()), lambda: scalar)
