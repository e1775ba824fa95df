"""SSL-TIE's training inputs in the loader: mel front end, moco_v2, SpecAugment and T's draw.

The loader's batches with every SSL-TIE input on (:class:`avloc.inputs.training.TrainInputs`)
keep the loader's contract: a batch is a function of ``(seed, epoch, batch)``, a part of a batch
is those rows of the whole one (with or without ``on_device``), and the recipe without them draws
exactly what it always drew (the crops, then the noise, computed here the way they were before
the settings existed). The ops twins (mel, SpecAugment's masks) match their numpy sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from keras import ops

from avloc.data.loader import TrainBatches
from avloc.data.shards import ShardSet
from avloc.inputs.geometry import FLIP_KEY, MATRICES_KEY, SCALE_KEY, VIEW_KEY
from avloc.inputs.images import crop_train, train_crop
from avloc.inputs.mel import mel_db_spectrogram, mel_db_spectrogram_ops
from avloc.inputs.noise import noise_waveform
from avloc.inputs.specaugment import SpecAugmentDraw, apply_spec_augment
from avloc.inputs.spectrogram import spectrogram
from avloc.inputs.training import (
    SPEC_MASK_KEY,
    TrainInputs,
    apply_spec_masks,
    apply_spec_masks_ops,
)

SSLTIE = dict(
    size=32,
    resize=36,
    audio_frontend="mel_db",
    image_augment="moco_v2",
    spec_augment=0.8,
    spec_time_mask=6,
    spec_freq_mask=40,
    equivariance=True,
)


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=16, test=0, seed=3, clip_seconds=1.0) / "train"


def loader(shards, inputs: TrainInputs | None = None, **kw) -> TrainBatches:
    return TrainBatches(ShardSet(shards), batch_size=8, seed=4, inputs=inputs, **kw)


def test_mel_ops_twin_matches_numpy():
    rng = np.random.default_rng(0)
    waves = (0.3 * rng.standard_normal((3, 8000))).astype(np.float32)
    waves[1] = 0.0  # silence: the -100 dB floor
    want = mel_db_spectrogram(waves, 16000)
    got = ops.convert_to_numpy(mel_db_spectrogram_ops(waves, 16000))
    assert got.shape == (*want.shape, 1)
    np.testing.assert_allclose(got[..., 0], want, rtol=0, atol=2e-3)  # float32 vs float64, dB
    np.testing.assert_allclose(got[1], -100.0, rtol=1e-6)


def test_spec_masks_are_specaugments_and_the_ops_twin_agrees():
    rng = np.random.default_rng(1)
    specs = rng.standard_normal((3, 20, 30, 1)).astype(np.float32)
    masks = np.array([[3, 5, 2, 4], [0, 0, 0, 0], [25, 5, 19, 1]], np.int32)
    got = apply_spec_masks(specs, masks, -100.0)
    for row, (t0, tw, f0, fw) in enumerate(masks):
        draw = SpecAugmentDraw(bool(tw or fw), int(t0), int(tw), int(f0), int(fw))
        want = apply_spec_augment(specs[row], draw, fill=-100.0)
        np.testing.assert_array_equal(got[row], want)
    np.testing.assert_array_equal(got[1], specs[1])  # not drawn: untouched
    twin = ops.convert_to_numpy(apply_spec_masks_ops(specs, masks, -100.0))
    np.testing.assert_array_equal(twin, got)


def test_the_default_recipe_draws_what_it_always_drew(shards):
    """Crops (top, left, flip per row), then one noise clip per row, nothing else."""
    batches = loader(shards, image_size=32, train_resize=36, with_noise=True)
    got = batches.make_batch(2, 1)
    assert set(got) == {"image", "audio", "noise"}
    rng = np.random.default_rng([4, 2, 1])
    rows = ShardSet(shards).read(batches.sample_indices(2, 1), ["image", "audio"])
    crops = [train_crop(rng, 40, 40, 32, 36) for _ in range(8)]
    noise = np.stack([noise_waveform(rng, 16000) for _ in range(8)])
    images = np.stack([crop_train(f, *c, 32) for f, c in zip(rows["image"], crops, strict=True)])
    np.testing.assert_array_equal(got["image"], images)
    np.testing.assert_array_equal(got["audio"], spectrogram(rows["audio"])[..., None])
    np.testing.assert_array_equal(got["noise"], spectrogram(noise)[..., None])


@pytest.mark.parametrize("on_device", [False, True])
def test_ssltie_batches_replay_and_split_into_rows(shards, on_device):
    inputs = TrainInputs(**{**SSLTIE, "image_augment": "crop_flip" if on_device else "moco_v2"})
    whole = loader(shards, inputs, with_noise=True, on_device=on_device)
    again = loader(shards, inputs, with_noise=True, on_device=on_device).make_batch(1, 1)
    batch = whole.make_batch(1, 1)
    assert set(batch) == set(again)
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key])
    for rows in [(0, 3), (3, 8)]:
        part = loader(shards, inputs, with_noise=True, on_device=on_device, rows=rows)
        got = part.make_batch(1, 1)
        assert set(got) == set(batch)
        for key in batch:
            np.testing.assert_array_equal(got[key], batch[key][rows[0] : rows[1]], err_msg=key)
    other = whole.make_batch(1, 0)
    assert not np.array_equal(other[MATRICES_KEY], batch[MATRICES_KEY])


def test_ssltie_batches_carry_a_mel_spectrogram_and_a_draw_of_t(shards):
    batches = loader(shards, TrainInputs(**SSLTIE), with_noise=True)
    scales, flips, masked = set(), set(), []
    for index in range(2):
        for epoch in range(6):
            batch = batches.make_batch(epoch, index)
            assert batch["image"].shape == (8, 32, 32, 3)
            assert batch["audio"].shape == batch["noise"].shape == (8, 257, 67, 1)  # 1 s, hop 239
            scale, flip, m = batch[SCALE_KEY], batch[FLIP_KEY], batch[MATRICES_KEY]
            assert len(set(scale.tolist())) == 1 and len(set(flip.tolist())) == 1  # per batch
            scales.add(float(scale[0]))
            flips.add(float(flip[0]))
            # the view's side as a host value: the shape of a zero array
            assert batch[VIEW_KEY].shape == (8, int(32 * scale[0])) and not batch[VIEW_KEY].any()
            # the forward matrices: scale * rotation by an integer angle within +-30 degrees
            np.testing.assert_allclose(np.hypot(m[:, 0, 0], m[:, 0, 1]), scale, rtol=1e-6)
            angles = np.degrees(np.arctan2(m[:, 0, 1], m[:, 0, 0]))
            np.testing.assert_allclose(angles, np.round(angles), atol=1e-4)
            assert np.abs(angles).max() <= 30 + 1e-4
            # SpecAugment on the clip's own spectrogram only; its masks at -100 dB
            floor = np.all(batch["audio"][..., 0] == -100.0, axis=1)  # (8, frames) masked frames
            masked.extend(floor.any(axis=1).tolist())
            assert not np.all(batch["noise"][..., 0] == -100.0, axis=1).any()
    assert scales == {0.5, 1.0} and flips == {0.0, 1.0}
    fixed = loader(shards, TrainInputs(**SSLTIE, view_shape=False), with_noise=True)
    assert VIEW_KEY not in fixed.make_batch(0, 0)  # TensorFlow's batches keep one shape
    # widths 0-5 of 67 frames: about 0.8 * 5 / 6 of the clips show a masked frame
    assert 0.45 < np.mean(masked) < 0.95


def test_on_device_batches_carry_the_masks_and_the_same_draw(shards):
    inputs = TrainInputs(**{**SSLTIE, "image_augment": "crop_flip"})
    raw = loader(shards, inputs, on_device=True).make_batch(0, 1)
    numpy = loader(shards, inputs).make_batch(0, 1)
    assert raw[SPEC_MASK_KEY].shape == (8, 4) and raw[SPEC_MASK_KEY].dtype == np.int32
    for key in (MATRICES_KEY, FLIP_KEY, SCALE_KEY, VIEW_KEY):
        np.testing.assert_array_equal(raw[key], numpy[key])
    from avloc.inputs.training import DevicePreprocessing

    device = DevicePreprocessing(inputs)(raw)
    np.testing.assert_allclose(
        ops.convert_to_numpy(device["audio"]), numpy["audio"], rtol=0, atol=5e-3
    )  # int16 PCM vs the stored floats, float32 mel


def test_clips_are_repeated_or_cut_to_the_recipes_length(shards):
    from avloc.inputs.pcm import fit_length

    waves = np.array([[1, 2, 3], [4, 5, 6]], np.int16)
    np.testing.assert_array_equal(
        fit_length(waves, 7), [[1, 2, 3, 1, 2, 3, 1], [4, 5, 6, 4, 5, 6, 4]]
    )
    np.testing.assert_array_equal(fit_length(waves, 2), [[1, 2], [4, 5]])
    assert fit_length(waves, 3) is waves
    # 1 s stored clips, a 2.5 s recipe: the spectrogram of the clip repeated to 40000 samples
    inputs = TrainInputs(**{**SSLTIE, "spec_augment": 0.0, "clip_seconds": 2.5})
    batches = loader(shards, inputs, with_noise=True)
    batch = batches.make_batch(0, 0)
    assert batch["audio"].shape == batch["noise"].shape == (8, 257, 168, 1)  # 40000 / 239 + 1
    rows = ShardSet(shards).read(batches.sample_indices(0, 0), ["audio"])
    want = mel_db_spectrogram(np.tile(rows["audio"], (1, 3))[:, :40000], 16000)
    np.testing.assert_array_equal(batch["audio"][..., 0], want)
