"""SSL-TIE's mel front end: parity with a plain-torch reference (``torch.stft`` and a filterbank
built filter by filter, following torchaudio's MelSpectrogram + AmplitudeToDB), shapes, and the
network input contract that dispatches on ``inputs["audio_frontend"]``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avloc.inputs.contract import InputContract
from avloc.inputs.mel import mel_db_spectrogram

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


def reference(wave: np.ndarray, sr: int, n_fft=512, hop=239, n_mels=257) -> np.ndarray:
    x = torch.from_numpy(np.asarray(wave, np.float64))
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(
        x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
        pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )  # fmt: skip
    spec = spec / window.pow(2.0).sum().sqrt()  # torchaudio's normalized=True
    power = spec.abs().pow(2.0)  # (freqs, frames)
    freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    low, high = 0.0, 2595.0 * math.log10(1.0 + (sr / 2) / 700.0)
    edges = [700.0 * (10 ** ((low + (high - low) * i / (n_mels + 1)) / 2595.0) - 1.0)
             for i in range(n_mels + 2)]  # fmt: skip
    bank = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            rising = (f - left) / (centre - left)
            falling = (right - f) / (right - centre)
            bank[k, m] = max(0.0, min(rising, falling))
    mel = torch.from_numpy(bank).T @ power
    return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).numpy()


@pytest.mark.parametrize(("sr", "seconds"), [(16000, 1.0), (22050, 0.5)])
def test_matches_the_torch_reference(sr, seconds):
    rng = np.random.default_rng(sr)
    t = np.arange(int(sr * seconds)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    ours = mel_db_spectrogram(wave.astype(np.float32), sr)
    ref = reference(wave.astype(np.float32), sr)
    assert ours.shape == ref.shape == (257, 1 + t.size // 239) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-3)  # dB; float32 rounding of the output
    batch = mel_db_spectrogram(np.stack([wave, wave[::-1]]).astype(np.float32), sr)
    np.testing.assert_array_equal(batch[0], ours)


def test_ten_seconds_and_silence():
    assert mel_db_spectrogram(np.zeros(160000, np.float32), 16000).shape == (257, 670)
    np.testing.assert_array_equal(mel_db_spectrogram(np.zeros(4000), 16000), -100.0)
    with pytest.raises(ValueError, match="more than 256 samples"):
        mel_db_spectrogram(np.zeros(200), 16000)


def test_the_input_contract_uses_the_networks_front_end():
    inputs = {"image_size": 32, "sample_rate": 16000, "clip_seconds": 1.0}
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    mel = InputContract({**inputs, "audio_frontend": "mel_db"})
    np.testing.assert_array_equal(mel.spectrogram(wave), mel_db_spectrogram(wave, 16000))
    assert mel.silence().shape == (257, 67) and np.all(mel.silence() == -100.0)
    default = InputContract(inputs)
    assert default.spectrogram(wave).shape[0] == 257 and default.spectrogram(wave).shape[1] != 67
    with pytest.raises(ValueError, match="audio_frontend"):
        InputContract({**inputs, "audio_frontend": "cqt"})
