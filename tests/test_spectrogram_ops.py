"""The on-device audio front end equals the numpy one (the loader's), on the current backend."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from avloc.inputs.noise import noise_waveform
from avloc.inputs.spectrogram import spectrogram, spectrogram_ops


@pytest.mark.parametrize("samples", [48000, 8000, 512])
def test_log_spectrogram_matches_the_numpy_front_end(samples):
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16000
    tone = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(samples)
    waves = np.stack(
        [tone, noise_waveform(rng, samples), np.zeros(samples), 0.9 * np.sign(tone)]
    ).astype(np.float32)
    expected = spectrogram(waves)[..., None]
    got = ops.convert_to_numpy(spectrogram_ops(waves))
    assert got.shape == expected.shape == (4, 257, (samples - 512) // 238 + 1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_log_spectrogram_refuses_too_short_clips():
    with pytest.raises(ValueError, match="at least 512 samples"):
        spectrogram_ops(np.zeros((1, 100), np.float32))
