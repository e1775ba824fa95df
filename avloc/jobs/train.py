"""``train(recipe, run_dir)``: fit a recipe with ``model.fit``, resumable after ``kill -9``.

The run directory's layout is described (and its paths defined) in :mod:`avloc.runs`.

Resuming: running the same command again finds ``backup/LATEST`` and continues from its epoch
and step, and ends with the same ``log.csv`` and the same weights, bit for bit on CPU, as a run
that was never stopped (``tests/test_resume.py`` kills runs at each of the moments below):

- the unfinished epoch is completed with exactly the batches it had not seen: the loader is a
  pure function of (seed, epoch, batch), told the epoch by :class:`FeedEpoch`, and Keras does not
  reorder batches (``shuffle=False``);
- a mid-epoch backup holds the loss trackers' sums (:func:`metric_states`), put back when the
  epoch resumes (:class:`RestoreEpochMetrics`), so its log row averages all of its batches;
- an epoch's row goes into ``log.csv`` before its backup, and rows of epochs the backup predates
  are dropped at the start (:func:`keep_log_before`); the epoch's last step is backed up only
  by the epoch-end backup, after its checkpoint;
- temporary files and staging folders a killed run left are removed at the start, under the
  run directory's lock (:func:`avloc.utils.files.remove_stale_temporaries`).

Every file is written under a temporary name and renamed, so a kill at any moment leaves either
the old or the new file, never a partial one. Throughput per epoch goes to ``timing.csv``
(:class:`Throughput`), not into ``log.csv``.

Several devices (``[distribute]``, :mod:`avloc.runtime.distribute`): the task is built in the
engine's scope, every process resumes from the same backup and feeds its rows of each global
batch, and only process 0 writes the run directory. The device count may change between a run
and its resumption (the global batch, and so the recipe, stays the same).
"""

from __future__ import annotations

import contextlib
import csv
import io
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
from avloc.config import DataConfig, Recipe, read_toml, recipe_from_dict, save_recipe
from avloc.data.loader import TrainBatches
from avloc.data.shards import ShardSet
from avloc.errors import AvlocError
from avloc.losses import build_terms
from avloc.media.audio import silence_waveform, spectrogram
from avloc.models import build_network
from avloc.models.device_inputs import DevicePreprocessing
from avloc.models.io import save_network
from avloc.recipe_checks import check_recipe
from avloc.runs import RunDir
from avloc.runtime import distribute
from avloc.runtime.backend import (
    autotune_gpu_kernels,
    cpu_bf16_warning,
    preprocess_on_device,
)
from avloc.runtime.cpu_kernels import TF_SWITCH, cap_in_force
from avloc.runtime.distribute import Placement
from avloc.runtime.optimizers import build_optimizer
from avloc.task import EpochCounter, LocalizationTask
from avloc.utils.files import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    check_free_space,
    remove_stale_temporaries,
)
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
        # CPU kernels in force (avloc/runtime/cpu_kernels.py): oneDNN's cap, and whether
        # TensorFlow runs oneDNN's kernels or its own
        "onednn_cap": cap_in_force(),
    }
    if info["backend"] == "tensorflow":
        info["tensorflow_onednn"] = os.environ.get(TF_SWITCH) == "1"
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


def device_preprocessing(data: DataConfig) -> DevicePreprocessing | None:
    """The training step's preprocessing when ``data.preprocess_on_device`` (resolved for this
    process: :func:`avloc.runtime.backend.preprocess_on_device`), else None."""
    if not preprocess_on_device(data.preprocess_on_device):
        return None
    return DevicePreprocessing(
        size=data.image_size,
        resize=data.train_resize,
        noise_color=data.noise_color,
    )


def build_task(
    recipe: Recipe, placement: Placement | None = None, total_steps: int | None = None
) -> LocalizationTask:
    """Network + loss terms + optimizer, compiled, every weight (optimizer too) created.

    With a ``placement`` the loss terms gather their negatives as it says; build inside
    ``placement.scope()``. ``total_steps`` (optimizer steps of the whole run) sets the length
    of a ``train.lr_schedule`` other than constant.
    """
    autotune_gpu_kernels()  # fixed training shapes: let cuDNN keep its fastest algorithms
    with dtype_policy(recipe.train.precision):  # layers take the policy when they are made
        net = build_network(recipe.model, recipe.data)
        terms = build_terms(recipe.loss)
        silence = silence_spectrogram(recipe)
        batch = placement.batch_view() if placement is not None else None
        task = LocalizationTask(
            net,
            terms,
            silence,
            batch=batch,
            sample_rate=recipe.data.sample_rate,
            preprocess=device_preprocessing(recipe.data),
            name="task",
        )
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
    """Backs up task + optimizer every ``every`` steps and at each epoch end; saves epoch nets.

    Each backup is a new folder ``backup/ckpt-<global step>`` renamed into place whole, then
    ``backup/LATEST`` is pointed at it, then older folders are removed: a kill at any moment
    leaves ``LATEST`` naming a complete backup.
    """

    def __init__(
        self,
        run_dir: Path,
        every: int,
        epoch: int,
        step: int,
        global_step: int,
        steps_per_epoch: int,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.every = max(1, every)
        self.epoch = epoch
        self.step = step
        self.global_step = global_step
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.global_step += 1
        # The epoch's last step is backed up by on_epoch_end, after the epoch's log row and
        # checkpoint: a backup here would let a resumed run skip both.
        if self.global_step % self.every == 0 and self.step < self.steps_per_epoch:
            self.save_backup(self.epoch, self.step)

    def on_epoch_end(self, epoch, logs=None):
        path = RunDir(self.run_dir).checkpoint(epoch + 1)
        check_free_space(path.parent, state_bytes(self.model.net), "an epoch checkpoint")
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
        progress = {"epoch": epoch, "step": step, "global_step": self.global_step}
        if step:  # mid-epoch: the loss trackers' sums, so the epoch's log row comes out whole
            progress["metrics"] = metric_states(self.model)
        # A full disk is refused before h5py opens the file: its half-written files fail again
        # when they are freed. If the disk fills anyway, the staging folder is left for the
        # next start to remove, and LATEST still names the last complete backup.
        check_free_space(staging, state_bytes(self.model), "a backup")
        self.model.save_weights(staging / "state.weights.h5")
        (staging / "progress.json").write_text(json.dumps(progress))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        atomic_write_bytes(backup / "LATEST", name.encode())
        for old in backup.glob("ckpt-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)


def calibrate_after_training(net, recipe: Recipe, verbose: int) -> dict[str, Any]:
    """Label-free Uth on the training shards (docs/protocol.md), stored with the final network."""
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


def epoch_steps(recipe: Recipe, train_samples: int) -> int:
    """Optimizer steps per epoch, as the loader makes them (``TrainBatches.batches_per_epoch``)."""
    t = recipe.train
    samples = min(train_samples, recipe.data.limit) if recipe.data.limit else train_samples
    per_epoch = samples // t.batch_size
    if t.steps_per_epoch:
        per_epoch = min(per_epoch, t.steps_per_epoch)
    return per_epoch


def run_steps(recipe: Recipe, train_samples: int) -> int:
    """Optimizer steps of the whole run: epochs x batches per epoch."""
    return max(1, recipe.train.epochs * epoch_steps(recipe, train_samples))


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


class Throughput(keras.callbacks.Callback):
    """Appends one row per epoch to ``timing.csv``: epoch, steps, seconds, samples_per_s.

    ``seconds`` is the epoch's wall time; ``samples_per_s`` is global batch x steps / s from the
    end of the epoch's first step to the end of its last, so that loader start-up and compilation
    stay out of it (0 for an epoch of one step). Kept out of ``log.csv``, which a resumed run
    reproduces exactly.
    """

    FIELDS = ("epoch", "steps", "seconds", "samples_per_s")

    def __init__(self, path: Path, batch_size: int):
        super().__init__()
        self.path, self.batch_size = path, batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.first, self.steps = time.perf_counter(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.first is None:
            self.first = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        steady = end - self.first if self.first is not None else 0.0
        rate = (self.steps - 1) * self.batch_size / steady if steady > 0 else 0.0
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(self.FIELDS)
            writer.writerow([epoch, self.steps, f"{end - self.start:.3f}", f"{rate:.2f}"])


class FeedEpoch(keras.callbacks.Callback):
    """Tells the loader which training epoch starts, before Keras asks it for a batch."""

    def __init__(self, dataset: TrainBatches):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.start_epoch(epoch)


def state_bytes(model) -> int:
    """Bytes of every variable of ``model`` (a task: network and optimizer), as stored."""
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.variables))


def metric_states(task) -> dict[str, list[float]]:
    """Every loss tracker's variables (a mean's total and count), by name, as exact floats."""
    return {
        metric.name: [float(keras.ops.convert_to_numpy(v)) for v in metric.variables]
        for metric in task.metrics
    }


class RestoreEpochMetrics(keras.callbacks.Callback):
    """At the start of a resumed epoch, puts back the loss trackers' sums from the backup.

    ``fit()`` resets its metrics at every epoch's start; without this, a resumed epoch would log
    the mean over its remaining batches only, not over all of them as an unbroken run does.
    """

    def __init__(self, states: dict[str, list[float]] | None):
        super().__init__()
        self.states = states

    def on_epoch_begin(self, epoch, logs=None):
        if not self.states:
            return
        try:
            for metric in self.model.metrics:
                values = self.states.get(metric.name)
                if values is None:
                    continue
                for variable, value in zip(metric.variables, values, strict=True):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
        except (ValueError, RuntimeError, TypeError) as exc:  # e.g. an engine's replica-only vars
            print(
                f"warning: the resumed epoch's log row averages its remaining batches only "
                f"(the loss sums could not be restored: {type(exc).__name__})",
                file=sys.stderr,
                flush=True,
            )
        self.states = None


def keep_log_before(path: Path, epoch: int) -> None:
    """Drop ``log.csv`` rows of epochs >= ``epoch``, and any row cut short.

    A run killed after writing an epoch's row but before that epoch's backup trains the epoch
    again when resumed, and writes its row again.
    """
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [r for r in body if len(r) == len(header) and r[0].isdigit() and int(r[0]) < epoch]
    if len(kept) != len(body):
        text = io.StringIO()
        csv.writer(text).writerows([header, *kept])
        atomic_write_bytes(path, text.getvalue().encode())


def log_last_row(path: Path) -> dict[str, float]:
    """The losses of ``log.csv``'s last row (a run resumed after its last epoch trains none)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    last = rows[-1] if rows else {}
    return {k: float(v) for k, v in last.items() if k.startswith("loss")}


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
        result = _train_locked(recipe, run_dir, shards, placement, verbose)
    placement.finish()
    return result


def _train_locked(recipe, run_dir, shards, placement, verbose) -> TrainResult:
    writer = placement.is_writer
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, recipe)
    layout = RunDir(run_dir)
    if writer:  # under the lock: what a killed run left half-written goes
        for folder in (run_dir, layout.backup, layout.checkpoints):
            remove_stale_temporaries(folder)
    keras.utils.set_random_seed(recipe.seed)
    with placement.scope():
        task = build_task(recipe, placement, total_steps=run_steps(recipe, len(shards)))
    if writer:  # after the network and its starting weights are built: a failed start
        save_recipe(recipe, layout.recipe)  # leaves no recipe to refuse the next
    epoch, step, global_step = 0, 0, 0
    tracker_states = None
    resumed = latest_backup(run_dir)
    if resumed:
        folder, progress = resumed
        task.load_weights(folder / "state.weights.h5")
        epoch, step, global_step = progress["epoch"], progress["step"], progress["global_step"]
        tracker_states = progress.get("metrics")
    if writer:  # rows of epochs the backup predates are trained, and written, again
        keep_log_before(layout.log, epoch)
    # After the resume: DDP starts by broadcasting process 0's weights, and no process writes a
    # backup before every process has passed this point (the first step needs all of them).
    placement.attach(task)

    meta_path = layout.meta
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
    meta["preprocessing"] = "device" if task.preprocess is not None else "loader"
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
        on_device=task.preprocess is not None,
    )
    callbacks: list[keras.callbacks.Callback] = [
        EpochCounter(),  # task.epoch for the loss terms' start_epoch (warm-up)
        RestoreEpochMetrics(tracker_states if step else None),  # a resumed epoch's sums
        *placement.callbacks(),  # e.g. logs averaged over processes, before they are written
        StopOnNonFinite(global_step),  # before a backup could store the non-finite state
    ]
    if writer:
        callbacks.append(Throughput(layout.timing, t.batch_size))
        # The epoch's row first, then its backup: a kill between them trains the epoch again
        # from an earlier backup, and keep_log_before drops the row on the next start.
        callbacks.append(keras.callbacks.CSVLogger(str(layout.log), append=True))
        callbacks.append(
            ResumableCheckpoint(
                run_dir,
                t.backup_every_steps,
                epoch,
                step,
                global_step,
                epoch_steps(recipe, len(shards)),
            )
        )
    if writer and t.tensorboard:
        import_tensorflow_quietly()  # the callback imports TensorFlow, even under torch
        board = str(layout.tensorboard)
        callbacks.append(keras.callbacks.TensorBoard(board, update_freq=10))

    history: dict[str, list[float]] = {}

    def fit(dataset: TrainBatches, first_epoch: int, last_epoch: int) -> None:
        result = task.fit(
            dataset,
            initial_epoch=first_epoch,
            epochs=last_epoch,
            callbacks=[FeedEpoch(dataset), *callbacks],
            shuffle=False,  # the loader's own order is the epoch's (see avloc.data.loader)
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

    model_path = layout.model
    if not writer:
        return TrainResult(run_dir, model_path, t.epochs, history, writer=False)
    task.net.calibration = calibrate_after_training(task.net, recipe, verbose)
    save_network(task.net, model_path)
    meta["epochs_done"] = t.epochs
    meta["outputs"] = {
        "model": str(model_path),
        "log": str(layout.log),
        "checkpoints": str(layout.checkpoints),
    }
    final = {k: v[-1] for k, v in history.items() if k.startswith("loss")}
    meta["final_losses"] = final or log_last_row(layout.log)
    atomic_write_json(meta_path, meta)
    return TrainResult(run_dir, model_path, t.epochs, history)


__all__ = ["TrainResult", "build_task", "train", "atomic_path"]
