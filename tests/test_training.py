"""End-to-end training on tiny synthetic shards: logs and cross-backend load.

Resuming after ``kill -9`` is tests/test_resume.py's: every kill point, log and weights compared
bit for bit with an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import QUICKSTART, ROOT, avloc_process, tiny_flags, tiny_recipe

#: This module's settings of a tiny quickstart run (harness.tiny_recipe, harness.tiny_flags).
SETS = ["train.batch_size=8", "train.learning_rate=0.001"]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=48, test=8, seed=3)


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.jax
def test_train_logs_every_term_and_loss_falls(shards, tmp_path):
    from avloc.jobs.train import train

    recipe = tiny_recipe(*SETS, "train.epochs=5", shards=shards)
    result = train(recipe, tmp_path / "run", verbose=0)
    rows = read_log(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    for term in ("ezvsl", "silence_map", "noise_map"):
        assert f"loss_{term}" in rows[0], rows[0].keys()
        assert all(np.isfinite(float(r[f"loss_{term}"])) for r in rows)
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0], losses
    assert result.model_path.is_file()
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["backend"] and meta["epochs_done"] == 5
    assert (tmp_path / "run" / "recipe.toml").is_file()
    assert len(list((tmp_path / "run" / "checkpoints").glob("epoch_*.keras"))) == 5
    from avloc.models.io import load_network

    calibration = load_network(result.model_path).calibration  # Uth stored at the end
    assert calibration["samples"] == 48  # the quickstart's [eval]: p90 of three audio kinds
    assert calibration["statistic"] == recipe.eval.uth_statistic == "p90"
    assert calibration["audio"] == ["silence", "noise", "other"]
    assert calibration["silence_max"]["q1"] <= calibration["uth"]


MAPS_SCRIPT = """
import sys, numpy as np
from avloc.models.io import load_network
from avloc.models import pair_maps
import keras
net = load_network(sys.argv[1])
data = np.load(sys.argv[2])
out = net({"image": data["image"], "audio": data["audio"]})
maps = pair_maps(out["v_map"], out["a_emb"])
as_np = keras.ops.convert_to_numpy
np.savez(sys.argv[3], maps=as_np(maps), v_map=as_np(out["v_map"]), a_emb=as_np(out["a_emb"]))
"""


@pytest.mark.large  # starts subprocesses
@pytest.mark.backend_independent  # both directions run in subprocesses: once is enough
@pytest.mark.parametrize("train_backend,other", [("torch", "tensorflow"), ("tensorflow", "torch")])
def test_model_trained_on_one_backend_gives_same_maps_on_the_other(
    shards, tmp_path, train_backend, other
):
    run_dir = tmp_path / "run"
    args = ["train", str(QUICKSTART), "--run-dir", str(run_dir)]
    args += tiny_flags(*SETS, "train.epochs=1", "train.steps_per_epoch=2", shards=shards)
    proc = avloc_process(*args, backend=train_backend)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    rng = np.random.default_rng(0)
    inputs = tmp_path / "inputs.npz"
    np.savez(
        inputs,
        image=rng.standard_normal((3, 32, 32, 3)).astype("float32"),
        audio=rng.standard_normal((3, 257, 200, 1)).astype("float32"),
    )
    script = tmp_path / "maps.py"
    script.write_text(MAPS_SCRIPT)
    results = {}
    for backend in (train_backend, other):
        out = tmp_path / f"maps_{backend}.npz"
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(
            [sys.executable, str(script), str(run_dir / "model.keras"), str(inputs), str(out)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[backend] = np.load(out)
    for key in ("maps", "v_map", "a_emb"):
        diff = np.abs(results[train_backend][key] - results[other][key]).max()
        assert diff < 1e-4, (key, diff)


def test_cosine_learning_rate_spans_the_whole_run():
    import keras

    from avloc.errors import RecipeError
    from avloc.jobs.train import run_steps
    from avloc.runtime.optimizers import build_optimizer, learning_rate

    recipe = tiny_recipe(*SETS, "train.epochs=3", 'train.lr_schedule="cosine"')
    assert run_steps(recipe, 50) == 3 * (50 // 8)  # the loader's whole batches per epoch
    limited = tiny_recipe(*SETS, "train.epochs=3", "data.limit=20")
    assert run_steps(limited, 50) == 3 * (20 // 8)
    capped = tiny_recipe(*SETS, "train.epochs=2", "train.steps_per_epoch=4")
    assert run_steps(capped, 50) == 8
    schedule = learning_rate(recipe.train, 18)
    lr = recipe.train.learning_rate
    got = [float(keras.ops.convert_to_numpy(schedule(s))) for s in (0, 9, 18)]
    np.testing.assert_allclose(got, [lr, lr / 2, 0.0], atol=1e-9)
    config = build_optimizer(recipe.train, 18).get_config()["learning_rate"]["config"]
    assert config["decay_steps"] == 18
    constant = tiny_recipe(*SETS)
    assert learning_rate(constant.train, None) == constant.train.learning_rate
    with pytest.raises(RecipeError, match="lr_schedule"):
        learning_rate(recipe.train, None)
