"""The mel front end of SSL-TIE (torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB``), in numpy.

SSL-TIE (jinxiang-liu/SSL-TIE, ``datasets/dataloader.py``) feeds its audio network

    AmplitudeToDB()(MelSpectrogram(sample_rate=sr, n_fft=512, hop_length=239, n_mels=257,
                                   normalized=True)(samples))

with torchaudio's defaults for everything else. :func:`mel_db_spectrogram` computes the same:

- frames: a periodic Hann window of ``n_fft`` samples every ``hop`` samples over the waveform
  reflect-padded by ``n_fft // 2`` on both sides (``center=True``), so ``1 + T // hop`` frames;
- power spectrum ``|rfft|^2`` divided by ``sum(window^2)`` (``normalized=True``: the STFT over the
  window's L2 norm, then squared);
- mel filterbank (:func:`mel_filterbank`): ``n_mels`` triangles on the HTK mel scale
  (``2595 log10(1 + f / 700)``) from 0 Hz to ``sr / 2``, over ``n_fft // 2 + 1`` linear bins,
  no area normalisation (torchaudio's ``melscale_fbanks`` with ``norm=None``);
- decibels: ``10 log10(max(x, 1e-10))`` (``AmplitudeToDB`` with ``stype="power"``, ref 1, no
  ``top_db``), so silence is -100 dB everywhere.

Input: float waveform ``(T,)`` or batch ``(N, T)``, ``T > n_fft // 2`` (reflect padding).
Output: float32 ``(n_mels, frames)`` or ``(N, n_mels, frames)``; 10 s at 16 kHz -> (257, 670).
Arithmetic is float64 and the result is rounded to float32 once.
"""

from __future__ import annotations

import functools

import numpy as np

#: SSL-TIE's settings (its dataloader), the defaults of :func:`mel_db_spectrogram`.
SSLTIE_MEL = {"n_fft": 512, "hop": 239, "n_mels": 257}
AMIN = 1e-10  #: AmplitudeToDB's floor on power


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """float64 ``(n_freqs, n_mels)`` triangular HTK filterbank from 0 Hz to ``sample_rate / 2``
    (read-only; see the module)."""
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    bank.setflags(write=False)
    return bank


def mel_db_spectrogram(
    wave: np.ndarray,
    sample_rate: int,
    n_fft: int = SSLTIE_MEL["n_fft"],
    hop: int = SSLTIE_MEL["hop"],
    n_mels: int = SSLTIE_MEL["n_mels"],
    db: bool = True,
) -> np.ndarray:
    """Mel power spectrogram in dB, float32 ``(n_mels, frames)``; see the module.

    ``db=False`` leaves the mel power as it is (vssl_eval's SSL-TIE silence and noise).
    """
    x = np.asarray(wave, np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a waveform (T,) or a batch (N, T), got shape {x.shape}")
    if x.shape[-1] <= n_fft // 2:
        raise ValueError(
            f"need more than {n_fft // 2} samples for a spectrogram, got {x.shape[-1]}"
        )
    batch = x[None] if x.ndim == 1 else x
    padded = np.pad(batch, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop, :]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 / np.sum(window**2)
    mel = power @ mel_filterbank(n_fft // 2 + 1, n_mels, int(sample_rate))  # (N, frames, mels)
    if db:
        mel = 10.0 * np.log10(np.maximum(mel, AMIN))
    out = mel.transpose(0, 2, 1).astype(np.float32)
    return out[0] if x.ndim == 1 else out


def mel_db_spectrogram_ops(
    waves,
    sample_rate: int,
    n_fft: int = SSLTIE_MEL["n_fft"],
    hop: int = SSLTIE_MEL["hop"],
    n_mels: int = SSLTIE_MEL["n_mels"],
):
    """float32 waveforms ``(N, T)`` -> mel spectrograms in dB ``(N, n_mels, frames, 1)``
    (keras.ops, any backend, channels last as the model takes them): the twin of
    :func:`mel_db_spectrogram`, computed in float32 (the reflect padding as a gather)."""
    from keras import ops

    waves = ops.cast(waves, "float32")
    samples = int(waves.shape[-1])
    if samples <= n_fft // 2:
        raise ValueError(f"need more than {n_fft // 2} samples for a spectrogram, got {samples}")
    half = n_fft // 2
    padded = np.arange(-half, samples + half)  # reflect padding: -1 -> 1, T -> T - 2
    padded = np.abs(padded)
    padded = np.where(padded > samples - 1, 2 * (samples - 1) - padded, padded)
    count = (samples + 2 * half - n_fft) // hop + 1
    index = padded[np.arange(count)[:, None] * hop + np.arange(n_fft)[None, :]].astype("int32")
    frames = ops.take(waves, ops.convert_to_tensor(index), axis=1)  # (N, frames, n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    frames = frames * ops.convert_to_tensor(window.astype("float32"))
    real, imag = ops.rfft(frames, fft_length=n_fft)  # (N, frames, n_fft // 2 + 1)
    power = (ops.square(real) + ops.square(imag)) * (1.0 / float(np.sum(window**2)))
    bank = mel_filterbank(n_fft // 2 + 1, n_mels, int(sample_rate)).astype("float32")
    mel = ops.matmul(power, ops.convert_to_tensor(bank))  # (N, frames, n_mels)
    db = 10.0 * ops.log(ops.maximum(mel, AMIN)) * (1.0 / float(np.log(10.0)))
    return ops.expand_dims(ops.transpose(db, (0, 2, 1)), -1)
