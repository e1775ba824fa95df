"""``build_task(recipe)``: the :class:`~avloc.task.LocalizationTask` a recipe trains.

The network (``recipe.model``, layers made under ``train.precision``'s dtype policy), the loss
terms (``recipe.loss``), the silence spectrogram ``a_S`` (F x T float32, the same front end as
real audio), the step's preprocessing when ``data.preprocess_on_device`` resolves to on, and the
optimizer (``train``), compiled; every variable, the optimizer's too, is created by one call on
a batch of two zero inputs, so that a backup's weights can be loaded into it.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from avloc.config import Recipe
from avloc.errors import RecipeError
from avloc.inputs.frontends import training_spectrograms
from avloc.inputs.geometry import EquivarianceDraw, draw_arrays, scale_arrays
from avloc.inputs.noise import silence_waveform
from avloc.inputs.training import DevicePreprocessing, TrainInputs
from avloc.losses import build_terms
from avloc.models import build_network
from avloc.runtime import step_graph
from avloc.runtime.backend import batch_shapes_may_vary, jit_compile, preprocess_on_device
from avloc.runtime.optimizers import build_optimizer
from avloc.runtime.placement import Placement
from avloc.task import LocalizationTask


def silence_spectrogram(recipe: Recipe) -> np.ndarray:
    """The spectrogram ``(F, T)`` of SSL-SaN's silence clip ``a_S`` (the recipe's front end, as
    real audio)."""
    data = recipe.data
    samples = int(round(data.sample_rate * data.clip_seconds))
    wave = silence_waveform(samples)[None]
    return training_spectrograms(wave, data.audio_frontend, data.sample_rate)[0, ..., 0]


def train_inputs(recipe: Recipe) -> TrainInputs:
    """The recipe's training preprocessing (:class:`avloc.inputs.training.TrainInputs`); the
    batches carry SSL-TIE's transformation draw when a loss term needs it."""
    needs = set().union(*(term.needs for term in build_terms(recipe.loss).values()))
    return TrainInputs.from_data(
        recipe.data, equivariance="equivariance" in needs, view_shape=batch_shapes_may_vary()
    )


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` inside the block, restored after it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def device_preprocessing(recipe: Recipe) -> DevicePreprocessing | None:
    """The training step's preprocessing when ``data.preprocess_on_device`` (resolved for this
    process: :func:`avloc.runtime.backend.preprocess_on_device`), else None. ``moco_v2`` runs in
    the loader only: ``"auto"`` resolves to off with it, ``true`` is refused."""
    data = recipe.data
    if data.image_augment != "crop_flip":
        if data.preprocess_on_device is True:
            raise RecipeError(
                f"data.preprocess_on_device: data.image_augment = {data.image_augment!r} runs in "
                "the loader only; set data.preprocess_on_device = false"
            )
        return None
    if not preprocess_on_device(data.preprocess_on_device):
        return None
    return DevicePreprocessing(train_inputs(recipe))


def build_task(
    recipe: Recipe, placement: Placement | None = None, total_steps: int | None = None
) -> LocalizationTask:
    """Network + loss terms + optimizer, compiled, every weight (optimizer too) created.

    With a ``placement`` the loss terms gather their negatives as it says; build inside
    ``placement.scope()``. ``total_steps`` (optimizer steps of the whole run) sets the length
    of a ``train.lr_schedule`` other than constant.
    """
    with dtype_policy(recipe.train.precision):  # layers take the policy when they are made
        net = build_network(recipe.model, recipe.data)
        terms = build_terms(recipe.loss)
        for term in terms.values():  # the draw's matrices are for the recipe's image size
            if "equivariance" in term.needs:
                term.input_size = recipe.data.image_size
        silence = silence_spectrogram(recipe)
        task = LocalizationTask(
            net,
            terms,
            silence,
            placement=placement,
            preprocess=device_preprocessing(recipe),
            log_every=recipe.train.log_every_steps,
            name="task",
        )
    t = recipe.train
    optimizer = build_optimizer(t, total_steps)  # decay mode: train.weight_decay_mode
    task.compile(optimizer=optimizer, jit_compile=jit_compile(t.jit_compile))
    size = recipe.data.image_size
    if task.preprocess is not None:  # the stored form the loader hands over
        samples = int(round(recipe.data.sample_rate * recipe.data.clip_seconds))
        batch = task.preprocess.example(2, samples, task.needs_noise)
    else:
        batch = {
            "image": np.zeros((2, size, size, 3), "float32"),
            "audio": np.zeros((2, *silence.shape, 1), "float32"),
        }
        if task.needs_noise:
            batch["noise"] = batch["audio"]
    if task.needs_equivariance:  # the identity draw at both scales: every branch is built
        for scale in (0.5, 1.0):
            draw = EquivarianceDraw(np.zeros(2, np.float32), scale, False)
            task({**batch, **draw_arrays(draw, size), **scale_arrays(draw, size)})
    else:
        task(batch)
    task.optimizer.build(task.trainable_variables)
    if step_graph.applies(t.step_graph, compiled=bool(task.jit_compile)):
        task.record_steps()
    return task
