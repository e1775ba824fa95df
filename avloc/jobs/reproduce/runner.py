"""Runs a miniature reproduction: prepare scenes -> train every job -> record its test maps.

Work folder (``work``, resumable: finished steps are kept and skipped on the next call)::

    data/train, data/test      synthetic shards (``avloc prepare synthetic``)
    data/visual_trunk.pth      the pretrained visual trunk (``avloc pretrain``) every job loads
    runs/<job>/                a normal ``avloc train`` run folder (model.keras, log.csv, ...)
    runs/<job>/train.log       what training printed
    samples/<job>.npz          per-sample records of the test set (``avloc eval --samples``)
    samples/<job>.maxima.npz   silence / noise / other-clip map maxima (raw cosine) on the
                               calibration images, so Uth can be recomputed with any
                               statistic and calibration audio
    jobs.json                  per job: rows, seconds spent, when it finished

Jobs run ``jobs`` at a time in fresh worker processes (spawned, so each sets its own thread
count before a framework starts: ``threads`` per worker, default ``cores // jobs``); with
``jobs=1`` they run in this process. Two single-threaded workers train these small networks
faster than one two-threaded process on 2 cores. Interrupting loses at most the steps since the
last backup of each running job (``train.backup_every_steps``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from avloc.config import CALIBRATION_AUDIO, Recipe
from avloc.jobs.reproduce.plan import Budget, Job
from avloc.runs import RunDir
from avloc.utils.files import atomic_path, atomic_write_json

#: Conditions recorded for every job: the three negatives and the shuffled-audio control.
CONTROL = "shuffled"


def prepare_data(data_dir: Path, budget: Budget, progress: Callable[[int], None] | None = None):
    """The synthetic scenes every row trains and is tested on (kept if already complete)."""
    from avloc.data.prepare_synthetic import prepare_synthetic

    return prepare_synthetic(
        data_dir,
        train=budget.train_samples,
        test=budget.test_samples,
        seed=budget.data_seed,
        progress=progress,
    )


def pretrain_trunk(data_dir: Path, budget: Budget) -> Path:
    """The visual trunk every twin starts from (``avloc pretrain``), kept if already made."""
    from avloc.jobs.pretrain import load_pretrain_recipe, pretrain
    from avloc.jobs.reproduce.plan import TRUNK_NAME, TRUNK_RECIPE, trunk_overrides

    recipe = load_pretrain_recipe(TRUNK_RECIPE, trunk_overrides(budget))
    out = data_dir / TRUNK_NAME
    with open(data_dir / "pretrain.log", "a") as log, contextlib.redirect_stdout(log):
        pretrain(recipe, out, verbose=2)
    return out


def set_threads(threads: int) -> None:
    """Limit this process's compute threads (call before torch or TensorFlow starts)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def _limit_framework_threads(threads: int) -> None:
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(threads)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # already initialised: keep its setting
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)


def training_finished(run_dir: Path, recipe: Recipe) -> bool:
    meta = RunDir(run_dir).meta
    if not RunDir(run_dir).model.is_file() or not meta.is_file():
        return False
    return json.loads(meta.read_text()).get("epochs_done") == recipe.train.epochs


def run_job(recipe: Recipe, run_dir: Path, samples: Path, threads: int | None) -> float:
    """Train (or resume) one job and record its test maps; returns the seconds it took."""
    from avloc.data.shards import ShardSet
    from avloc.jobs.train import check_run_dir, train
    from avloc.maps.calibration import calibration_indices, negative_maxima
    from avloc.maps.records import collect_records, save_records
    from avloc.models.io import load_network

    if threads:
        _limit_framework_threads(threads)
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, recipe)  # a finished run of another recipe is never reused
    with open(run_dir / "train.log", "a") as log, contextlib.redirect_stdout(log):
        if not training_finished(run_dir, recipe):
            train(recipe, run_dir, verbose=2)
        maxima_path = maxima_file(samples)
        net = None
        if not samples.is_file() or not maxima_path.is_file():
            net = load_network(RunDir(run_dir).model)
        if not samples.is_file():
            records = collect_records(
                net,
                ShardSet(recipe.data.test),
                batch_size=recipe.eval.batch_size,
                seed=0,
                control=CONTROL,
            )
            records.meta = {
                "model": run_dir.name,
                "checkpoint": str(RunDir(run_dir).model),
                "dataset": "synthetic",
                "shards": recipe.data.test,
                "uth": net.uth,
                "calibration": net.calibration,
                "seed": 0,
            }
            save_records(records, samples)
        if not maxima_path.is_file():
            # the same images and noise as the calibration at the end of training
            train_shards = ShardSet(recipe.data.train)
            indices = calibration_indices(len(train_shards), recipe.eval.calibration_samples)
            maxima = negative_maxima(
                net,
                train_shards,
                indices,
                seed=recipe.seed,
                batch_size=recipe.eval.batch_size,
                conditions=CALIBRATION_AUDIO,
            )
            with atomic_path(maxima_path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **maxima)
    return time.perf_counter() - start


def maxima_file(samples: Path) -> Path:
    return samples.with_name(samples.name.replace(".npz", ".maxima.npz"))


def load_maxima(samples: Path) -> dict[str, np.ndarray]:
    with np.load(maxima_file(samples), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _worker_init(threads: int) -> None:
    set_threads(threads)


def run_jobs(
    jobs: list[Job],
    work: Path,
    *,
    workers: int = 1,
    threads: int | None = None,
    on_done: Callable[[Job, float], None] | None = None,
) -> dict[str, float]:
    """Run every job (skipping finished ones); returns seconds per job key."""
    ledger_path = work / "jobs.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}

    def finish(job: Job, seconds: float) -> None:
        ledger[job.key] = {**job.to_dict(), "seconds": seconds, "finished": time.time()}
        atomic_write_json(ledger_path, ledger)
        if on_done:
            on_done(job, seconds)

    def paths(job: Job) -> tuple[Path, Path]:
        return work / "runs" / job.key, work / "samples" / f"{job.key}.npz"

    from avloc.jobs.train import check_run_dir

    for job in jobs:  # finished runs of other recipes (a changed twin, other --set) stop here
        if RunDir(paths(job)[0]).recipe.is_file():
            check_run_dir(paths(job)[0], job.recipe)
    todo = [j for j in jobs if not (maxima_file(paths(j)[1]).is_file() and j.key in ledger)]
    for job in jobs:
        if job not in todo and on_done:
            on_done(job, ledger[job.key]["seconds"])
    if workers <= 1:
        for job in todo:
            finish(job, run_job(job.recipe, *paths(job), threads))
        return {k: v["seconds"] for k, v in ledger.items()}
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads,),
    ) as pool:
        futures = {pool.submit(run_job, j.recipe, *paths(j), threads): j for j in todo}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    return {k: v["seconds"] for k, v in ledger.items()}
