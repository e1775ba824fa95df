"""``train(recipe, run_dir)``: fit a recipe with ``model.fit``, resumable after ``kill -9``.

Read top to bottom: the sections of :func:`train` are the job. The run directory's layout and
the backup format are :mod:`avloc.runs`; the task's construction, the callbacks and the
environment record are modules of :mod:`avloc.training`.

Resuming: running the same command again finds ``backup/LATEST`` and continues from its epoch
and step, and ends with the same ``log.csv`` and the same weights, bit for bit on CPU, as a run
that was never stopped (``tests/test_resume.py`` kills runs at each of the moments below):

- the unfinished epoch is completed with exactly the batches it had not seen: the loader is a
  pure function of (seed, epoch, batch), told the epoch by :class:`FeedEpoch`, and Keras does not
  reorder batches (``shuffle=False``);
- a mid-epoch backup holds the loss trackers' sums, put back when the epoch resumes
  (:class:`~avloc.training.callbacks.RestoreEpochMetrics`), so its log row averages all of its
  batches;
- an epoch's row goes into ``log.csv`` before its backup, and rows of epochs the backup predates
  are dropped at the start (:func:`avloc.runs.keep_log_before`); the epoch's last step is backed
  up only by the epoch-end backup, after its checkpoint;
- temporary files and staging folders a killed run left are removed at the start, under the
  run directory's lock (:func:`avloc.utils.files.remove_stale_temporaries`).

Every file is written under a temporary name and renamed, so a kill at any moment leaves either
the old or the new file, never a partial one. Throughput per epoch goes to ``timing.csv``
(:class:`~avloc.training.callbacks.Throughput`), not into ``log.csv``.

Several devices (``[distribute]``, :mod:`avloc.runtime.distribute`): the task is built in the
engine's scope, every process resumes from the same backup and feeds its rows of each global
batch, and only process 0 writes the run directory. The device count may change between a run
and its resumption (the global batch, and so the recipe, stays the same).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from avloc import runtime
from avloc.config import Recipe, read_toml, recipe_from_dict, save_recipe
from avloc.data.loader import TrainBatches, batches_per_epoch
from avloc.data.shards import ShardSet
from avloc.errors import AvlocError
from avloc.models.io import save_network
from avloc.recipe_checks import check_recipe
from avloc.runs import Progress, RunDir, keep_log_before, latest_backup, log_last_row
from avloc.runtime import distribute
from avloc.runtime.backend import cpu_bf16_warning
from avloc.runtime.seeding import set_random_seed
from avloc.task import EpochCounter
from avloc.training.build import build_task, train_inputs
from avloc.training.callbacks import (
    FeedEpoch,
    RestoreEpochMetrics,
    ResumableCheckpoint,
    StopOnNonFinite,
    Throughput,
)
from avloc.training.environment import environment_info
from avloc.utils.files import atomic_write_json, remove_stale_temporaries
from avloc.utils.quiet import import_tensorflow_quietly


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    epochs_done: int
    history: dict[str, list[float]]
    writer: bool = True  # False in the data-parallel processes that write nothing


def train(recipe: Recipe, run_dir: str | Path, verbose: int | None = None) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (resuming if it holds a backup of the same recipe)."""
    run_dir = Path(run_dir)
    check_recipe(recipe)  # loss terms, architecture, Uth statistic: before any output
    # The kernels for this recipe's networks, before anything is built (the same as `avloc
    # train`); fixed training shapes let cuDNN keep its fastest algorithms on a GPU
    kernels = runtime.configure(recipe, gpu_autotune=True, repeatable=True)
    shards = ShardSet(recipe.data.train)  # fails early, naming the path, if data are missing
    steps_per_epoch = epoch_steps(recipe, len(shards))
    if steps_per_epoch == 0:
        usable = min(len(shards), recipe.data.limit) if recipe.data.limit else len(shards)
        raise AvlocError(
            f"{recipe.data.train}: {usable} training samples, fewer than one batch of "
            f"train.batch_size = {recipe.train.batch_size}"
        )
    placement = distribute.setup(recipe.distribute, recipe.train.batch_size)
    writer = placement.is_writer
    layout = RunDir(run_dir)
    t = recipe.train
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if not writer:
        verbose = 0

    with layout.lock() if writer else contextlib.nullcontext():
        # ---- The run directory: ours, and cleared of what a killed run left half-written ----
        run_dir.mkdir(parents=True, exist_ok=True)
        check_run_dir(run_dir, recipe)
        if writer:
            for folder in (run_dir, layout.backup, layout.checkpoints):
                remove_stale_temporaries(folder)

        # ---- The task: network, loss terms and optimizer, every variable created ----
        set_random_seed(recipe.seed)
        with placement.scope():
            task = build_task(recipe, placement, total_steps=max(1, t.epochs * steps_per_epoch))
        if writer:  # after the network and its starting weights are built: a failed start
            save_recipe(recipe, layout.recipe)  # leaves no recipe to refuse the next

        # ---- Resume: the newest backup's weights and progress; later log rows dropped ----
        start = Progress()
        resumed = latest_backup(run_dir)
        if resumed:
            folder, start = resumed
            task.load_weights(folder / "state.weights.h5")
        if writer:  # rows of epochs the backup predates are trained, and written, again
            keep_log_before(layout.log, start.epoch)
        # After the resume: DDP starts by broadcasting process 0's weights, and no process
        # writes a backup before every process has passed this point (the first step needs all).
        placement.attach(task)

        # ---- meta.json: what runs, where, resumed from where ----
        meta = start_meta(layout, start, len(shards), placement, task, kernels)
        if writer:
            atomic_write_json(layout.meta, meta)
        slow_bf16 = cpu_bf16_warning(t.precision)
        if slow_bf16 and writer:
            print(f"warning: {slow_bf16}", file=sys.stderr, flush=True)

        # ---- Callbacks, in the order they must run at each step and epoch end ----
        callbacks: list[keras.callbacks.Callback] = [
            EpochCounter(),  # task.epoch for the loss terms' start_epoch (warm-up)
            RestoreEpochMetrics(start.metrics if start.step else None),  # a resumed epoch's sums
            *placement.callbacks(),  # e.g. logs averaged over processes, before they are written
            StopOnNonFinite(start.global_step),  # before a backup could store the non-finite state
        ]
        if writer:
            callbacks.append(Throughput(layout.timing, t.batch_size))
            # The epoch's row first, then its backup: a kill between them trains the epoch again
            # from an earlier backup, and keep_log_before drops the row on the next start.
            callbacks.append(keras.callbacks.CSVLogger(str(layout.log), append=True))
            callbacks.append(
                ResumableCheckpoint(run_dir, t.backup_every_steps, start, steps_per_epoch)
            )
        if writer and t.tensorboard:
            import_tensorflow_quietly()  # the callback imports TensorFlow, even under torch
            callbacks.append(keras.callbacks.TensorBoard(str(layout.tensorboard), update_freq=10))

        # ---- Fit: the interrupted epoch's remaining batches, then the epochs left ----
        loader = dict(
            batch_size=t.batch_size,
            seed=recipe.seed,
            inputs=train_inputs(recipe),
            with_noise=task.needs_noise,
            limit=recipe.data.limit,
            steps_per_epoch=t.steps_per_epoch,
            workers=recipe.data.workers,
            use_multiprocessing=recipe.data.use_multiprocessing,
            max_queue_size=recipe.data.max_queue_size,
            rows=placement.loader_rows(t.batch_size),
            on_device=task.preprocess is not None,
        )
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

        epoch = start.epoch
        if epoch < t.epochs and start.step > 0:
            dataset = TrainBatches(shards, epoch=epoch, first_batch=start.step, **loader)
            fit(dataset, epoch, epoch + 1)
            epoch += 1
        if epoch < t.epochs:
            fit(TrainBatches(shards, epoch=epoch, **loader), epoch, t.epochs)

        # ---- The final network: Uth calibrated on the training data, then saved ----
        result = TrainResult(run_dir, layout.model, t.epochs, history, writer=writer)
        if writer:
            task.net.calibration = calibrate_after_training(task.net, recipe, verbose)
            save_network(task.net, layout.model)
            finish_meta(layout, meta, t.epochs, history)
    placement.finish()
    return result


# --------------------------------------------------------------------------------------------
# The job's helpers, in the order train() uses them


def epoch_steps(recipe: Recipe, train_samples: int) -> int:
    """Optimizer steps per epoch, as the loader makes them (:func:`batches_per_epoch`)."""
    t = recipe.train
    return batches_per_epoch(train_samples, t.batch_size, recipe.data.limit, t.steps_per_epoch)


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


def start_meta(layout: RunDir, start: Progress, samples: int, placement, task, kernels) -> dict:
    """``meta.json`` at a (re)start: what it held, plus this process's environment and kernels
    (``kernels``: :class:`avloc.runtime.RuntimeSettings`), where the run resumes from, the
    training samples, the devices and where preprocessing runs."""
    meta = json.loads(layout.meta.read_text()) if layout.meta.exists() else {}
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta.update(environment_info())
    meta["kernels"] = kernels.to_dict()
    meta["resumed_from"] = {
        "epoch": start.epoch,
        "step": start.step,
        "global_step": start.global_step,
    }
    meta["train_samples"] = samples
    meta["devices"] = {
        "replicas": placement.replicas,
        "processes": placement.process_count,
        "engine": placement.engine,
        "negatives": placement.negatives,
    }
    meta["preprocessing"] = "device" if task.preprocess is not None else "loader"
    return meta


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


def finish_meta(layout: RunDir, meta: dict, epochs: int, history: dict) -> None:
    """``meta.json`` of a finished run: epochs done, outputs and the final losses."""
    meta["epochs_done"] = epochs
    meta["outputs"] = {
        "model": str(layout.model),
        "log": str(layout.log),
        "checkpoints": str(layout.checkpoints),
    }
    final = {k: v[-1] for k, v in history.items() if k.startswith("loss")}
    meta["final_losses"] = final or log_last_row(layout.log)
    atomic_write_json(layout.meta, meta)


__all__ = ["TrainResult", "build_task", "check_run_dir", "epoch_steps", "run_steps", "train"]
