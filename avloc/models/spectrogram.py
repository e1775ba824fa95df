"""The audio front end as Keras ops: waveforms -> log power spectrograms on the device.

:func:`log_spectrogram` computes what :func:`avloc.media.audio.spectrogram` computes with numpy
(``log(PSD + 1e-7) / 12``: Tukey(0.25) periodic window, per-frame mean removal, density scaling,
one-sided, full frames only), with ``keras.ops`` on any backend, so that a training step can take
float32 waveforms ``(N, T)`` and build the spectrograms on the accelerator
(``data.spectrogram_on_device``; the loader then only cuts clips). Output: float32
``(N, freq, time, 1)`` with ``freq = nperseg // 2 + 1`` and ``time = (T - nperseg) // hop + 1``
(257 x 200 for 3 s at 16 kHz), channels last like the loader's. Parity with the numpy version:
``tests/test_spectrogram_ops.py`` (within 1e-4 on the log scale, every backend).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from avloc.media.audio import LOG_EPS, LOG_SCALE, _psd_scale, _window


def log_spectrogram(waves, sample_rate: int = 16000, nperseg: int = 512, noverlap: int = 274):
    """Float32 waveforms ``(N, T)`` -> log spectrograms ``(N, freq, time, 1)`` (keras.ops)."""
    waves = ops.cast(waves, "float32")
    samples = int(waves.shape[-1])
    hop = nperseg - noverlap
    count = (samples - nperseg) // hop + 1
    if count < 1:
        raise ValueError(f"need at least {nperseg} samples for a spectrogram, got {samples}")
    index = (np.arange(count)[:, None] * hop + np.arange(nperseg)[None, :]).astype("int32")
    frames = ops.take(waves, ops.convert_to_tensor(index), axis=1)  # (N, time, nperseg)
    frames = frames - ops.mean(frames, axis=-1, keepdims=True)  # detrend="constant"
    frames = frames * ops.convert_to_tensor(_window(nperseg).astype("float32"))
    real, imag = ops.rfft(frames, fft_length=nperseg)  # (N, time, freq)
    power = (ops.square(real) + ops.square(imag)) * ops.convert_to_tensor(
        _psd_scale(nperseg, sample_rate)
    )
    logs = ops.log(power + LOG_EPS) * (1.0 / LOG_SCALE)
    return ops.expand_dims(ops.transpose(logs, (0, 2, 1)), -1)
