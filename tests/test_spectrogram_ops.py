"""The on-device audio front end equals the numpy one (the loader's), on the current backend."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from avloc.media.audio import noise_waveform, spectrogram
from avloc.models.spectrogram import log_spectrogram


@pytest.mark.parametrize("samples", [48000, 8000, 512])
def test_log_spectrogram_matches_the_numpy_front_end(samples):
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16000
    tone = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(samples)
    waves = np.stack(
        [tone, noise_waveform(rng, samples), np.zeros(samples), 0.9 * np.sign(tone)]
    ).astype(np.float32)
    expected = spectrogram(waves)[..., None]
    got = ops.convert_to_numpy(log_spectrogram(waves))
    assert got.shape == expected.shape == (4, 257, (samples - 512) // 238 + 1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_log_spectrogram_refuses_too_short_clips():
    with pytest.raises(ValueError, match="at least 512 samples"):
        log_spectrogram(np.zeros((1, 100), np.float32))


def test_training_on_device_spectrograms_gives_the_loader_path_losses(tmp_path):
    """One fixed batch: the same losses, and after one step the same weights, either way."""
    import keras
    from harness import QUICKSTART, TINY_NET, synthetic_shards

    from avloc.config import load_recipe
    from avloc.data.loader import TrainBatches
    from avloc.data.shards import ShardSet
    from avloc.jobs.train import build_task

    shards = synthetic_shards(tmp_path / "data", train=8, test=2, seed=4)
    sets = [f'data.train="{shards / "train"}"', *TINY_NET, "data.train_resize=36",
            "train.batch_size=4", "train.learning_rate=0.001"]  # fmt: skip
    results = {}
    for on_device in (False, True):
        recipe = load_recipe(
            QUICKSTART, [*sets, f"data.spectrogram_on_device={str(on_device).lower()}"]
        )
        keras.utils.set_random_seed(0)
        task = build_task(recipe)
        loader = TrainBatches(
            ShardSet(shards / "train"), batch_size=4, image_size=32, train_resize=36,
            with_noise=task.needs_noise, waveforms=on_device,
        )  # fmt: skip
        batch = loader.make_batch(0, 0)
        assert batch["audio"].ndim == (2 if on_device else 4)
        outputs = task(batch, training=False)
        before = {k: float(ops.convert_to_numpy(v)) for k, v in task.loss_terms(outputs).items()}
        logs = task.train_on_batch(batch, return_dict=True)
        results[on_device] = (before, logs, [np.asarray(w) for w in task.net.get_weights()])
    (before_a, logs_a, weights_a), (before_b, logs_b, weights_b) = results[False], results[True]
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


def test_avloc_train_runs_with_spectrograms_on_device(tmp_path):
    from harness import QUICKSTART, TINY_NET, synthetic_shards

    from avloc.config import load_recipe
    from avloc.jobs.train import train
    from avloc.models.io import load_network

    shards = synthetic_shards(tmp_path / "data", train=8, test=2, seed=4)
    sets = [f'data.train="{shards / "train"}"', *TINY_NET, "data.train_resize=36",
            "data.workers=2", "train.batch_size=4", "train.epochs=2", "train.tensorboard=false",
            "data.spectrogram_on_device=true", "eval.calibration_samples=4"]  # fmt: skip
    result = train(load_recipe(QUICKSTART, sets), tmp_path / "run", verbose=0)
    assert np.isfinite(result.history["loss"]).all() and len(result.history["loss"]) == 2
    net = load_network(result.model_path)
    assert net.calibration["uth"] is not None  # calibration (numpy front end) ran after it
