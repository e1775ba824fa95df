"""Baselines' machinery: the ``lvs`` architecture (14x14 maps, no projection heads), visual
dropout (FNAC), coupled L2 weight decay against ``torch.optim.Adam``, and the generic
``start_epoch`` warm-up gate of loss terms (FNAC's three epochs of EZ-VSL alone)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from harness import tiny_task_recipe
from keras import ops

from avloc.config import TrainConfig, recipe_from_dict
from avloc.errors import RecipeError
from avloc.models import build_network
from avloc.models.avnet import l2_normalize
from avloc.models.io import load_network, save_network
from avloc.runtime.optimizers import L2Adam, build_optimizer
from avloc.task import EpochCounter
from avloc.training.build import build_task, silence_spectrogram


def model_recipe(**model):
    return recipe_from_dict({"model": model, "loss": {"ezvsl": {}}})


def lvs_model(width=2, **extra):
    return model_recipe(
        arch="lvs",
        embed_dim=8 * width,
        visual={"width": width, "last_stride": 1},
        audio={"width": width},
        **extra,
    )


def as_numpy(out: dict) -> dict:
    return {k: ops.convert_to_numpy(v) for k, v in out.items()}


def channels_last(net, x):
    return ops.transpose(x, (0, 2, 3, 1)) if net.data_format == "channels_first" else x


def channels_native(net, x):
    return ops.transpose(x, (0, 3, 1, 2)) if net.data_format == "channels_first" else x


# ------------------------------------------------------------------------------------------
# the lvs architecture


def test_lvs_gives_14x14_maps_at_224_and_ezvsl_7x7():
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.standard_normal((2, 224, 224, 3)).astype("float32"),
        "audio": rng.standard_normal((2, 257, 200, 1)).astype("float32"),
    }
    recipe = lvs_model()
    lvs = build_network(recipe.model, recipe.data)
    out = as_numpy(lvs(batch))
    assert out["v_map"].shape == (2, 14, 14, 16)
    assert out["a_emb"].shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(out["v_map"], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["a_emb"], axis=-1), 1.0, atol=1e-5)
    recipe = model_recipe(embed_dim=16, visual={"width": 2}, audio={"width": 2})
    ezvsl = build_network(recipe.model, recipe.data)
    assert as_numpy(ezvsl(batch))["v_map"].shape == (2, 7, 7, 16)


def test_lvs_has_no_projection_heads():
    """v_map = normalise(visual trunk), a_emb = normalise(max-pooled audio trunk)."""
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2, 64, 64, 3)).astype("float32")
    audio = rng.standard_normal((2, 65, 41, 1)).astype("float32")
    recipe = lvs_model()
    net = build_network(recipe.model, recipe.data)
    assert net.projection is False
    paths = [v.path for v in net.weights]
    assert not any("img_proj" in p or "aud_proj" in p for p in paths)
    out = as_numpy(net({"image": image, "audio": audio}))
    trunk = channels_last(net, net.visual_encoder(channels_native(net, image)))
    want_v = ops.convert_to_numpy(l2_normalize(trunk, axis=-1))
    audio_trunk = channels_last(net, net.audio_encoder(channels_native(net, audio)))
    want_a = ops.convert_to_numpy(l2_normalize(ops.max(audio_trunk, axis=(1, 2)), axis=-1))
    assert out["v_map"].shape == (2, 4, 4, 16)  # stride 16 at 64 px
    np.testing.assert_allclose(out["v_map"], want_v, atol=1e-6)
    np.testing.assert_allclose(out["a_emb"], want_a, atol=1e-6)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (dict(visual={"width": 2}), "model.visual.last_stride"),  # default stride 2
        (dict(embed_dim=512), "model.embed_dim"),
        (dict(audio={"width": 4}), "model.audio.width"),
        (dict(visual_dropout=1.0), "model.visual_dropout"),
    ],
)
def test_lvs_rejects_settings_it_cannot_honour(change, fragment):
    model = dict(
        arch="lvs", embed_dim=16, visual={"width": 2, "last_stride": 1}, audio={"width": 2}
    )
    model.update(change)
    recipe = model_recipe(**model)
    with pytest.raises(RecipeError, match=fragment):
        build_network(recipe.model, recipe.data)


def test_lvs_with_dropout_saves_and_loads(tmp_path):
    rng = np.random.default_rng(2)
    batch = {
        "image": rng.standard_normal((2, 48, 48, 3)).astype("float32"),
        "audio": rng.standard_normal((2, 65, 41, 1)).astype("float32"),
    }
    recipe = lvs_model(visual_dropout=0.9)
    net = build_network(recipe.model, recipe.data)
    before = as_numpy(net(batch))
    loaded = load_network(save_network(net, tmp_path / "lvs.keras"))
    assert loaded.projection is False and loaded.visual_dropout == 0.9
    assert loaded.visual_config["last_stride"] == 1
    after = as_numpy(loaded(batch))
    for key in ("v_map", "a_emb"):
        np.testing.assert_array_equal(after[key], before[key])


# ------------------------------------------------------------------------------------------
# visual dropout (FNAC)


def test_visual_dropout_acts_in_training_only_on_the_trunk_map():
    rng = np.random.default_rng(3)
    image = rng.standard_normal((2, 64, 64, 3)).astype("float32")
    recipe = lvs_model(visual_dropout=0.9)
    net = build_network(recipe.model, recipe.data)
    native = channels_native(net, image)
    # inference: no dropout at all
    infer = ops.convert_to_numpy(net.encode_image(image))
    trunk = channels_last(net, net.visual_encoder(native))
    np.testing.assert_allclose(infer, ops.convert_to_numpy(l2_normalize(trunk)), atol=1e-6)
    # training: each location is normalise(mask * trunk) with ~90 % of channels dropped
    train = ops.convert_to_numpy(net.encode_image(image, training=True))
    trunk = ops.convert_to_numpy(channels_last(net, net.visual_encoder(native, training=True)))
    kept = train != 0
    live = trunk > 0  # ReLU output: zero entries carry no information about the mask
    dropped = 1 - (kept & live).sum() / live.sum()
    assert 0.8 < dropped < 0.97, dropped
    assert not np.any(kept & ~live)
    for index in zip(*np.nonzero(kept.any(axis=-1)), strict=True):
        masked = np.where(kept[index], trunk[index], 0.0)
        np.testing.assert_allclose(train[index], masked / np.linalg.norm(masked), atol=1e-5)
    # a second training call draws a new mask
    again = ops.convert_to_numpy(net.encode_image(image, training=True))
    assert not np.array_equal(again != 0, kept)


def test_no_dropout_layer_by_default():
    recipe = model_recipe(embed_dim=8, visual={"width": 2}, audio={"width": 2})
    net = build_network(recipe.model, recipe.data)
    assert net.visual_dropout == 0.0 and net.visual_dropout_layer is None


# ------------------------------------------------------------------------------------------
# coupled L2 weight decay (torch.optim.Adam semantics)


def run_keras(optimizer, w0, grads):
    var = keras.Variable(w0)
    for g in grads:
        optimizer.apply([ops.convert_to_tensor(g)], [var])
    return ops.convert_to_numpy(var)


def run_torch(cls, w0, grads, **kwargs):
    p = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


def test_l2_mode_matches_torch_adam_and_decoupled_matches_adamw():
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((3, 4)).astype("float32") * 3
    grads = [rng.standard_normal((3, 4)).astype("float32") * 0.1 for _ in range(5)]
    lr, wd = 0.01, 0.5
    l2 = build_optimizer(TrainConfig(learning_rate=lr, weight_decay=wd, weight_decay_mode="l2"))
    assert isinstance(l2, L2Adam) and l2.weight_decay is None
    got_l2 = run_keras(l2, w0, grads)
    torch_adam = run_torch(torch.optim.Adam, w0, grads, lr=lr, weight_decay=wd, eps=1e-7)
    np.testing.assert_allclose(got_l2, torch_adam, rtol=1e-5, atol=1e-6)

    decoupled = build_optimizer(TrainConfig(learning_rate=lr, weight_decay=wd))
    got_decoupled = run_keras(decoupled, w0, grads)
    torch_adamw = run_torch(torch.optim.AdamW, w0, grads, lr=lr, weight_decay=wd, eps=1e-7)
    np.testing.assert_allclose(got_decoupled, torch_adamw, rtol=1e-5, atol=1e-6)
    # the two modes really differ, and both differ from no decay
    plain = run_torch(torch.optim.Adam, w0, grads, lr=lr, eps=1e-7)
    assert np.abs(got_l2 - got_decoupled).max() > 1e-3
    assert np.abs(got_l2 - plain).max() > 1e-3


def test_l2_mode_needs_adam():
    with pytest.raises(RecipeError, match="train.weight_decay_mode"):
        build_optimizer(TrainConfig(optimizer="adamw", weight_decay=1e-4, weight_decay_mode="l2"))


# ------------------------------------------------------------------------------------------
# start_epoch warm-up (FNAC)


def random_batch(recipe, n: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    size = recipe.data.image_size
    spec = silence_spectrogram(recipe).shape
    return {
        "image": rng.standard_normal((n, size, size, 3)).astype("float32"),
        "audio": rng.standard_normal((n, *spec, 1)).astype("float32"),
    }


class WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append(
            [np.array(ops.convert_to_numpy(v)) for v in self.model.trainable_variables]
        )


def fit_with_snapshots(loss: dict, epochs: int, x: dict | None = None):
    keras.utils.set_random_seed(0)
    recipe = tiny_task_recipe(loss)
    task = build_task(recipe)
    x = random_batch(recipe, n=4) if x is None else x  # one step per epoch
    snapshots = WeightsPerEpoch()
    history = task.fit(
        x,
        epochs=epochs,
        batch_size=4,
        shuffle=False,
        verbose=0,
        callbacks=[EpochCounter(), snapshots],
    ).history
    return task, history, snapshots.snapshots, x


FNAC_WARMUP = {
    "ezvsl": {},
    "fnac_fns1": {"start_epoch": 2},
    "fnac_fns2": {"start_epoch": 2},
    "fnac_tne": {"start_epoch": 2},
}


def test_fnac_warmup_switches_on_at_start_epoch():
    """Epochs 0-1 train exactly like EZ-VSL alone; from epoch 2 the FNAC terms count; the
    gate follows ``fit(initial_epoch=...)`` and needs the EpochCounter callback."""
    task, history, fnac, x = fit_with_snapshots(FNAC_WARMUP, epochs=3)
    _, base_history, base, _ = fit_with_snapshots({"ezvsl": {}}, epochs=3, x=x)
    assert float(ops.convert_to_numpy(task.epoch)) == 2.0
    for name in ("fnac_fns1", "fnac_fns2", "fnac_tne"):
        logged = history[f"loss_{name}"]
        assert logged[0] == 0.0 and logged[1] == 0.0, (name, logged)
        assert logged[2] > 0.0, (name, logged)
    for epoch in range(3):
        weighted = sum(task.terms[n].weight * history[f"loss_{n}"][epoch] for n in FNAC_WARMUP)
        assert history["loss"][epoch] == pytest.approx(weighted, rel=1e-4, abs=1e-6)
    # the warm-up epochs see only the EZ-VSL gradient: same weights as an EZ-VSL-only run
    np.testing.assert_allclose(history["loss_ezvsl"][:2], base_history["loss_ezvsl"][:2], rtol=1e-5)
    for epoch in (0, 1):
        for got, want in zip(fnac[epoch], base[epoch], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # from the switch-on epoch the FNAC gradients move the weights elsewhere
    moved = [np.abs(g - w).max() > 1e-5 for g, w in zip(fnac[2], base[2], strict=True)]
    assert sum(moved) >= len(moved) // 2, f"{sum(moved)}/{len(moved)}"

    # without the EpochCounter callback the epoch variable stays where it is
    task.epoch.assign(0.0)
    history = task.fit(x, epochs=1, batch_size=4, verbose=0).history
    assert history["loss_fnac_tne"] == [0.0]
    # a resumed fit (initial_epoch=2) is past the warm-up from its first step
    history = task.fit(
        x, initial_epoch=2, epochs=3, batch_size=4, verbose=0, callbacks=[EpochCounter()]
    ).history
    assert history["loss_fnac_tne"][0] > 0.0 and history["loss_fnac_fns1"][0] > 0.0


def test_new_terms_architecture_and_optimizer_train_in_a_compiled_step():
    """lvs (14x14-style maps, no projections) + visual dropout + LVS and FNAC terms + coupled
    L2 Adam, in the backend's compiled train step (tf.function under TensorFlow)."""
    keras.utils.set_random_seed(0)
    loss = {"lvs": {}, **{n: {"start_epoch": 0} for n in ("fnac_fns1", "fnac_fns2", "fnac_tne")}}
    recipe = recipe_from_dict(
        {
            "data": {"image_size": 32, "train_resize": 36, "clip_seconds": 0.5},
            "model": {
                "arch": "lvs",
                "embed_dim": 16,
                "visual_dropout": 0.5,
                "visual": {"width": 2, "blocks": [1, 1, 1, 1], "last_stride": 1},
                "audio": {"width": 2, "blocks": [1, 1, 1, 1]},
            },
            "loss": loss,
            "train": {"batch_size": 4, "weight_decay": 1e-2, "weight_decay_mode": "l2"},
        }
    )
    task = build_task(recipe)
    assert isinstance(task.optimizer, L2Adam) and not task.run_eagerly
    x = random_batch(recipe)
    before = [np.array(ops.convert_to_numpy(v)) for v in task.trainable_variables]
    history = task.fit(x, epochs=2, batch_size=4, verbose=0, callbacks=[EpochCounter()]).history
    for name in ("loss", *(f"loss_{n}" for n in loss)):
        assert all(np.isfinite(history[name])) and history[name][0] > 0, (name, history[name])
    after = [np.array(ops.convert_to_numpy(v)) for v in task.trainable_variables]
    moved = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert sum(moved) >= 0.9 * len(moved), f"{sum(moved)}/{len(moved)}"


def gradient(fn, x: np.ndarray) -> np.ndarray:
    """d fn(x) / dx for a scalar ``fn`` of a tensor, with the active backend."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = fn(t)
        return tape.gradient(out, t).numpy()
    t = torch.tensor(x, requires_grad=True)
    fn(t).backward()
    return t.grad.numpy()


def test_l2_normalize_gradient_is_finite_at_zero_like_torch():
    """A zero feature vector (all-zero ReLU location, or dropped out) must not give NaNs."""
    x = np.zeros((3, 4), np.float32)
    x[1] = [0.5, -1.0, 2.0, 0.0]
    x[2, 0] = 1e-14  # below the 1e-12 floor of the norm
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    grad = gradient(lambda t: ops.sum(ops.multiply(l2_normalize(t), w)), x)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (
        torch.nn.functional.normalize(tx, dim=-1) * torch.tensor(w, dtype=torch.float64)
    ).sum().backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-5)
