"""The run directory: its layout (one place), and the network behind ``--run`` / ``--checkpoint``.

Layout that ``avloc train`` writes (:mod:`avloc.jobs.train`)::

    recipe.toml            the resolved recipe (overrides applied)
    meta.json              backend, versions, git commit, progress, outputs
    log.csv                one row per epoch: loss and every loss_<term> (the same after a resume)
    timing.csv             one row per epoch trained: seconds and samples/s
    tensorboard/           TensorBoard event files (train.tensorboard)
    checkpoints/epoch_NNN.keras   the network after each epoch (atomic writes)
    backup/LATEST          name of the newest complete backup directory
    backup/ckpt-NNNNNNNN/  state.weights.h5 (task + optimizer) and progress.json
                           {epoch, step, global_step[, metrics]} (:class:`Progress`)
    model.keras            the final network (load with avloc.models.io.load_network)

Readers (eval, localize, reproduce) use :class:`RunDir` and :func:`model_file`, so a missing
or unfinished run gives the same one-line error everywhere, and a preset folder
(:mod:`avloc.presets`) is accepted, verified, wherever a run directory or a checkpoint is.

The backup format is defined here too (:func:`write_backup`, :func:`latest_backup`): a backup is
a folder ``backup/ckpt-<global step>`` staged under a temporary name and renamed into place
whole, then ``backup/LATEST`` is pointed at it (atomically), then older folders are removed, so
a kill at any moment leaves ``LATEST`` naming a complete backup. ``log.csv`` is trimmed to the
epochs a backup holds (:func:`keep_log_before`) when a run resumes from it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from avloc.errors import AvlocError, DataError
from avloc.utils.files import atomic_write_bytes

#: Why a run directory cannot be written at all: a read-only file system, no permission.
UNWRITABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.toml"

    @property
    def meta(self) -> Path:
        return self.root / "meta.json"

    @property
    def log(self) -> Path:
        return self.root / "log.csv"

    @property
    def timing(self) -> Path:
        return self.root / "timing.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, epoch: int) -> Path:
        """The network after ``epoch`` epochs (1-based, as in ``epoch_001.keras``)."""
        return self.checkpoints / f"epoch_{epoch:03d}.keras"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def has_progress(self) -> bool:
        """Whether training ever got anywhere here: a backup, an epoch checkpoint or a model."""
        return (
            (self.backup / "LATEST").is_file()
            or self.model.is_file()
            or any(self.checkpoints.glob("epoch_*.keras"))
        )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for one ``avloc train``: a second one is refused in one line
        naming the process that holds it. The lock (``flock`` on ``.lock``) ends with the
        process, however it ends, so a killed run never leaves its directory locked."""
        import fcntl

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_file, "a+")
        except OSError as exc:
            if exc.errno not in UNWRITABLE_ERRNOS:
                raise
            raise AvlocError(
                f"{self.root}: cannot write to this run directory ({os.strerror(exc.errno)}); "
                "choose another --run-dir"
            ) from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise AvlocError(
                    f"{self.root}: in use by another avloc train (process {holder}); wait for it "
                    "to finish or choose another --run-dir"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # releases the lock

    def finished_model(self) -> Path:
        """``model.keras``; a one-line DataError when the directory or the file is missing.

        A preset folder (``avloc export``, :mod:`avloc.presets`) gives its ``model.keras`` once
        every checksum matches."""
        from avloc.presets import is_preset, open_preset

        if is_preset(self.root):
            return open_preset(self.root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such run directory")
        if not self.model.is_file():
            raise DataError(
                f"{self.root}: no model.keras in this run directory (training not finished?); "
                f"use --checkpoint {self.checkpoints / 'epoch_NNN.keras'}"
            )
        return self.model


def run_of_checkpoint(checkpoint: str | Path) -> RunDir | None:
    """The run directory a ``.keras`` file belongs to (its folder, or the folder above
    ``checkpoints/``) when that holds a ``recipe.toml``; else None."""
    path = Path(checkpoint)
    for folder in (path.parent, path.parent.parent):
        if (folder / "recipe.toml").is_file():
            return RunDir(folder)
    return None


def calibrate_command(
    run_dir: str | Path | None = None, checkpoint: str | Path | None = None
) -> str:
    """The ``avloc eval --calibrate`` command that stores Uth for this model, as a user types it.

    A checkpoint outside a run directory (an imported one) has no recipe to name its training
    data, so the command asks for ``--calibration-data``.
    """
    if run_dir is not None:
        return f"avloc eval --calibrate --run {run_dir}"
    command = f"avloc eval --calibrate --checkpoint {checkpoint}"
    if run_of_checkpoint(checkpoint) is None:
        command += " --calibration-data TRAIN_SHARDS"
    return command


def model_file(run_dir: str | Path | None = None, checkpoint: str | Path | None = None) -> Path:
    """The ``.keras`` file of a run directory (``RUN_DIR/model.keras``) or a checkpoint.

    Exactly one of the two must be given; either may be a preset folder (``avloc export``),
    whose checksums are verified first (:func:`avloc.presets.open_preset`). Raises a one-line
    :class:`AvlocError` otherwise, or when the file is missing.
    """
    if (run_dir is None) == (checkpoint is None):
        raise AvlocError("give the model with exactly one of --run DIR or --checkpoint FILE")
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            return RunDir(path).finished_model()  # a preset folder, or a run directory
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint file")
        return path
    return RunDir(run_dir).finished_model()


# --------------------------------------------------------------------------------------------
# Backups: what a resumed run starts from

#: The file in a backup folder that holds the task's and the optimizer's variables.
BACKUP_WEIGHTS = "state.weights.h5"
#: The file in a backup folder that says where in training the backup was taken.
BACKUP_PROGRESS = "progress.json"


@dataclass(frozen=True)
class Progress:
    """Where a backup was taken: ``epoch`` (0-based, the epoch to run next or to finish),
    ``step`` (batches of that epoch already trained; 0 at an epoch's end), ``global_step``
    (optimizer steps of the whole run) and, mid-epoch, the loss trackers' sums ``metrics``
    (tracker name -> its variables' values) so the resumed epoch's log row averages all of its
    batches."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    metrics: dict[str, list[float]] | None = field(default=None, compare=False)

    def to_json(self) -> dict:
        out = {"epoch": self.epoch, "step": self.step, "global_step": self.global_step}
        if self.metrics is not None:
            out["metrics"] = self.metrics
        return out


def latest_backup(run_dir: str | Path) -> tuple[Path, Progress] | None:
    """``(folder, progress)`` of the backup ``backup/LATEST`` names; None when there is no
    ``LATEST`` (a run that never backed up starts from the beginning).

    A ``LATEST`` that names a missing or incomplete folder is a one-line :class:`DataError`:
    starting again from epoch 0 would replace the run's ``log.csv`` and checkpoints.
    """
    backup = RunDir(run_dir).backup
    pointer = backup / "LATEST"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    folder = backup / name
    progress_file = folder / BACKUP_PROGRESS
    if not (progress_file.is_file() and (folder / BACKUP_WEIGHTS).is_file()):
        raise DataError(
            f"{pointer}: names backup {name!r}, which is missing or incomplete; restore it, or "
            f"remove {backup} to train this run again from its start (its log.csv and "
            "checkpoints are then replaced)"
        )
    try:
        saved = json.loads(progress_file.read_text())
        progress = Progress(
            epoch=int(saved["epoch"]),
            step=int(saved["step"]),
            global_step=int(saved["global_step"]),
            metrics=saved.get("metrics"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{progress_file}: not a backup's progress ({exc})") from None
    return folder, progress


def write_backup(
    run_dir: str | Path, progress: Progress, save_weights: Callable[[Path], None]
) -> Path:
    """Write a backup folder ``backup/ckpt-<global step>`` whole, point ``LATEST`` at it and
    remove older ones. ``save_weights(path)`` writes :data:`BACKUP_WEIGHTS` (the caller checks
    free space first). A kill at any moment leaves ``LATEST`` naming a complete backup; a
    staging folder left behind is removed by the next start
    (:func:`avloc.utils.files.remove_stale_temporaries`). Returns the folder."""
    backup = RunDir(run_dir).backup
    name = f"ckpt-{progress.global_step:08d}"
    folder = backup / name
    staging = backup / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_weights(staging / BACKUP_WEIGHTS)
    (staging / BACKUP_PROGRESS).write_text(json.dumps(progress.to_json()))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    atomic_write_bytes(backup / "LATEST", name.encode())
    for old in backup.glob("ckpt-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


# --------------------------------------------------------------------------------------------
# log.csv: one row per epoch, the same after a resume


def keep_log_before(path: str | Path, epoch: int) -> None:
    """Drop ``log.csv`` rows of epochs >= ``epoch``, and any row cut short.

    A run killed after writing an epoch's row but before that epoch's backup trains the epoch
    again when resumed, and writes its row again.
    """
    path = Path(path)
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


def log_last_row(path: str | Path) -> dict[str, float]:
    """The losses of ``log.csv``'s last row (a run resumed after its last epoch trains none)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    last = rows[-1] if rows else {}
    return {k: float(v) for k, v in last.items() if k.startswith("loss")}
