"""avloc's audio front end, the log power spectrogram: numpy, and its twin in keras.ops.

:func:`spectrogram` (numpy): ``log(PSD + 1e-7) / 12`` of float32 waveforms, where PSD is the
one-sided power spectral density in (full scale)^2 / Hz, exactly as ``scipy.signal.spectrogram(x,
fs, nperseg=512, noverlap=274)`` computes it: Tukey(0.25) periodic window, per-frame mean
removal, density scaling, full frames only. A waveform ``(T,)`` gives float32 ``(freq, time)`` =
``(nperseg // 2 + 1, (T - nperseg) // hop + 1)``: ``(257, 200)`` for a 3 s clip at 16 kHz (hop
238 samples = 14.875 ms, bins 31.25 Hz apart); a batch ``(N, T)`` gives ``(N, freq, time)``.

:func:`spectrogram_ops` (keras.ops, any backend): the same from float32 waveforms ``(N, T)`` on
the device, as ``(N, freq, time, 1)`` (``data.preprocess_on_device``); parity within 1e-4 on the
log scale, ``tests/test_spectrogram_ops.py``.

numpy only at import; the twin imports ``keras.ops`` when called.
"""

from __future__ import annotations

import functools

import numpy as np

#: Added to the PSD before the log, so silence maps to ``log(1e-7) / 12`` (about -1.343).
LOG_EPS = 1e-7
#: The log-PSD is divided by this.
LOG_SCALE = 12.0


@functools.lru_cache(maxsize=8)
def _window(nperseg: int) -> np.ndarray:
    """Periodic Tukey(0.25) window (scipy.signal.spectrogram's default), float64, read-only."""
    from scipy.signal import get_window

    win = np.asarray(get_window(("tukey", 0.25), nperseg), dtype=np.float64)
    win.setflags(write=False)
    return win


@functools.lru_cache(maxsize=8)
def _psd_scale(nperseg: int, sample_rate: float) -> np.ndarray:
    """Per-bin factor of the one-sided density PSD, float32 ``(nperseg // 2 + 1,)``, read-only.

    ``1 / (fs * sum(win**2))`` ("density" scaling), doubled for every bin but DC and Nyquist
    (every bin but DC when ``nperseg`` is odd).
    """
    win = _window(nperseg)
    scale = np.full(nperseg // 2 + 1, 1.0 / (sample_rate * float(np.sum(win**2))))
    scale[1 : -1 if nperseg % 2 == 0 else None] *= 2.0
    scale = scale.astype(np.float32)
    scale.setflags(write=False)
    return scale


def _log_psd(frames: np.ndarray, nperseg: int, sample_rate: float, log: bool = True) -> np.ndarray:
    """``log(PSD + 1e-7) / 12`` of float32 frames ``(n, time, nperseg)`` -> ``(n, time, freq)``
    (``log=False``: ``PSD / 12``)."""
    mean = frames.mean(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    seg = frames - mean  # detrend="constant"
    seg *= _window(nperseg).astype(np.float32)
    spec = np.fft.rfft(seg, axis=-1)  # complex64
    power = np.square(spec.real)
    power += np.square(spec.imag)
    power *= _psd_scale(nperseg, sample_rate)
    if log:
        power += np.float32(LOG_EPS)
        np.log(power, out=power)
    power *= np.float32(1.0 / LOG_SCALE)
    return power


def spectrogram(
    wave: np.ndarray,
    sample_rate: int = 16000,
    nperseg: int = 512,
    noverlap: int = 274,
    log: bool = True,
) -> np.ndarray:
    """Log power spectrogram ``log(PSD + 1e-7) / 12``, float32, shape ``(freq, time)``.

    ``log=False`` gives ``PSD / 12`` (xavijuanola/vssl_eval feeds silence and noise this way to
    the EZ-VSL family, :mod:`avloc.evaluation.vssl_eval`).

    Equal (within 1e-6 on the log scale, float32 arithmetic) to ``scipy.signal.spectrogram(x,
    fs=sample_rate, nperseg=nperseg, noverlap=noverlap)[2]`` followed by the log: Tukey(0.25)
    periodic window, per-frame mean removal, density scaling, one-sided, no padding; frames
    start every ``nperseg - noverlap`` samples and only full frames are used. ``freq = nperseg
    // 2 + 1``, ``time = (T - nperseg) // (nperseg - noverlap) + 1`` -> (257, 200) for 48000
    samples. A batch ``(N, T)`` gives ``(N, freq, time)``.
    """
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a waveform (T,) or a batch (N, T), got shape {x.shape}")
    if not 0 <= noverlap < nperseg:
        raise ValueError(f"need 0 <= noverlap < nperseg, got noverlap={noverlap}, {nperseg=}")
    if x.shape[-1] < nperseg:
        raise ValueError(f"need at least {nperseg} samples for a spectrogram, got {x.shape[-1]}")
    hop = nperseg - noverlap
    batch = x[None] if x.ndim == 1 else x
    out = np.empty(
        (batch.shape[0], nperseg // 2 + 1, (batch.shape[-1] - nperseg) // hop + 1),
        dtype=np.float32,
    )
    chunk = 32  # bound the frame buffers (32 x 200 x 512 x 8 B complex64 = 26 MB for 3 s clips)
    for i in range(0, batch.shape[0], chunk):
        frames = np.lib.stride_tricks.sliding_window_view(batch[i : i + chunk], nperseg, axis=-1)
        frames = frames[:, ::hop, :]  # (n, time, nperseg)
        psd = _log_psd(frames, nperseg, float(sample_rate), log)
        out[i : i + chunk] = psd.transpose(0, 2, 1)
    return out[0] if x.ndim == 1 else out


def spectrogram_ops(waves, sample_rate: int = 16000, nperseg: int = 512, noverlap: int = 274):
    """Float32 waveforms ``(N, T)`` -> log spectrograms ``(N, freq, time, 1)`` (keras.ops, any
    backend, channels last as the model takes them): the twin of :func:`spectrogram`."""
    from keras import ops

    from avloc.runtime.scalars import constant

    waves = ops.cast(waves, "float32")
    samples = int(waves.shape[-1])
    hop = nperseg - noverlap
    count = (samples - nperseg) // hop + 1
    if count < 1:
        raise ValueError(f"need at least {nperseg} samples for a spectrogram, got {samples}")
    index = constant(
        ("frames", count, hop, nperseg),
        lambda: (np.arange(count)[:, None] * hop + np.arange(nperseg)[None, :]).astype("int32"),
    )
    frames = ops.take(waves, index, axis=1)  # (N, time, nperseg)
    frames = frames - ops.mean(frames, axis=-1, keepdims=True)  # detrend="constant"
    frames = frames * constant(("window", nperseg), lambda: _window(nperseg).astype("float32"))
    real, imag = ops.rfft(frames, fft_length=nperseg)  # (N, time, freq)
    scale = constant(("psd scale", nperseg, sample_rate), lambda: _psd_scale(nperseg, sample_rate))
    power = (ops.square(real) + ops.square(imag)) * scale
    logs = ops.log(power + LOG_EPS) * (1.0 / LOG_SCALE)
    return ops.expand_dims(ops.transpose(logs, (0, 2, 1)), -1)
