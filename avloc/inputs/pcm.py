"""16-bit PCM, how shards store waveforms: float32 in [-1, 1] <-> int16, numpy and keras.ops.

``to_pcm16``: ``round(clip(x, -1, 1) * 32767)`` as int16; ``from_pcm16`` and its keras.ops twin
``pcm_to_float_ops`` (inside the training step): ``pcm / 32767`` as float32.
"""

from __future__ import annotations

import numpy as np

#: Full scale of stored PCM: float 1.0 is stored as 32767.
PCM_SCALE = 32767.0


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    return np.round(np.clip(wave, -1.0, 1.0) * PCM_SCALE).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / PCM_SCALE


def pcm_to_float_ops(pcm):
    """int16 PCM ``(B, samples)`` -> float32 in [-1, 1] (keras.ops), as :func:`from_pcm16`."""
    from keras import ops

    return ops.cast(pcm, "float32") / np.float32(PCM_SCALE)
