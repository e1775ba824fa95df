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

from avloc.inputs.mel import mel_db_spectrogram
from avloc.inputs.spectrogram import spectrogram
from avloc.inputs.stft import standardized_log_stft

#: ``inputs["audio_frontend"]`` -> waveform ``(T,)`` at ``sample_rate`` -> float32 ``(F, T')``;
#: ``hop`` is ``inputs["stft_hop"]`` (samples between frames; ``log_psd`` only, default 238)
AUDIO_FRONTENDS = {
    "log_psd": lambda wave, rate, hop: spectrogram(wave, sample_rate=rate, noverlap=512 - hop),
    "mel_db": lambda wave, rate, hop: mel_db_spectrogram(wave, rate),
    "log_stft_standardized": lambda wave, rate, hop: standardized_log_stft(wave),
}
DEFAULT_STFT_HOP = 238
