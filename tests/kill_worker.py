"""``avloc train`` in a process that dies (``os._exit``, as after ``kill -9``) at a chosen point.

    python tests/kill_worker.py POINT RUN_DIR [recipe=PATH] SET [SET ...]

POINT is one of (N counts from 1):

- ``none``: train to the end (a reference run, or the resumption of a killed one);
- ``step:N``: right after optimizer step N and its callbacks (its backup, if one was due);
- ``checkpoint:N``: while ``checkpoints/epoch_00N.keras`` is being written (a partial temporary
  file is left behind);
- ``latest:N``: after the N-th backup folder is renamed into place, before ``backup/LATEST``
  names it;
- ``epoch-row:N``: after epoch N's row is in ``log.csv``, before that epoch's backup;
- ``calibration``: during the Uth calibration after the last epoch.

The recipe is the quickstart's (or ``PATH``'s, relative to the repository) with the ``SET``
overrides (``key=value``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KILLED = 137


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(KILLED)


def arm(point: str) -> None:
    import avloc.runs as runs
    import avloc.training.callbacks as callbacks
    from avloc.jobs import train as job

    kind, _, number = point.partition(":")
    n = int(number) if number else 0
    if kind == "step":
        original_step = callbacks.ResumableCheckpoint.on_train_batch_end

        def on_train_batch_end(self, batch, logs=None):
            original_step(self, batch, logs)
            if self.global_step == n:
                die()

        callbacks.ResumableCheckpoint.on_train_batch_end = on_train_batch_end
    elif kind == "checkpoint":
        original_save = callbacks.save_network

        def save_network(net, path):
            path = Path(path)
            if path.name == f"epoch_{n:03d}.keras":
                partial = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(b"PK\x03\x04 cut short")
                die()
            return original_save(net, path)

        callbacks.save_network = save_network
    elif kind == "latest":
        original_write = runs.atomic_write_bytes
        count = [0]

        def atomic_write_bytes(path, data):
            if Path(path).name == "LATEST":
                count[0] += 1
                if count[0] == n:
                    die()
            return original_write(path, data)

        runs.atomic_write_bytes = atomic_write_bytes
    elif kind == "epoch-row":
        original_end = callbacks.ResumableCheckpoint.on_epoch_end

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == n:  # the CSV logger, earlier in the list, has written the row
                die()
            return original_end(self, epoch, logs)

        callbacks.ResumableCheckpoint.on_epoch_end = on_epoch_end
    elif kind == "calibration":
        job.calibrate_after_training = lambda *args, **kwargs: die()
    elif kind != "none":
        raise SystemExit(f"unknown kill point {point!r}")


def main() -> None:
    point, run_dir, *sets = sys.argv[1:]
    from avloc.config import load_recipe
    from avloc.jobs.train import train

    path = ROOT / "recipes" / "quickstart.toml"
    if sets and sets[0].startswith("recipe="):
        path = ROOT / sets.pop(0).removeprefix("recipe=")
    arm(point)
    recipe = load_recipe(path, sets)
    train(recipe, run_dir, verbose=0)


if __name__ == "__main__":
    main()
