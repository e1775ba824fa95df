"""The run directory: its layout (one place), and the network behind ``--run`` / ``--checkpoint``.

Layout that ``avloc train`` writes (:mod:`avloc.jobs.train`)::

    recipe.toml            the resolved recipe (overrides applied)
    meta.json              backend, versions, git commit, progress, outputs
    log.csv                one row per epoch: loss and every loss_<term> (the same after a resume)
    timing.csv             one row per epoch trained: seconds and samples/s
    tensorboard/           TensorBoard event files (train.tensorboard)
    checkpoints/epoch_NNN.keras   the network after each epoch (atomic writes)
    backup/LATEST          name of the newest complete backup directory
    backup/ckpt-NNNNNNNN/  task + optimizer weights and progress.json {epoch, step, global_step}
    model.keras            the final network (load with avloc.models.io.load_network)

Readers (eval, localize, reproduce) use :class:`RunDir` and :func:`model_file`, so a missing
or unfinished run gives the same one-line error everywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avloc.errors import AvlocError, DataError


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

        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")
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
        """``model.keras``; a one-line DataError when the directory or the file is missing."""
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

    Exactly one of the two must be given. Raises a one-line :class:`AvlocError` otherwise, or
    when the file is missing.
    """
    if (run_dir is None) == (checkpoint is None):
        raise AvlocError("give the model with exactly one of --run DIR or --checkpoint FILE")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise DataError(f"{path}: no such checkpoint file")
        return path
    return RunDir(run_dir).finished_model()
