"""The commands are thin: each parses its options and hands them to one job function.

Every test patches the job function, runs the command in-process (Typer's runner) and checks
exactly what the command passed on, so a flag that is parsed but dropped fails here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import QUICKSTART, TINY_NET
from typer.testing import CliRunner

from avloc_cli.main import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_train_passes_the_recipe_with_every_override_and_the_run_dir(tmp_path, monkeypatch):
    seen = {}

    def fake_train(recipe, run_dir):
        seen.update(recipe=recipe, run_dir=run_dir)
        return SimpleNamespace(
            writer=True, epochs_done=3, run_dir=Path(run_dir), model_path=Path(run_dir) / "m"
        )

    monkeypatch.setattr("avloc.jobs.train.train", fake_train)
    sets = [arg for value in [*TINY_NET, "train.epochs=3"] for arg in ("--set", value)]
    result = invoke("train", str(QUICKSTART), "--run-dir", str(tmp_path / "run"), *sets)
    assert result.exit_code == 0, result.output
    assert seen["run_dir"] == tmp_path / "run"
    recipe = seen["recipe"]
    assert recipe.name == "quickstart" and recipe.train.epochs == 3
    assert recipe.model.visual.width == 4 and recipe.model.visual.pretrained == ""
    assert recipe.data.image_size == 32 and recipe.model.embed_dim == 16
    assert "Trained 'quickstart' for 3 epochs." in result.output


def test_eval_calibrate_passes_every_calibration_option(tmp_path, monkeypatch):
    from avloc.jobs import evaluate as ev

    checkpoint = tmp_path / "net.keras"
    checkpoint.write_bytes(b"not read: the job is patched")
    seen = {}

    def fake_calibrate(source, **kw):
        seen.update(source=source, **kw)
        return {"uth": 0.25, "statistic": kw["statistic"], "samples": 7, "audio": ["other"]}

    monkeypatch.setattr(ev, "calibrate_checkpoint", fake_calibrate)
    result = invoke(
        "eval",
        "--calibrate",
        "--checkpoint",
        str(checkpoint),
        "--calibration-data",
        str(tmp_path / "shards"),
        "--calibration-samples",
        "7",
        "--uth-statistic",
        "p90",
        "--calibration-audio",
        "silence, other",
        "--seed",
        "5",
        "--batch-size",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert seen["source"].checkpoint == checkpoint
    assert seen["data"] == tmp_path / "shards" and seen["samples"] == 7
    assert seen["statistic"] == "p90" and seen["audio"] == ("silence", "other")
    assert seen["seed"] == 5 and seen["batch_size"] == 3
    assert "Uth = 0.2500" in result.output


def test_eval_calibrate_leaves_unset_options_to_the_run(tmp_path, monkeypatch):
    """Unset options reach the job as None, so the run's [eval] and seed decide."""
    from avloc.jobs import evaluate as ev

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"x")
    seen = {}

    def fake_calibrate(source, **kw):
        seen.update(source=source, **kw)
        return {"uth": 0.5, "statistic": "max", "samples": 2, "audio": ["noise"]}

    monkeypatch.setattr(ev, "calibrate_checkpoint", fake_calibrate)
    result = invoke("eval", "--calibrate", "--run", str(run))
    assert result.exit_code == 0, result.output
    assert seen["source"].run_dir == run
    for key in ("data", "samples", "statistic", "audio", "seed"):
        assert seen[key] is None, key


def test_localize_passes_the_pair_threshold_and_outputs(tmp_path, monkeypatch):
    from avloc.jobs import localize as lz

    seen = {}

    class Net:
        inputs = {"image_size": 32, "sample_rate": 16000, "clip_seconds": 1.0}
        uth = 0.3

    def fake_load_cached_model(run_dir=None, checkpoint=None):
        seen["model"] = (run_dir, checkpoint)
        return Net()

    def fake_load_item(item, inputs):
        seen["item"] = item
        return lz.LoadedItem(item, image=None, wave=None, time=None)

    def fake_localize_pair(net, image, wave, uth=None):
        seen["uth"] = uth
        raise lz.AvlocError("stop here: the pair reached the job")

    monkeypatch.setattr(lz, "load_cached_model", fake_load_cached_model)
    monkeypatch.setattr(lz, "load_item", fake_load_item)
    monkeypatch.setattr(lz, "localize_pair", fake_localize_pair)
    image, audio = tmp_path / "a.png", tmp_path / "a.wav"
    result = invoke(
        "localize", str(image), str(audio), "--checkpoint", str(tmp_path / "n.keras"),
        "--uth", "0.125", "--time", "2.5", "-o", str(tmp_path / "out.png"),
    )  # fmt: skip
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen["model"] == (None, tmp_path / "n.keras")
    assert seen["item"].image == image and seen["item"].audio == audio
    assert seen["item"].time == 2.5 and seen["uth"] == 0.125


@pytest.mark.parametrize("command", ["train", "eval", "localize", "prepare", "pretrain"])
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_version_names_the_backend():
    import os

    from avloc import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert (
        result.output.strip()
        == f"avloc {__version__} (Keras backend: {os.environ['KERAS_BACKEND']})"
    )


@pytest.mark.large  # starts a subprocess
def test_the_cli_uses_torch_when_keras_backend_is_unset(tmp_path):
    """Whatever ~/.keras/keras.json says: the command's default backend is torch."""
    import os
    import subprocess
    import sys

    from harness import ROOT

    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(KERAS_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "avloc_cli.main", "--version"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("(Keras backend: torch)")


def test_captions_never_print_equal_numbers_for_different_ones():
    import numpy as np

    from avloc.jobs.localize import Localization

    heat = np.full((4, 4), 0.03412, np.float32)
    quiet = Localization.from_map(heat, 0.03418)
    assert quiet.caption() == "no sounding object found (max 0.0341 < Uth 0.0342)"
    loud = Localization.from_map(heat, 0.0341)
    assert "max 0.03412 > Uth 0.03410" in loud.caption()
    assert "max 0.500 > Uth 0.250" in Localization.from_map(heat * 0 + 0.5, 0.25).caption()
