"""``train(recipe, run_dir)``: fit a recipe with ``model.fit``, resumable after ``kill -9``.

The run directory's layout is described (and its paths defined) in :mod:`avloc.runs`.

Resuming: running the same command again finds ``backup/LATEST`` and continues from its epoch
and step; the unfinished epoch is completed with exactly the batches it had not seen (the loader
is a pure function of (seed, epoch, batch)). Every file is written under a temporary name and
renamed, so a kill at any moment leaves either the old or the new file, never a partial one.

Several devices (``[distribute]``, :mod:`avloc.runtime.distribute`): the task is built in the
engine's
scope, every process resumes from the same backup and feeds its rows of each global batch, and
only process 0 writes the run directory. The device count may change between a run and its
resumption (the global batch, and so the recipe, stays the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from avloc import __version__
from avloc.config import Recipe, read_toml, recipe_from_dict, save_recipe
from avloc.data.loader import TrainBatches
from avloc.data.shards import ShardSet
from avloc.errors import AvlocError
from avloc.losses import build_terms
from avloc.media.audio import silence_waveform, spectrogram
from avloc.models import build_network
from avloc.models.io import save_network
from avloc.recipe_checks import check_recipe
from avloc.runs import RunDir
from avloc.runtime import distribute
from avloc.runtime.backend import cpu_bf16_warning
from avloc.runtime.distribute import Placement
from avloc.runtime.optimizers import build_optimizer
from avloc.task import EpochCounter, LocalizationTask
from avloc.utils.files import atomic_path, atomic_write_bytes, atomic_write_json
from avloc.utils.quiet import import_tensorflow_quietly


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    epochs_done: int
    history: dict[str, list[float]]
    writer: bool = True  # False in the data-parallel processes that write nothing


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def environment_info() -> dict[str, Any]:
    info = {
        "avloc": __version__,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
    }
    try:
        if info["backend"] == "torch":
            import torch

            info["torch"] = torch.__version__
        elif info["backend"] == "tensorflow":
            import tensorflow as tf

            info["tensorflow"] = tf.__version__
        elif info["backend"] == "jax":
            import jax

            info["jax"] = jax.__version__
    except ImportError:
        pass
    return info


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
        batch = placement.batch_view() if placement is not None else None
        task = LocalizationTask(net, terms, silence, batch=batch, name="task")
    t = recipe.train
    optimizer = build_optimizer(t, total_steps)  # decay mode: train.weight_decay_mode
    task.compile(optimizer=optimizer, jit_compile=t.jit_compile)
    size = recipe.data.image_size
    batch = {
        "image": np.zeros((2, size, size, 3), "float32"),
        "audio": np.zeros((2, *silence.shape, 1), "float32"),
    }
    if task.needs_noise:
        batch["noise"] = batch["audio"]
    task(batch)
    task.optimizer.build(task.trainable_variables)
    return task


# --------------------------------------------------------------------------------------------
# Resumable backups


def latest_backup(run_dir: Path) -> tuple[Path, dict[str, int]] | None:
    pointer = RunDir(run_dir).backup / "LATEST"
    if not pointer.exists():
        return None
    folder = RunDir(run_dir).backup / pointer.read_text().strip()
    progress_file = folder / "progress.json"
    if not progress_file.exists():
        return None
    return folder, json.loads(progress_file.read_text())


class ResumableCheckpoint(keras.callbacks.Callback):
    """Backs up task + optimizer every ``every`` steps and at each epoch end; saves epoch nets."""

    def __init__(self, run_dir: Path, every: int, epoch: int, step: int, global_step: int):
        super().__init__()
        self.run_dir = run_dir
        self.every = max(1, every)
        self.epoch = epoch
        self.step = step
        self.global_step = global_step

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.global_step += 1
        if self.global_step % self.every == 0:
            self.save_backup(self.epoch, self.step)

    def on_epoch_end(self, epoch, logs=None):
        path = RunDir(self.run_dir).checkpoint(epoch + 1)
        save_network(self.model.net, path)
        self.save_backup(epoch + 1, 0)
        self.epoch, self.step = epoch + 1, 0

    def save_backup(self, epoch: int, step: int) -> None:
        backup = RunDir(self.run_dir).backup
        name = f"ckpt-{self.global_step:08d}"
        folder = backup / name
        staging = backup / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.model.save_weights(staging / "state.weights.h5")
        progress = {"epoch": epoch, "step": step, "global_step": self.global_step}
        (staging / "progress.json").write_text(json.dumps(progress))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        atomic_write_bytes(backup / "LATEST", name.encode())
        for old in backup.glob("ckpt-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)


def calibrate_after_training(net, recipe: Recipe, verbose: int) -> dict[str, Any]:
    """Label-free Uth on the training shards (SPEC 4.1), stored with the final network."""
    from avloc.maps.calibration import calibrate

    entry = calibrate(net, recipe.data.train, recipe.eval, seed=recipe.seed)
    if verbose:
        audio = " + ".join(entry["audio"])
        print(
            f"Calibrated Uth = {entry['uth']:.4f} ({entry['statistic']} of {audio} map "
            f"maxima on {entry['samples']} training images)",
            flush=True,
        )
    return entry


# --------------------------------------------------------------------------------------------


def run_steps(recipe: Recipe, train_samples: int) -> int:
    """Optimizer steps of the whole run: epochs x batches per epoch (as the loader makes them)."""
    t = recipe.train
    samples = min(train_samples, recipe.data.limit) if recipe.data.limit else train_samples
    per_epoch = samples // t.batch_size
    if t.steps_per_epoch:
        per_epoch = min(per_epoch, t.steps_per_epoch)
    return max(1, t.epochs * per_epoch)


def check_run_dir(run_dir: Path, recipe: Recipe) -> None:
    """Refuse a run directory whose training progress belongs to another recipe.

    A directory where training never got anywhere (a start that failed before its first backup)
    holds nothing to protect: its recipe is simply replaced.
    """
    saved = RunDir(run_dir).recipe
    if not saved.exists() or not RunDir(run_dir).has_progress():
        return
    previous = recipe_from_dict(read_toml(saved))
    if _without_devices(previous) != _without_devices(recipe):
        raise AvlocError(
            f"{run_dir}: holds a run of a different recipe; resume it with the same recipe and "
            "--set options, or choose a new --run-dir"
        )


def _without_devices(recipe: Recipe) -> dict[str, Any]:
    """The recipe minus ``distribute.devices``: a run may resume on another device count."""
    plain = recipe.to_dict()
    plain["distribute"].pop("devices", None)
    return plain


def check_enough_data(recipe: Recipe, samples: int) -> None:
    """AvlocError unless the training data hold at least one batch."""
    usable = min(samples, recipe.data.limit) if recipe.data.limit else samples
    if usable < recipe.train.batch_size:
        raise AvlocError(
            f"{recipe.data.train}: {usable} training samples, fewer than one batch of "
            f"train.batch_size = {recipe.train.batch_size}"
        )


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first step whose loss or a loss term is not finite, in one line."""

    def __init__(self, global_step: int):
        super().__init__()
        self.global_step = global_step

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        for key, value in (logs or {}).items():
            if key.startswith("loss") and not np.isfinite(float(value)):
                raise AvlocError(
                    f"training step {self.global_step}: {key} is {float(value)}; stopped (the "
                    "last backup holds the state before it; try a lower train.learning_rate)"
                )


def train(recipe: Recipe, run_dir: str | Path, verbose: int | None = None) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (resuming if it holds a backup of the same recipe)."""
    run_dir = Path(run_dir)
    check_recipe(recipe)  # loss terms, architecture, Uth statistic: before any output
    shards = ShardSet(recipe.data.train)  # fails early, naming the path, if data are missing
    check_enough_data(recipe, len(shards))
    placement = distribute.setup(recipe.distribute, recipe.train.batch_size)
    writer = placement.is_writer
    lock = RunDir(run_dir).lock() if writer else contextlib.nullcontext()
    with lock:
        return _train_locked(recipe, run_dir, shards, placement, verbose)


def _train_locked(recipe, run_dir, shards, placement, verbose) -> TrainResult:
    writer = placement.is_writer
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, recipe)
    keras.utils.set_random_seed(recipe.seed)
    with placement.scope():
        task = build_task(recipe, placement, total_steps=run_steps(recipe, len(shards)))
    if writer:  # after the network and its starting weights are built: a failed start
        save_recipe(recipe, RunDir(run_dir).recipe)  # leaves no recipe to refuse the next
    epoch, step, global_step = 0, 0, 0
    resumed = latest_backup(run_dir)
    if resumed:
        folder, progress = resumed
        task.load_weights(folder / "state.weights.h5")
        epoch, step, global_step = progress["epoch"], progress["step"], progress["global_step"]
    # After the resume: DDP starts by broadcasting process 0's weights, and no process writes a
    # backup before every process has passed this point (the first step needs all of them).
    placement.attach(task)

    meta_path = RunDir(run_dir).meta
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta.update(environment_info())
    meta["resumed_from"] = {"epoch": epoch, "step": step, "global_step": global_step}
    meta["train_samples"] = len(shards)
    meta["devices"] = {
        "replicas": placement.replicas,
        "processes": placement.process_count,
        "engine": placement.engine,
        "negatives": placement.negatives,
    }
    if writer:
        atomic_write_json(meta_path, meta)

    t = recipe.train
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if not writer:
        verbose = 0
    slow_bf16 = cpu_bf16_warning(t.precision)
    if slow_bf16 and writer:
        print(f"warning: {slow_bf16}", file=sys.stderr, flush=True)
    common = dict(
        batch_size=t.batch_size,
        seed=recipe.seed,
        image_size=recipe.data.image_size,
        train_resize=recipe.data.train_resize,
        with_noise=task.needs_noise,
        noise_color=recipe.data.noise_color,
        limit=recipe.data.limit,
        steps_per_epoch=t.steps_per_epoch,
        workers=recipe.data.workers,
        use_multiprocessing=recipe.data.use_multiprocessing,
        max_queue_size=recipe.data.max_queue_size,
        rows=placement.loader_rows(t.batch_size),
    )
    callbacks: list[keras.callbacks.Callback] = [
        EpochCounter(),  # task.epoch for the loss terms' start_epoch (warm-up)
        *placement.callbacks(),  # e.g. logs averaged over processes, before they are written
        StopOnNonFinite(global_step),  # before a backup could store the non-finite state
    ]
    if writer:
        callbacks.append(
            ResumableCheckpoint(run_dir, t.backup_every_steps, epoch, step, global_step)
        )
        callbacks.append(keras.callbacks.CSVLogger(str(RunDir(run_dir).log), append=True))
    if writer and t.tensorboard:
        import_tensorflow_quietly()  # the callback imports TensorFlow, even under torch
        board = str(RunDir(run_dir).tensorboard)
        callbacks.append(keras.callbacks.TensorBoard(board, update_freq=10))

    history: dict[str, list[float]] = {}

    def fit(dataset: TrainBatches, first_epoch: int, last_epoch: int) -> None:
        result = task.fit(
            dataset,
            initial_epoch=first_epoch,
            epochs=last_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)

    if epoch < t.epochs and step > 0:
        # Finish the interrupted epoch with the batches it had not yet seen.
        fit(TrainBatches(shards, epoch=epoch, first_batch=step, **common), epoch, epoch + 1)
        epoch += 1
    if epoch < t.epochs:
        fit(TrainBatches(shards, epoch=epoch, **common), epoch, t.epochs)

    model_path = RunDir(run_dir).model
    if not writer:
        return TrainResult(run_dir, model_path, t.epochs, history, writer=False)
    task.net.calibration = calibrate_after_training(task.net, recipe, verbose)
    save_network(task.net, model_path)
    meta["epochs_done"] = t.epochs
    meta["outputs"] = {
        "model": str(model_path),
        "log": str(RunDir(run_dir).log),
        "checkpoints": str(RunDir(run_dir).checkpoints),
    }
    if history:
        meta["final_losses"] = {k: v[-1] for k, v in history.items()}
    atomic_write_json(meta_path, meta)
    return TrainResult(run_dir, model_path, t.epochs, history)


__all__ = ["TrainResult", "build_task", "train", "atomic_path"]
