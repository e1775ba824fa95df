"""The Keras callbacks of ``avloc train``, in the order the job installs them.

- :class:`FeedEpoch`: tells the loader which epoch starts (batch ``i`` of epoch ``e`` is a pure
  function of ``(seed, e, i)``, :mod:`avloc.data.loader`);
- :class:`RestoreEpochMetrics`: a resumed epoch starts from the loss trackers' sums the backup
  holds, so its ``log.csv`` row averages all of its batches;
- :class:`StopOnNonFinite`: one line and a stop at the first non-finite loss, before a backup
  could store that state;
- :class:`Throughput`: one row per epoch in ``timing.csv`` (never in ``log.csv``, which a resumed
  run reproduces exactly);
- :class:`ResumableCheckpoint`: the epoch checkpoints and the backups (format:
  :func:`avloc.runs.write_backup`), every ``train.backup_every_steps`` steps and at each epoch's
  end, after the epoch's ``log.csv`` row.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import keras
import numpy as np

from avloc.data.loader import TrainBatches
from avloc.errors import AvlocError
from avloc.models.io import save_network
from avloc.runs import Progress, RunDir, write_backup
from avloc.utils.files import check_free_space


def state_bytes(model) -> int:
    """Bytes of every variable of ``model`` (a task: network and optimizer), as stored."""
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.variables))


def metric_states(task) -> dict[str, list[float]]:
    """Every loss tracker's variables (a mean's total and count), by name, as exact floats."""
    return {
        metric.name: [float(keras.ops.convert_to_numpy(v)) for v in metric.variables]
        for metric in task.metrics
    }


class FeedEpoch(keras.callbacks.Callback):
    """Tells the loader which training epoch starts, before Keras asks it for a batch."""

    def __init__(self, dataset: TrainBatches):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.start_epoch(epoch)


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


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training, in one line, at the first step whose logs show a non-finite loss or
    loss term: the step itself where the logs are pulled every step (TensorFlow, JAX, torch with
    ``train.log_every_steps = 1``), else the next step they reach the host; the epoch's logs at
    its end. :class:`ResumableCheckpoint` checks the trackers' sums before it writes a backup, so
    no non-finite state is stored either way."""

    def __init__(self, global_step: int):
        super().__init__()
        self.global_step = global_step

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        stop_if_not_finite(logs, f"training step {self.global_step}")

    def on_epoch_end(self, epoch, logs=None):
        stop_if_not_finite(logs, f"training epoch {epoch + 1}")


def stop_if_not_finite(values: dict | None, where: str) -> None:
    """One-line :class:`AvlocError` if a ``loss*`` entry of ``values`` is not finite."""
    for key, value in (values or {}).items():
        if key.startswith("loss") and not np.all(np.isfinite(value)):
            raise AvlocError(
                f"{where}: {key} is {value}; stopped (the last backup holds the state before it; "
                "try a lower train.learning_rate)"
            )


class Throughput(keras.callbacks.Callback):
    """Appends one row per epoch to ``timing.csv``: epoch, steps, seconds, samples_per_s.

    ``seconds`` is the epoch's wall time; ``samples_per_s`` is global batch x steps / s from the
    end of the epoch's first step to the end of its last, so that loader start-up and compilation
    stay out of it (0 for an epoch of one step).
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


class ResumableCheckpoint(keras.callbacks.Callback):
    """Backs up task + optimizer every ``every`` steps and at each epoch end; saves epoch nets.

    ``start`` is the :class:`~avloc.runs.Progress` the run (re)starts from. The epoch's last
    step is backed up only by the epoch-end backup, after the epoch's ``log.csv`` row and its
    checkpoint: a backup before them would let a resumed run skip both.
    """

    def __init__(self, run_dir: Path, every: int, start: Progress, steps_per_epoch: int):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.every = max(1, every)
        self.epoch, self.step, self.global_step = start.epoch, start.step, start.global_step
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.global_step += 1
        if self.global_step % self.every == 0 and self.step < self.steps_per_epoch:
            self.save_backup(self.epoch, self.step)

    def on_epoch_end(self, epoch, logs=None):
        path = RunDir(self.run_dir).checkpoint(epoch + 1)
        check_free_space(path.parent, state_bytes(self.model.net), "an epoch checkpoint")
        save_network(self.model.net, path)
        self.save_backup(epoch + 1, 0)
        self.epoch, self.step = epoch + 1, 0

    def save_backup(self, epoch: int, step: int) -> None:
        # mid-epoch: the loss trackers' sums, so the epoch's log row comes out whole; a
        # non-finite sum (a step the host logs did not show) is never stored
        metrics = metric_states(self.model) if step else None
        if metrics:
            stop_if_not_finite(metrics, f"training step {self.global_step}")
        progress = Progress(epoch, step, self.global_step, metrics)

        def save_weights(path: Path) -> None:
            # A full disk is refused before h5py opens the file: its half-written files fail
            # again when they are freed. If the disk fills anyway, the staging folder is left
            # for the next start to remove, and LATEST still names the last complete backup.
            check_free_space(path.parent, state_bytes(self.model), "a backup")
            self.model.save_weights(path)

        write_backup(self.run_dir, progress, save_weights)
