"""The training task: one ``fit`` step per loss configuration, the weighted total, and the
extra-negative invariant, with tiny networks built from recipes by ``build_task``."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from harness import tiny_task_recipe
from keras import ops

from avloc.losses.contrastive import MILContrastive
from avloc.task import LocalizationTask
from avloc.training.build import build_task, silence_spectrogram

SSL_SAN = {
    "ezvsl": {"silence_negative": True, "noise_negative": True},
    "silence_map": {"weight": 0.5},
    "noise_map": {"weight": 2.0},
}

LOSS_CONFIGS = {
    "ezvsl": {"ezvsl": {}},
    "ezvsl+S": {"ezvsl": {"silence_negative": True}},
    "ezvsl+N": {"ezvsl": {"noise_negative": True}},
    "L_S+ezvsl": {"silence_map": {}, "ezvsl": {}},
    "L_N+ezvsl": {"noise_map": {}, "ezvsl": {}},
    "marginNCE": {"ezvsl": {"margin": -0.2}},
    "ssl-san": SSL_SAN,
    "lvs+S+N": {"lvs": {"silence_negative": True, "noise_negative": True}},
}


def random_batch(recipe, task, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    size = recipe.data.image_size
    spec = silence_spectrogram(recipe).shape
    x = {
        "image": rng.standard_normal((n, size, size, 3)).astype("float32"),
        "audio": rng.standard_normal((n, *spec, 1)).astype("float32"),
    }
    if task.needs_noise:
        x["noise"] = rng.standard_normal((n, *spec, 1)).astype("float32")
    return x


def numpy_weights(variables) -> list[np.ndarray]:
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize(
    "rate, seconds, frames",
    [(16000, 0.5, 32), (16000, 3.0, 200), (8000, 1.0, 32), (22050, 1.0, 91)],
)
def test_silence_spectrogram_is_the_floor_over_the_recipes_clip(rate, seconds, frames):
    """The SSL-SaN paper's silence input: ``rate * seconds`` zeros through the log spectrogram of
    real audio, so every bin sits at its floor ``log(0 + 1e-7) / 12`` and there are
    ``(samples - 512) // 238 + 1`` frames (hand-computed above: 7488 // 238 + 1 = 32, ...)."""
    recipe = tiny_task_recipe({"ezvsl": {}})
    data = dataclasses.replace(recipe.data, sample_rate=rate, clip_seconds=seconds)
    got = silence_spectrogram(dataclasses.replace(recipe, data=data))
    assert got.shape == (257, frames) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.log(1e-7) / 12, rtol=0, atol=1e-6)


@pytest.mark.parametrize("loss", list(LOSS_CONFIGS.values()), ids=list(LOSS_CONFIGS))
def test_one_fit_epoch_per_loss_configuration(loss):
    keras.utils.set_random_seed(0)
    recipe = tiny_task_recipe(loss)
    task = build_task(recipe)
    assert set(task.terms) == set(loss)
    assert task.needs_noise == any(
        t == "noise_map" or kw.get("noise_negative") for t, kw in loss.items()
    )
    x = random_batch(recipe, task, 8)
    before = numpy_weights(task.trainable_variables)
    stats_before = numpy_weights(task.non_trainable_variables)
    history = task.fit(x, epochs=1, batch_size=4, verbose=0).history

    expected = {"loss"} | {f"loss_{name}" for name in loss}
    assert expected <= set(history), history.keys()
    for key in expected:
        assert len(history[key]) == 1
        assert np.isfinite(history[key][0]), (key, history[key])
    # the logged total is the weighted sum of the logged terms (both are batch means)
    weighted = sum(task.terms[name].weight * history[f"loss_{name}"][0] for name in loss)
    assert history["loss"][0] == pytest.approx(weighted, rel=1e-4, abs=1e-6)

    after = numpy_weights(task.trainable_variables)
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert sum(changed) >= 0.9 * len(changed), f"{sum(changed)}/{len(changed)} changed"
    names = [v.path for v, c in zip(task.trainable_variables, changed, strict=True) if c]
    assert any("img_proj" in n for n in names) and any("aud_proj" in n for n in names)
    assert any("visual_encoder" in n or "conv1" in n for n in names)
    # batch-norm moving statistics moved too
    stats_after = numpy_weights(task.non_trainable_variables)
    assert any(not np.array_equal(b, a) for b, a in zip(stats_before, stats_after, strict=True))


@pytest.fixture(scope="module")
def ssl_san_task():
    keras.utils.set_random_seed(1)
    recipe = tiny_task_recipe(SSL_SAN)
    task = build_task(recipe)
    x = random_batch(recipe, task, 6, seed=1)
    return recipe, task, x


def test_total_loss_is_weighted_sum_of_terms(ssl_san_task):
    _, task, x = ssl_san_task
    y_pred = task(x)
    total = float(ops.convert_to_numpy(task.compute_loss(x=x, y_pred=y_pred)))
    terms = {k: float(ops.convert_to_numpy(v)) for k, v in task.loss_terms(y_pred).items()}
    assert set(terms) == set(SSL_SAN)
    weights = {name: term.weight for name, term in task.terms.items()}
    assert weights == {"ezvsl": 1.0, "silence_map": 0.5, "noise_map": 2.0}
    assert all(np.isfinite(v) and v >= 0 for v in terms.values())
    assert terms["ezvsl"] > 0 and terms["noise_map"] > 0
    # (silence_map may be exactly 0: a width-2 audio trunk can map the constant silence
    # spectrogram to an all-zero feature vector, whose normalised embedding is then 0)
    assert total == pytest.approx(sum(weights[k] * terms[k] for k in terms), rel=1e-5)


def test_task_outputs_match_separate_encoding(ssl_san_task):
    """In inference, encoding [audio; noise; silence] in one batch equals encoding each alone."""
    recipe, task, x = ssl_san_task
    out = {k: ops.convert_to_numpy(v) for k, v in task(x).items()}
    b = x["image"].shape[0]
    assert out["v_map"].shape == (b, 2, 2, 8)
    assert out["a_emb"].shape == (b, 8)
    assert out["a_noise"].shape == (b, 8)
    assert out["a_silence"].shape == (1, 8)
    net = task.net
    silence = silence_spectrogram(recipe)[None, ..., None].astype("float32")
    np.testing.assert_allclose(
        out["v_map"], ops.convert_to_numpy(net.encode_image(x["image"])), atol=1e-5
    )
    np.testing.assert_allclose(
        out["a_emb"], ops.convert_to_numpy(net.encode_audio(x["audio"])), atol=1e-5
    )
    np.testing.assert_allclose(
        out["a_noise"], ops.convert_to_numpy(net.encode_audio(x["noise"])), atol=1e-5
    )
    np.testing.assert_allclose(
        out["a_silence"], ops.convert_to_numpy(net.encode_audio(silence)), atol=1e-5
    )


def test_extra_negatives_increase_ezvsl_loss(ssl_san_task):
    """More image->audio candidates -> larger CE on the same outputs (audio->image unchanged)."""
    _, task, x = ssl_san_task
    y_pred = task(x)

    def loss(**kw):
        return float(ops.convert_to_numpy(MILContrastive(**kw)(y_pred)))

    plain = loss()
    silence = loss(silence_negative=True)
    noise = loss(noise_negative=True)
    both = loss(silence_negative=True, noise_negative=True)
    assert plain < silence < both
    assert plain < noise < both
    # the task's own ezvsl term is the one with both negatives
    term = float(ops.convert_to_numpy(task.loss_terms(y_pred)["ezvsl"]))
    assert term == pytest.approx(both, rel=1e-6)


def test_task_needs_silence_spectrogram():
    recipe = tiny_task_recipe({"silence_map": {}})
    from avloc.losses import build_terms
    from avloc.models import build_network

    with pytest.raises(ValueError, match="silence"):
        LocalizationTask(build_network(recipe.model), build_terms(recipe.loss), None)


def test_start_epoch_gates_a_term_by_the_epoch_variable():
    """compute_loss multiplies a term by 0 before its start_epoch (value and logged metric)."""
    keras.utils.set_random_seed(2)
    recipe = tiny_task_recipe({"ezvsl": {}, "noise_map": {"weight": 2.0, "start_epoch": 2}})
    task = build_task(recipe)
    x = random_batch(recipe, task, 4, seed=2)
    y_pred = task(x)
    raw = {k: float(ops.convert_to_numpy(v)) for k, v in task.loss_terms(y_pred).items()}
    assert raw["noise_map"] > 0
    assert [v.path for v in task.non_trainable_variables if v.path == "epoch"] == ["epoch"]
    for epoch, on in ((0, False), (1, False), (2, True), (7, True)):
        task.epoch.assign(float(epoch))
        for tracker in task.term_trackers:
            tracker.reset_state()
        total = float(ops.convert_to_numpy(task.compute_loss(x=x, y_pred=y_pred)))
        want = raw["ezvsl"] + (2.0 * raw["noise_map"] if on else 0.0)
        assert total == pytest.approx(want, rel=1e-6), epoch
        logged = {t.name: float(ops.convert_to_numpy(t.result())) for t in task.term_trackers}
        assert logged["loss_noise_map"] == pytest.approx(raw["noise_map"] if on else 0.0)
        assert logged["loss_ezvsl"] == pytest.approx(raw["ezvsl"], rel=1e-6)


def test_mixed_bfloat16_computes_in_bf16_and_keeps_weights_losses_outputs_float32():
    """``train.precision = "mixed_bfloat16"``: bf16 layers, float32 weights, outputs and loss,
    a loss close to the float32 task's with the same weights, and the global policy restored."""
    keras.utils.set_random_seed(2)
    policy_before = keras.config.dtype_policy().name
    mixed = build_task(tiny_task_recipe(SSL_SAN, precision="mixed_bfloat16"))
    assert keras.config.dtype_policy().name == policy_before
    full = build_task(tiny_task_recipe(SSL_SAN))
    convs = [
        layer for layer in mixed.net.visual_encoder.layers if isinstance(layer, keras.layers.Conv2D)
    ]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(v.dtype == "float32" for v in mixed.variables)
    for ours, theirs in zip(full.variables, mixed.variables, strict=True):
        ours.assign(theirs)

    x = random_batch(tiny_task_recipe(SSL_SAN), mixed, 8, seed=2)
    y_mixed, y_full = mixed(x), full(x)
    for key, value in y_mixed.items():
        assert ops.convert_to_numpy(value).dtype == np.float32, key
        np.testing.assert_allclose(
            ops.convert_to_numpy(value), ops.convert_to_numpy(y_full[key]), atol=0.1
        )
    loss_mixed = float(ops.convert_to_numpy(mixed.compute_loss(x=x, y_pred=y_mixed)))
    loss_full = float(ops.convert_to_numpy(full.compute_loss(x=x, y_pred=y_full)))
    assert loss_mixed == pytest.approx(loss_full, rel=0.05)

    history = mixed.fit(x, epochs=2, batch_size=4, verbose=0).history
    assert all(np.isfinite(v).all() for v in history.values())
    assert all(v.dtype == "float32" for v in mixed.variables)


def test_precision_must_be_a_known_policy():
    from avloc.errors import RecipeError

    with pytest.raises(RecipeError, match="train.precision"):
        tiny_task_recipe({"ezvsl": {}}, precision="float16")
