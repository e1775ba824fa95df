"""The audio front ends by name: a network's ``inputs["audio_frontend"]`` -> its spectrogram.

Each maps a mono float32 waveform ``(T,)`` at ``rate`` Hz (and the hop ``inputs["stft_hop"]``,
samples between frames; ``log_psd`` only) to a float32 spectrogram ``(F, T')``:

- ``log_psd``: avloc's log power spectrogram (:func:`avloc.inputs.spectrogram.spectrogram`;
  257 x 200 for 3 s at 16 kHz, hop 238, or SSL-Align's 159);
- ``mel_db``: SSL-TIE's mel spectrogram in dB (:func:`avloc.inputs.mel.mel_db_spectrogram`);
- ``log_stft_standardized``: RCGrad's standardised log STFT
  (:func:`avloc.inputs.stft.standardized_log_stft`).
"""

from __future__ import annotations

import numpy as np

from avloc.inputs.mel import mel_db_spectrogram, mel_db_spectrogram_ops
from avloc.inputs.spectrogram import spectrogram, spectrogram_ops
from avloc.inputs.stft import standardized_log_stft

#: ``inputs["audio_frontend"]`` -> waveform ``(T,)`` at ``sample_rate`` -> float32 ``(F, T')``;
#: ``hop`` is ``inputs["stft_hop"]`` (samples between frames; ``log_psd`` only, default 238)
AUDIO_FRONTENDS = {
    "log_psd": lambda wave, rate, hop: spectrogram(wave, sample_rate=rate, noverlap=512 - hop),
    "mel_db": lambda wave, rate, hop: mel_db_spectrogram(wave, rate),
    "log_stft_standardized": lambda wave, rate, hop: standardized_log_stft(wave),
}
DEFAULT_STFT_HOP = 238
#: The front ends a recipe may train with (``data.audio_frontend``).
TRAINING_FRONTENDS = ("log_psd", "mel_db")


def training_spectrograms(waves: np.ndarray, frontend: str, sample_rate: int) -> np.ndarray:
    """float32 waveforms ``(N, T)`` -> float32 spectrograms ``(N, F, T', 1)`` of a training front
    end (``data.audio_frontend``: avloc's log spectrogram with its default hop, or SSL-TIE's
    mel in dB); :func:`training_spectrograms_ops` is the keras.ops twin."""
    if frontend == "log_psd":
        return spectrogram(waves, sample_rate=sample_rate)[..., None]
    if frontend == "mel_db":
        return mel_db_spectrogram(waves, sample_rate)[..., None]
    raise ValueError(f"unknown training audio front end {frontend!r} ({TRAINING_FRONTENDS})")


def training_spectrograms_ops(waves, frontend: str, sample_rate: int):
    """The keras.ops twin of :func:`training_spectrograms`: ``(N, T)`` -> ``(N, F, T', 1)``."""
    if frontend == "log_psd":
        return spectrogram_ops(waves, sample_rate)
    if frontend == "mel_db":
        return mel_db_spectrogram_ops(waves, sample_rate)
    raise ValueError(f"unknown training audio front end {frontend!r} ({TRAINING_FRONTENDS})")
