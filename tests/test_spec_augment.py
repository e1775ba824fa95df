"""SSL-TIE's SpecAugment (avloc.inputs.specaugment) against torchaudio's ``mask_along_axis``
written out here, and the invariants of a mask: inside it the fill, outside it the input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avloc.inputs import specaugment as sa
from avloc.inputs.mel import mel_db_spectrogram


def ref_mask_along_axis(spec, u_width, u_start, param, axis, value):
    """torchaudio.functional.mask_along_axis with its two ``torch.rand(1)`` given."""
    width = u_width * param
    min_value = u_start * (spec.shape[axis] - width)
    start = math.trunc(min_value)  # Tensor.long()
    end = start + math.trunc(width)
    index = np.arange(spec.shape[axis])
    mask = (index >= start) & (index < end)
    mask = mask[None, :] if axis == 1 else mask[:, None]
    return np.where(mask, np.float32(value), spec)


def ref_ssl_tie(power, u, p=0.8, time_mask=180, freq_mask=35):
    """SSL-TIE's dataloader: ``random.random() < 0.8`` then TimeMasking, FrequencyMasking on
    the mel power (fill 0), then AmplitudeToDB (``10 log10(max(x, 1e-10))``)."""
    if u[0] < p:
        power = ref_mask_along_axis(power, u[1], u[2], time_mask, 1, 0.0)
        power = ref_mask_along_axis(power, u[3], u[4], freq_mask, 0, 0.0)
    return (10.0 * np.log10(np.maximum(power.astype(np.float64), 1e-10))).astype(np.float32)


def _spec(seed: int, n_freq: int = 257, n_frames: int = 300) -> np.ndarray:
    return np.random.default_rng(seed).normal(-20.0, 10.0, (n_freq, n_frames)).astype(np.float32)


def test_draw_replays_ssl_tie_on_the_power_spectrogram():
    wave = np.random.default_rng(0).normal(0.0, 0.1, 16000 * 3)
    power = mel_db_spectrogram(wave, 16000, db=False)  # (257, 201)
    db = mel_db_spectrogram(wave, 16000)
    n_freq, n_frames = power.shape
    for seed in range(40):
        u = np.random.default_rng(seed).random(5)  # the five uniforms, in the documented order
        draw = sa.draw_spec_augment(np.random.default_rng(seed), n_freq, n_frames)
        want = ref_ssl_tie(power, u)
        got = sa.apply_spec_augment(db, draw)
        mask = (want == sa.FILL_DB) & (db != sa.FILL_DB)
        np.testing.assert_array_equal(got[mask], want[mask])  # masked: -100 dB in both
        np.testing.assert_allclose(got[~mask], want[~mask], rtol=1e-5, atol=1e-4)  # dB rounding
        assert draw.applied == (u[0] < 0.8)


@pytest.mark.parametrize("seed", range(30))
def test_masks_are_torchaudios_and_touch_nothing_else(seed):
    spec = _spec(seed)
    u = np.random.default_rng(seed).random(5)
    draw = sa.draw_spec_augment(np.random.default_rng(seed), *spec.shape, p=1.0)
    assert draw.applied
    for fill in (sa.FILL_DB, float(spec.mean())):  # -100 dB (SSL-TIE) or the mean
        want = ref_mask_along_axis(spec, u[1], u[2], 180, 1, fill)
        want = ref_mask_along_axis(want, u[3], u[4], 35, 0, fill)
        got = sa.apply_spec_augment(spec, draw, fill=fill)
        assert got.dtype == np.float32 and got.shape == spec.shape
        np.testing.assert_array_equal(got, want)
        masked = np.zeros(spec.shape, bool)
        masked[:, draw.time_start : draw.time_start + draw.time_width] = True
        masked[draw.freq_start : draw.freq_start + draw.freq_width] = True
        assert np.all(got[masked] == np.float32(fill))
        np.testing.assert_array_equal(got[~masked], spec[~masked])


def test_widths_and_starts_stay_in_bounds():
    rng = np.random.default_rng(11)
    n_freq, n_frames = 257, 670  # 10 s at 16 kHz with SSL-TIE's hop
    draws = [sa.draw_spec_augment(rng, n_freq, n_frames) for _ in range(3000)]
    time_widths = np.array([d.time_width for d in draws])
    freq_widths = np.array([d.freq_width for d in draws])
    assert time_widths.min() == 0 and time_widths.max() == 179  # int(u * 180): 0 .. 179
    assert freq_widths.min() == 0 and freq_widths.max() == 34
    assert abs(time_widths.mean() - 89.5) < 4 and abs(freq_widths.mean() - 17.0) < 1
    for d in draws:
        assert 0 <= d.time_start and d.time_start + d.time_width <= n_frames
        assert 0 <= d.freq_start and d.freq_start + d.freq_width <= n_freq
    starts = np.array([d.time_start for d in draws])
    assert starts.min() < 20 and starts.max() > n_frames - 200  # the whole axis is reached


def test_application_frequency_is_p():
    rng = np.random.default_rng(3)
    n = 4000
    for p in (0.8, 0.3):
        rate = np.mean([sa.draw_spec_augment(rng, 64, 200, p=p).applied for _ in range(n)])
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert not any(sa.draw_spec_augment(rng, 64, 200, p=0.0).applied for _ in range(500))
    assert all(sa.draw_spec_augment(rng, 64, 200, p=1.0).applied for _ in range(500))


def test_not_applied_leaves_the_spectrogram_unchanged():
    spec = _spec(1, 40, 60)
    draw = sa.SpecAugmentDraw(False, 3, 10, 2, 5)
    out = sa.apply_spec_augment(spec, draw)
    np.testing.assert_array_equal(out, spec)
    assert out is not spec
    out[0, 0] = 1e3  # a copy: the input is never written
    assert spec[0, 0] != 1e3


def test_channel_axis_and_the_input_is_not_modified():
    spec = _spec(2, 40, 60)
    draw = sa.SpecAugmentDraw(True, 5, 7, 30, 20)  # the frequency mask runs past 40: clipped
    flat = sa.apply_spec_augment(spec, draw)
    with_channel = sa.apply_spec_augment(spec[..., None], draw)
    assert with_channel.shape == (40, 60, 1)
    np.testing.assert_array_equal(with_channel[..., 0], flat)
    assert np.all(flat[:, 5:12] == sa.FILL_DB) and np.all(flat[30:] == sa.FILL_DB)
    np.testing.assert_array_equal(flat[:30, :5], spec[:30, :5])
    np.testing.assert_array_equal(flat[:30, 12:], spec[:30, 12:])
    assert not np.any(spec == sa.FILL_DB)
    with pytest.raises(ValueError, match="spectrogram"):
        sa.apply_spec_augment(spec[..., None].repeat(2, -1), draw)


def test_draws_are_replayable_and_a_fixed_number():
    a = sa.draw_spec_augment(np.random.default_rng([4, 0, 7]), 257, 670)
    assert a == sa.draw_spec_augment(np.random.default_rng([4, 0, 7]), 257, 670)
    others = {sa.draw_spec_augment(np.random.default_rng([4, 0, k]), 257, 670) for k in range(8)}
    assert len(others) == 8
    after = []
    for p, shape in [(0.0, (257, 670)), (1.0, (20, 30))]:  # applied or not, any shape: 5 draws
        rng = np.random.default_rng(9)
        sa.draw_spec_augment(rng, *shape, p=p)
        after.append(rng.random())
    assert after[0] == after[1]
    assert sa.FILL_DB == -100.0


def test_short_axes_follow_torchaudio():
    rng = np.random.default_rng(5)
    for _ in range(500):  # 50 frames < 180: the float start may go negative, the mask is clipped
        u = rng.random(4)
        start, width = sa.mask_interval(u[0], u[1], 180, 50)
        ref = ref_mask_along_axis(np.zeros((1, 50), np.float32), u[0], u[1], 180, 1, 1.0)[0]
        want = np.zeros(50, bool)
        want[start : start + width] = True
        np.testing.assert_array_equal(ref == 1.0, want)
        assert 0 <= start <= 50 and 0 <= width and start + width <= 50
