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

from avloc.config import DataConfig, Recipe
from avloc.inputs.noise import silence_waveform
from avloc.inputs.spectrogram import spectrogram
from avloc.inputs.training import DevicePreprocessing
from avloc.losses import build_terms
from avloc.models import build_network
from avloc.runtime.backend import preprocess_on_device
from avloc.runtime.optimizers import build_optimizer
from avloc.runtime.placement import Placement
from avloc.task import LocalizationTask


def silence_spectrogram(recipe: Recipe) -> np.ndarray:
    """The log spectrogram of SSL-SaN's silence clip ``a_S`` (same function as real audio)."""
    samples = int(round(recipe.data.sample_rate * recipe.data.clip_seconds))
    return spectrogram(silence_waveform(samples), sample_rate=recipe.data.sample_rate)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` inside the block, restored after it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def device_preprocessing(data: DataConfig) -> DevicePreprocessing | None:
    """The training step's preprocessing when ``data.preprocess_on_device`` (resolved for this
    process: :func:`avloc.runtime.backend.preprocess_on_device`), else None."""
    if not preprocess_on_device(data.preprocess_on_device):
        return None
    return DevicePreprocessing(
        size=data.image_size,
        resize=data.train_resize,
        noise_color=data.noise_color,
        sample_rate=data.sample_rate,
    )


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
        silence = silence_spectrogram(recipe)
        task = LocalizationTask(
            net,
            terms,
            silence,
            placement=placement,
            preprocess=device_preprocessing(recipe.data),
            name="task",
        )
    t = recipe.train
    optimizer = build_optimizer(t, total_steps)  # decay mode: train.weight_decay_mode
    task.compile(optimizer=optimizer, jit_compile=t.jit_compile)
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
    task(batch)
    task.optimizer.build(task.trainable_variables)
    return task
