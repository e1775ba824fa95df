"""RCGrad's audio front end: a standardised log power STFT, in numpy.

RCGrad (hohsiangwu/rethinking-visual-sound-localization, ``modules/resnet.py`` ``ResNetSpec``)
turns a 16 kHz waveform into its audio network's input with

    x = torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)(wave)  # power
    x = log(x + 1e-7)
    x = (x - mean(x)) / (std(x) + 1e-9)

torchaudio's defaults elsewhere: a periodic Hann window of ``n_fft`` samples, the waveform
reflect-padded by ``n_fft // 2`` on both sides (``center=True``), so ``1 + T // hop`` frames,
``|rfft|^2`` without normalisation. The mean and the (unbiased, ``ddof = 1``) standard deviation
are over the whole spectrogram of one input (RCGrad computes them per batch and localizes one
image at a time).

Input: float waveform ``(T,)``, ``T > n_fft // 2``. Output: float32 ``(n_fft // 2 + 1, frames)``;
10 s at 16 kHz -> (257, 454). Arithmetic is float64, rounded to float32 once.
"""

from __future__ import annotations

import numpy as np

RCGRAD_STFT = {"n_fft": 512, "hop": 353}


def standardized_log_stft(
    wave: np.ndarray, n_fft: int = RCGRAD_STFT["n_fft"], hop: int = RCGRAD_STFT["hop"]
) -> np.ndarray:
    """The standardised ``log(|STFT|^2 + 1e-7)`` of one waveform, float32 ``(F, frames)``."""
    x = np.asarray(wave, np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a waveform (T,), got shape {x.shape}")
    if x.shape[0] <= n_fft // 2:
        raise ValueError(f"need more than {n_fft // 2} samples for a spectrogram, got {len(x)}")
    padded = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, F)
    log = np.log(power + 1e-7).T
    return ((log - log.mean()) / (log.std(ddof=1) + 1e-9)).astype(np.float32)
