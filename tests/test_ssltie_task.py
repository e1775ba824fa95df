"""The task with SSL-TIE's transformed view: both views in the loss, the right T, any step.

SSL-TIE's objective is ``0.5 * (L_cl(x) + L_cl(T(x))) + lambda * MSE(f(T(x)), T(f(x)))`` with
``T(x)`` ``int(size * scale)`` px. The task transforms its own input images with the batch's draw
(:func:`avloc.inputs.geometry.apply_transform_ops`), encodes them a second time and evaluates
every other term on both views. Checked here: the task's values equal that formula assembled by
hand from the network's encoders and the terms, at both scales; a compiled step (TensorFlow's
graph, where the scale picks a branch) logs the same values as the eager forward pass; and the
gradient reaches the network through both views.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from avloc.config import recipe_from_dict
from avloc.inputs.geometry import (
    EquivarianceDraw,
    apply_transform_ops,
    draw_arrays,
    scale_arrays,
)
from avloc.losses.equivariance import equivariance_mse
from avloc.training.build import build_task

SIZE = 32


def tiny_ssltie(**loss):
    """SSL-TIE's objective on width-2 ResNets (4 x 4 maps at 32 px), mel audio."""
    return recipe_from_dict(
        {
            "name": "tiny-ssltie",
            "data": {
                "image_size": SIZE,
                "train_resize": 36,
                "clip_seconds": 0.5,
                "audio_frontend": "mel_db",
                "preprocess_on_device": False,
            },
            "model": {
                "arch": "lvs",
                "embed_dim": 16,
                "visual": {
                    "width": 2,
                    "blocks": [1, 1, 1, 1],
                    "stem_pool": False,
                    "last_stride": 1,
                },
                "audio": {"width": 2, "blocks": [1, 1, 1, 1]},
            },  # fmt: skip
            "loss": loss or {"lvs": {}, "equivariance": {}},
            "train": {"batch_size": 4, "learning_rate": 1e-3, "tensorboard": False},
        }
    )


def batch_at(scale: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    draw = EquivarianceDraw(rng.integers(-30, 31, size=4), scale, bool(seed % 2))
    return {
        "image": rng.standard_normal((4, SIZE, SIZE, 3)).astype("float32"),
        "audio": rng.standard_normal((4, 257, 34, 1)).astype("float32") * 10,
        **draw_arrays(draw, SIZE),
        **scale_arrays(draw, SIZE),
    }


def values(terms: dict) -> dict:
    return {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_the_loss_is_ssl_ties_objective_on_both_views(scale):
    keras.utils.set_random_seed(0)
    task = build_task(tiny_ssltie())
    batch = batch_at(scale, seed=3)
    got = values(task.loss_terms(task(batch, training=False)))

    net, lvs = task.net, task.terms["lvs"]
    v = net.encode_image(batch["image"], training=False)
    a = net.encode_audio(batch["audio"], training=False)
    side = int(SIZE * scale)
    moved = apply_transform_ops(
        batch["image"], batch["equivariance_matrices"], batch["equivariance_flip"],
        (side, side), input_size=SIZE,
    )  # fmt: skip
    v_t = net.encode_image(moved, training=False)
    assert v_t.shape[1] == int(v.shape[1] * scale)  # the smaller image's smaller map
    want_lvs = 0.5 * (lvs({"v_map": v, "a_emb": a}) + lvs({"v_map": v_t, "a_emb": a}))
    want_eq = equivariance_mse(
        v, a, v_t, batch["equivariance_matrices"], batch["equivariance_flip"], SIZE
    )
    assert got["lvs"] == pytest.approx(float(ops.convert_to_numpy(want_lvs)), rel=1e-5)
    assert got["equivariance"] == pytest.approx(float(ops.convert_to_numpy(want_eq)), rel=1e-5)
    # one view alone is another number: the transformed view is in the loss
    alone = float(ops.convert_to_numpy(lvs({"v_map": v, "a_emb": a})))
    assert abs(alone - got["lvs"]) > 1e-6


@pytest.mark.jax  # JAX compiles one step per view size (the batch's equivariance_view shape)
def test_a_compiled_step_logs_the_eager_values_at_both_scales():
    keras.utils.set_random_seed(1)
    task = build_task(tiny_ssltie(lvs={}, equivariance={"weight": 2.0}))
    for scale, seed in [(0.5, 1), (1.0, 2), (0.5, 3)]:
        batch = batch_at(scale, seed)
        eager = values(task.loss_terms(task.compute_outputs(batch, training=True)))
        logs = task.train_on_batch(batch, return_dict=True)
        task.reset_metrics()
        for name, value in eager.items():
            assert float(logs[f"loss_{name}"]) == pytest.approx(value, rel=1e-4, abs=1e-6)
        total = eager["lvs"] + 2.0 * eager["equivariance"]
        assert float(logs["loss"]) == pytest.approx(total, rel=1e-4)


def test_the_transformed_view_trains_the_visual_encoder():
    """With the equivariance term alone, the gradient reaches the visual trunk through A_T."""
    keras.utils.set_random_seed(2)
    task = build_task(tiny_ssltie(equivariance={}))
    task.run_eagerly = True
    before = [np.array(w) for w in task.net.visual_encoder.get_weights()]
    task.train_on_batch(batch_at(0.5, seed=5))
    after = task.net.visual_encoder.get_weights()
    moved = [not np.array_equal(a, b) for a, b in zip(before, after, strict=True)]
    assert sum(moved) > len(moved) // 2
