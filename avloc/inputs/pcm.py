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


def fit_length(waves: np.ndarray, samples: int) -> np.ndarray:
    """Clips ``(B, T)`` (any dtype) brought to ``(B, samples)`` as SSL-TIE's loader does: a short
    clip is repeated from its start and cut (``datasets/dataloader.py``: repeated to 10 s), a long
    one keeps its first ``samples``. The same array when it has that length already."""
    length = waves.shape[-1]
    if length == samples:
        return waves
    if length < samples:
        waves = np.tile(waves, (1, -(-samples // length)))
    return waves[:, :samples]
