"""``data.preprocess_on_device``: the training step's preprocessing equals the loader's.

References: Pillow for the resize (its own ``Image.resize``), a numpy re-implementation of the
seeded noise written here from the documented recipe (uint32 arithmetic, float64 Box-Muller),
scipy's spectrogram through :func:`avloc.inputs.spectrogram.spectrogram`, and the loader's own
batches.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from avloc.inputs.images import (
    _resize,
    augment_images_ops,
    crop_train,
    preprocess_train,
    resize_weights,
    train_crop,
)
from avloc.inputs.noise import seeded_noise, seeded_noise_ops
from avloc.inputs.pcm import pcm_to_float_ops
from avloc.inputs.training import DevicePreprocessing, TrainInputs

# --------------------------------------------------------------------------------------------
# The image: Pillow's resize as two matrix products


@pytest.mark.parametrize(
    ("src", "dst"), [(256, 246), (256, 123), (40, 36), (128, 140), (64, 64), (31, 7)]
)
def test_resize_weights_are_pillows_bicubic_resize(src, dst):
    rng = np.random.default_rng(src + dst)
    img = rng.integers(0, 256, (src, src + 9, 3), dtype=np.uint8)
    new_w = dst + 3 if src != dst else src + 9  # the width changes too (or not at all)
    expected = _resize(img, new_w, dst)  # PIL.Image.resize(..., BICUBIC)
    rows, cols = resize_weights(src, dst), resize_weights(src + 9, new_w)
    levels = np.clip(np.floor(np.einsum("hwc,jw->hjc", img.astype(np.float64), cols) + 0.5), 0, 255)
    got = np.clip(np.floor(np.einsum("ih,hjc->ijc", rows, levels) + 0.5), 0, 255)
    np.testing.assert_array_equal(got, expected)


def test_resize_weights_rows_sum_to_one_and_identity_when_the_size_is_kept():
    for src, dst in [(256, 246), (40, 36), (36, 40)]:
        np.testing.assert_allclose(resize_weights(src, dst).sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(resize_weights(50, 50), np.eye(50, dtype=np.float32))


@pytest.mark.parametrize(
    ("shape", "size", "resize"), [((64, 64), 32, 36), ((40, 56), 24, 30), ((70, 50), 32, 40)]
)
def test_augment_images_matches_the_loaders_crop(shape, size, resize):
    rng = np.random.default_rng(0)
    # smooth scenes with edges, as frames are (noise would make every pass's rounding matter)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    images = []
    for k in range(8):
        base = 127 + 100 * np.sin(xx / (3 + k)) * np.cos(yy / (5 + k))
        rgb = np.stack([base, base[::-1], (xx * 4 + 30 * k) % 256], -1)
        rgb[rng.integers(0, shape[0]) :, rng.integers(0, shape[1]) :] = rng.integers(0, 256, 3)
        images.append(np.clip(rgb, 0, 255).astype(np.uint8))
    images = np.stack(images)
    draws_rng, check_rng = np.random.default_rng(3), np.random.default_rng(3)
    expected = np.stack([preprocess_train(img, draws_rng, size, resize) for img in images])
    draws = [train_crop(check_rng, *shape, size, resize) for _ in images]
    crops = np.asarray([d[2:] for d in draws], np.int32)
    assert 0 < crops[:, 2].sum() < len(images)  # both flipped and kept crops are checked
    got = ops.convert_to_numpy(augment_images_ops(images, crops, size, resize))
    assert got.shape == expected.shape == (8, size, size, 3) and got.dtype == np.float32
    levels = np.abs(got - expected) * np.float32(255 * 0.229)  # one level is >= 1 after this
    assert levels.max() < 1.5  # at most one level anywhere
    assert np.mean(levels > 0.5) < 1e-3  # and almost nowhere
    np.testing.assert_allclose(got[levels < 0.5], expected[levels < 0.5], atol=1e-5)


def test_crop_train_is_preprocess_train_given_the_draws():
    img = np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    draws = train_crop(np.random.default_rng(9), 50, 60, 32, 40)
    np.testing.assert_array_equal(
        crop_train(img, *draws, 32), preprocess_train(img, np.random.default_rng(9), 32, 40)
    )


# --------------------------------------------------------------------------------------------
# Audio and noise


def _lowbias32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.uint32).copy()
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def reference_noise(seeds, samples: int, color: str = "white") -> np.ndarray:
    """The documented generator in numpy: uint32 hashes, float64 Box-Muller, np.fft shaping."""
    keys = _lowbias32(np.asarray(seeds, np.uint32))[:, None]
    counters = _lowbias32(np.arange(2 * samples, dtype=np.uint32)).reshape(samples, 2)
    u0, u1 = (
        ((_lowbias32(keys ^ counters[None, :, k]) >> np.uint32(8)).astype(np.float64) + 0.5)
        / 2.0**24
        for k in (0, 1)
    )
    wave = np.sqrt(-2.0 * np.log(u0)) * np.cos(2.0 * np.pi * u1)
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    if exponent:
        freqs = np.arange(samples // 2 + 1, dtype=np.float64)
        freqs[0] = np.inf
        wave = np.fft.irfft(np.fft.rfft(wave) * freqs ** (-exponent / 2.0), n=samples)
        wave /= wave.std(axis=-1, keepdims=True)
    return np.clip(wave, -1.0, 1.0)


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_seeded_noise_is_the_documented_generator(color):
    seeds = np.array([0, 1, 7, 2**31 - 2], np.int32)
    got = ops.convert_to_numpy(seeded_noise_ops(seeds, 4000, color))
    assert got.shape == (4, 4000) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_noise(seeds, 4000, color), atol=2e-4)


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_seeded_noise_numpy_twin_equals_the_ops_generator(color):
    """The numpy twin (:func:`avloc.inputs.noise.seeded_noise`) and the keras.ops one make the
    same numbers, and both are the documented generator."""
    seeds = np.array([0, 3, 2**31 - 1, 123456], np.int32)
    twin = seeded_noise(seeds, 3000, color)
    assert twin.dtype == np.float32 and twin.shape == (4, 3000)
    np.testing.assert_allclose(twin, ops.convert_to_numpy(seeded_noise_ops(seeds, 3000, color)),
                               atol=2e-4)  # fmt: skip
    np.testing.assert_allclose(twin, reference_noise(seeds, 3000, color), atol=2e-4)


def test_seeded_noise_is_clipped_unit_normal_and_differs_by_seed():
    wave = ops.convert_to_numpy(seeded_noise_ops(np.arange(8, dtype=np.int32), 48000))
    # N(0, 1) clipped to [-1, 1]: std 0.7194, P(|x| >= 1) = 0.3173 (as the loader's noise)
    assert wave.std() == pytest.approx(0.7194, abs=0.003)
    assert np.mean(np.abs(wave) == 1.0) == pytest.approx(0.3173, abs=0.003)
    assert abs(wave.mean()) < 0.005
    correlation = np.corrcoef(wave)
    assert np.abs(correlation - np.eye(8)).max() < 0.03  # independent clips


def test_pcm_to_float_is_the_shards_decoding():
    from avloc.inputs.pcm import from_pcm16

    pcm = np.array([[-32768, -32767, -1, 0, 1, 12345, 32767]], np.int16)
    np.testing.assert_array_equal(ops.convert_to_numpy(pcm_to_float_ops(pcm)), from_pcm16(pcm))


# --------------------------------------------------------------------------------------------
# The loader's on-device batches and the training step


def _loader(shards, on_device: bool, **kw):
    from avloc.data.loader import TrainBatches
    from avloc.data.shards import ShardSet

    return TrainBatches(
        ShardSet(shards), batch_size=4, image_size=32, train_resize=36, with_noise=True,
        on_device=on_device, seed=5, **kw,
    )  # fmt: skip


def test_on_device_batches_hold_the_stored_rows_and_the_loaders_draws(tmp_path):
    from harness import synthetic_shards

    from avloc.data.shards import ShardSet

    shards = synthetic_shards(tmp_path / "data", train=8, test=2, seed=4) / "train"
    raw = _loader(shards, True).make_batch(1, 1)
    assert raw["image"].dtype == np.uint8 and raw["image"].shape == (4, 40, 40, 3)
    assert raw["audio"].dtype == np.int16 and raw["crop"].dtype == np.int32
    assert raw["noise_seed"].shape == (4,) and len(set(raw["noise_seed"].tolist())) == 4
    indices = _loader(shards, True).sample_indices(1, 1)
    stored = ShardSet(shards).read(indices, ["image", "audio"], raw_pcm=True)
    np.testing.assert_array_equal(raw["image"], stored["image"])
    np.testing.assert_array_equal(raw["audio"], stored["audio"])
    # the crops are the loader path's draws: its images are these crops of these frames
    usual = _loader(shards, False).make_batch(1, 1)
    for image, crop, expected in zip(raw["image"], raw["crop"], usual["image"], strict=True):
        top, left, flip = crop.tolist()  # the frames are square: resized to 36 x 36
        np.testing.assert_array_equal(crop_train(image, 36, 36, top, left, flip, 32), expected)
    # a data-parallel process's rows are those rows of the whole batch, seeds included
    part = _loader(shards, True, rows=(1, 3)).make_batch(1, 1)
    for key in raw:
        np.testing.assert_array_equal(part[key], raw[key][1:3], err_msg=key)


def test_training_on_device_gives_the_loader_paths_losses(tmp_path):
    """One fixed batch: the same losses, and after one step the same weights, either way.

    The loader's batch gets the noise the device makes (the reference generator above), as the
    two paths draw their noise from different generators by design, and the device's value at
    the few pixels where the two resizes round one level apart (checked here)."""
    import keras
    from harness import QUICKSTART, TINY_NET, synthetic_shards

    from avloc.config import load_recipe
    from avloc.inputs.spectrogram import spectrogram
    from avloc.training.build import build_task

    shards = synthetic_shards(tmp_path / "data", train=8, test=2, seed=4) / "train"
    sets = [f'data.train="{shards}"', *TINY_NET, "data.train_resize=36",
            "train.batch_size=4", "train.learning_rate=0.001"]  # fmt: skip
    results = {}
    for on_device in (False, True):
        recipe = load_recipe(
            QUICKSTART, [*sets, f"data.preprocess_on_device={str(on_device).lower()}"]
        )
        keras.utils.set_random_seed(0)
        task = build_task(recipe)
        assert task.needs_noise
        raw = _loader(shards, True).make_batch(0, 0)
        if on_device:
            batch = raw
        else:
            batch = _loader(shards, False).make_batch(0, 0)
            noise = reference_noise(raw["noise_seed"], raw["audio"].shape[1])
            batch["noise"] = spectrogram(noise.astype(np.float32))[..., None]
            device = ops.convert_to_numpy(DevicePreprocessing(TrainInputs(32, 36))(raw)["image"])
            apart = np.abs(device - batch["image"]) > 1e-5
            assert np.mean(apart) < 1e-3 and np.abs(device - batch["image"]).max() < 0.02
            batch["image"] = np.where(apart, device, batch["image"])
        outputs = task(batch, training=False)
        before = {k: float(ops.convert_to_numpy(v)) for k, v in task.loss_terms(outputs).items()}
        logs = task.train_on_batch(batch, return_dict=True)
        results[on_device] = (before, logs, [np.asarray(w) for w in task.net.get_weights()])
    (before_a, logs_a, weights_a), (before_b, logs_b, weights_b) = results[False], results[True]
    assert {"silence_map", "noise_map"} <= set(before_a)  # the noise clip is in two terms
    for key in before_a:
        assert before_b[key] == pytest.approx(before_a[key], rel=1e-4, abs=1e-5), key
    for key in logs_a:
        assert float(logs_b[key]) == pytest.approx(float(logs_a[key]), rel=1e-4, abs=1e-5), key
    # Adam's first step moves each weight by about lr * sign(gradient): a weight whose gradient
    # is round-off small may move +lr one way and -lr the other, so 2 lr is the float tolerance.
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=2.1e-3)
    changed = sum(
        int(np.sum(np.abs(b - a) > 1e-4)) for a, b in zip(weights_a, weights_b, strict=True)
    )
    assert changed <= 0.02 * sum(a.size for a in weights_a)  # and only a few do


def test_recipes_saved_before_the_rename_still_load():
    from harness import QUICKSTART

    from avloc.config import load_recipe

    recipe = load_recipe(QUICKSTART, ["data.spectrogram_on_device=true"])
    assert recipe.data.preprocess_on_device is True
    assert load_recipe(QUICKSTART).data.preprocess_on_device == "auto"


def test_auto_preprocesses_on_the_device_only_with_a_gpu():
    from harness import QUICKSTART

    from avloc.config import load_recipe
    from avloc.errors import RecipeError
    from avloc.runtime.backend import trains_on_gpu
    from avloc.training.build import device_preprocessing

    def chosen(value: str):
        recipe = load_recipe(QUICKSTART, [f"data.preprocess_on_device={value}"])
        return device_preprocessing(recipe)

    assert (chosen('"auto"') is not None) == trains_on_gpu()
    assert chosen("false") is None
    settings = chosen("true").settings
    assert (settings.size, settings.resize, settings.noise_color) == (112, 123, "white")
    with pytest.raises(RecipeError, match="expected bool or one of 'auto', got 'gpu'"):
        chosen('"gpu"')
