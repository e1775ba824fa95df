"""Data-parallel training (``[distribute]``, avloc.runtime.distribute) on every engine, on 2 CPU
cores.

Engine tests run real training (``avloc.jobs.train.train`` via tests/distribute_worker.py) for one
step in fresh processes and compare a two-device run with a one-device run on the same global
batch: the loss (and every logged term) and the optimizer's state after the step, which for
Adam is ``m = (1 - beta_1) g`` and ``v = (1 - beta_2) g^2``, i.e. the gradient the engine
handed to the optimizer. Batch norm runs in inference mode there (``--frozen-batch-norm``):
torch and TensorFlow compute its statistics per device (avloc.runtime.distribute), which a
one-device
run cannot reproduce. JAX's one program normalises over the global batch, so its test keeps
batch norm training.

- torch: ``torchrun --nproc_per_node 2`` (gloo); a per-device-negatives run as the control
  (its gradients must differ), and a run killed after its first backup then resumed.
- TensorFlow: ``MirroredStrategy`` over two logical CPU devices (set before TensorFlow starts).
- JAX (run once, in the TensorFlow pass; skipped without jax):
  ``keras.distribution.DataParallel`` with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.

Fast checks in this process: the loader's row slices are rows of the global batch. Loss terms
with gathered global negatives: tests/test_distribute_losses.py; the recipe table and the CLI's
errors: tests/test_distribute_recipe.py.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from avloc.data.loader import TrainBatches
from avloc.data.shards import ShardSet

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distribute_worker.py"
BACKEND = keras.backend.backend()
GRADIENT_RTOL = 1e-3  # of each variable's largest |value|; measured: 2e-5 torch, 2e-6 TF, 1e-4 JAX

# ------------------------------------------------------------------------------------------
# Loader: a process's rows are rows of the global batch


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=16, test=0, seed=3, clip_seconds=1.0) / "train"


def test_loader_rows_are_rows_of_the_global_batch(shards):
    common = dict(batch_size=8, seed=4, image_size=32, train_resize=36, with_noise=True)
    whole = TrainBatches(ShardSet(shards), **common)
    for rows in [(0, 4), (4, 8), (2, 6)]:
        part = TrainBatches(ShardSet(shards), rows=rows, **common)
        for batch in (0, 1):
            a, b = whole.make_batch(1, batch), part.make_batch(1, batch)
            for key in ("image", "audio", "noise"):
                np.testing.assert_array_equal(b[key], a[key][rows[0] : rows[1]], err_msg=key)
    with pytest.raises(ValueError, match="not a part of a batch"):
        TrainBatches(ShardSet(shards), rows=(4, 9), **common)


# ------------------------------------------------------------------------------------------
# Engines: two devices against one, in fresh processes


def run_worker(
    shards: Path,
    run_dir: Path,
    *args: str,
    launcher: list[str] | None = None,
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    command = [*(launcher or [sys.executable]), str(WORKER), "--shards", str(shards)]
    command += ["--run-dir", str(run_dir), *args]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", **(env or {}))
    done = subprocess.run(
        command, env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


def torchrun(devices: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone"] + [
        f"--nproc_per_node={devices}"
    ]


def logged(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


def backup_state(run_dir: Path) -> dict[str, np.ndarray]:
    name = (run_dir / "backup" / "LATEST").read_text().strip()
    out: dict[str, np.ndarray] = {}
    with h5py.File(run_dir / "backup" / name / "state.weights.h5", "r") as f:
        f.visititems(
            lambda key, item: (
                out.__setitem__(key, np.asarray(item[()], "float64"))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return out


def optimizer_state(run_dir: Path) -> dict[str, np.ndarray]:
    state = {k: v for k, v in backup_state(run_dir).items() if k.startswith("optimizer/")}
    assert len(state) > 10
    return state


def largest_relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(
        float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-12)) for k in a if a[k].size
    )


def assert_same_step(one: Path, two: Path) -> None:
    """Same logged loss terms and the same optimizer state (gradients) after the step."""
    (row_one,), (row_two,) = logged(one), logged(two)  # one row each: one writer
    for key, value in row_one.items():
        if key.startswith("loss"):
            np.testing.assert_allclose(float(row_two[key]), float(value), rtol=1e-5, err_msg=key)
    assert largest_relative_difference(optimizer_state(one), optimizer_state(two)) < GRADIENT_RTOL


def assert_single_writer(run_dir: Path, replicas: int) -> None:
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["devices"]["replicas"] == replicas
    assert (run_dir / "model.keras").is_file()
    leftovers = [p.name for p in run_dir.rglob(".*tmp-*")]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def one_device(shards, tmp_path_factory) -> Path:
    """The reference: one device, one step on the global batch of 8."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    env = {"KERAS_BACKEND": BACKEND}
    run_worker(shards, run_dir, "--frozen-batch-norm", env=env)
    return run_dir


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(BACKEND != "torch", reason="torch engine")
def test_torchrun_two_processes_equal_one_device(shards, one_device, tmp_path):
    run_worker(
        shards,
        tmp_path / "two",
        "--devices=2",
        "--frozen-batch-norm",
        launcher=torchrun(2),
    )
    assert_same_step(one_device, tmp_path / "two")
    assert_single_writer(tmp_path / "two", replicas=2)
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["devices"] == {
        "replicas": 2,
        "processes": 2,
        "engine": "torch.distributed",
        "negatives": "global",
    }


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(BACKEND != "torch", reason="torch engine")
def test_torchrun_local_negatives_give_other_gradients(shards, one_device, tmp_path):
    """The control: per-device negatives are a different loss, so the equality above is real."""
    run_worker(
        shards,
        tmp_path / "local",
        "--devices=2",
        "--negatives=local",
        "--frozen-batch-norm",
        launcher=torchrun(2),
    )
    (reference,), (local,) = logged(one_device), logged(tmp_path / "local")
    assert float(local["loss_ezvsl"]) < float(reference["loss_ezvsl"]) - 0.1  # 4 vs 8 candidates
    np.testing.assert_allclose(  # the per-row terms do not depend on the negatives
        float(local["loss_silence_map"]), float(reference["loss_silence_map"]), rtol=1e-5
    )
    difference = largest_relative_difference(
        optimizer_state(one_device), optimizer_state(tmp_path / "local")
    )
    assert difference > 100 * GRADIENT_RTOL


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(BACKEND != "torch", reason="torch engine")
def test_torchrun_run_killed_after_a_backup_resumes(shards, tmp_path):
    run_dir = tmp_path / "run"
    steps = ["--set=train.steps_per_epoch=2", "--set=train.backup_every_steps=1"]
    killed = run_worker(
        shards,
        run_dir,
        "--devices=2",
        "--stop-after-backup",
        *steps,
        launcher=torchrun(2),
        check=False,
    )
    assert killed.returncode != 0
    progress = json.loads(next((run_dir / "backup").glob("ckpt-*/progress.json")).read_text())
    counters = {key: progress[key] for key in ("epoch", "step", "global_step")}
    assert counters == {"epoch": 0, "step": 1, "global_step": 1}
    assert "loss" in progress["metrics"]  # the epoch's loss sums so far, for its log row
    assert not (run_dir / "log.csv").exists() or not logged(run_dir)
    run_worker(shards, run_dir, "--devices=2", *steps, launcher=torchrun(2))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["resumed_from"] == {"epoch": 0, "step": 1, "global_step": 1}
    assert [row["epoch"] for row in logged(run_dir)] == ["0"]
    final = json.loads(next((run_dir / "backup").glob("ckpt-*/progress.json")).read_text())
    assert final == {"epoch": 1, "step": 0, "global_step": 2}
    assert_single_writer(run_dir, replicas=2)


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow engine")
def test_mirrored_strategy_on_two_cpu_devices_equals_one_device(shards, one_device, tmp_path):
    env = {"KERAS_BACKEND": "tensorflow", "AVLOC_TEST_CPU_DEVICES": "2"}
    run_worker(shards, tmp_path / "two", "--devices=2", "--frozen-batch-norm", env=env)
    assert_same_step(one_device, tmp_path / "two")
    assert_single_writer(tmp_path / "two", replicas=2)
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["devices"]["engine"] == "tf.distribute"


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@pytest.mark.skipif(BACKEND != "tensorflow", reason="run once per suite, in the TensorFlow pass")
def test_keras_data_parallel_on_two_jax_devices_equals_one_device(shards, tmp_path):
    env = {
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),  # the runs share compilations
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    jit = "--set=train.jit_compile=true"
    run_worker(shards, tmp_path / "one", jit, env=env)  # batch norm training: global on JAX
    run_worker(shards, tmp_path / "two", "--devices=2", jit, env=env)
    assert_same_step(tmp_path / "one", tmp_path / "two")
    assert_single_writer(tmp_path / "two", replicas=2)
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["devices"]["engine"] == "keras.distribution"
