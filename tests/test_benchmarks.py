"""Benchmarks whose pipelines have several parts, run tiny on the CPU: the GPU run
(``python3 -m benchmarks.gpu --dry-run``), heatmap videos and ``avloc train`` end to end.

Timing only is never asserted: the tests check that every part ran and that each number a
report is built from was measured (train step, batch search, data, loader, end-to-end epochs
read back from the run's ``log.csv`` and ``timing.csv``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.large
@pytest.mark.once_per_suite  # the GPU benchmark measures Keras on torch, whatever the suite's
def test_gpu_benchmark_dry_run_measures_every_part(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "torch",
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path / "out"),
         "--work", str(tmp_path / "work"), "--dry-run", "--extra-variants", ""],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert {p["status"] for p in report["parts"].values()} == {"ok"}, report["parts"]
    for precision in ("fp32", "bf16"):
        assert set(report["train_step"][precision]) == {
            "torch",
            "keras-torch",
            "keras-torch-preprocess",
        }
    assert report["largest_batch"]["fits"]["batch"] == 8  # the dry run's --max-batch
    assert report["prepare"]["status"] == "ok" and (tmp_path / "work" / "data" / "train").is_dir()
    assert set(report["loader"]) == {
        f"threads x{n}, noise on{form}" for n in (1, 2) for form in ("", ", on device")
    }
    assert [v["frames"] for v in report["video"]] == [11] * len(report["video"]) != []
    epochs = report["end_to_end"]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert all(e["samples_per_s"] > 0 and e["seconds"] > 0 for e in epochs)
    assert report["end_to_end"]["ratio_to_step_alone"] > 0
    more = report["end_to_end_more"]
    assert set(more) == {"EZ-VSL setting, JAX", "SSL-TIE setting, torch"}
    for entry in more.values():  # each trained its epochs (JAX's step alone is not in a dry run)
        assert [e["epoch"] for e in entry["epochs"]] == [0, 1, 2], entry
    text = (tmp_path / "out" / "gpu.md").read_text()
    assert "| keras-torch |" in text and "End to end" in text


def test_video_benchmark_times_every_engine(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "video.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.video", "--model", "tiny",
         "--seconds", "1", "--size", "64x48", "--batch-sizes", "4", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    expected = {"keras", "plain torch"} if os.environ["KERAS_BACKEND"] == "torch" else {"keras"}
    assert {r["engine"] for r in results} == expected
    for r in results:  # 0, 0.1, ..., 1.0 s: 11 frames, and the speed is frames over time
        assert r["frames"] == 11 and r["wall_s"] > 0
        assert r["x_real_time"] == pytest.approx(1.0 / r["wall_s"])


@pytest.mark.large
# its subject is the benchmark's table; `avloc train` runs on every backend elsewhere
@pytest.mark.once_per_suite
def test_train_loop_compares_settings_end_to_end(tmp_path):
    from harness import synthetic_shards

    shards = synthetic_shards(tmp_path / "data", train=16, test=2, seed=1) / "train"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "loop.json"
    sets = ["model.embed_dim=16", "model.visual.width=4", 'model.visual.pretrained=""',
            "model.audio.width=4", "data.image_size=32", "data.train_resize=36",
            "train.batch_size=4"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_loop", "--recipe",
         str(ROOT / "recipes" / "quickstart.toml"), "--shards", str(shards), "--epochs", "2",
         "--steps", "2", "--repeats", "1", "--json", str(out),
         *[a for s in sets for a in ("--set", s)]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["data.preprocess_on_device=false", "data.preprocess_on_device=true"]
    for entry in results.values():
        assert entry["status"] == ["ok"] and entry["median"] > 0
    assert results["data.preprocess_on_device=false"]["ratio_to_first"] == 1.0
