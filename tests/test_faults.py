"""Faults and bad input, tried as an adversarial user would: nonsense recipes are refused at load,
one `avloc train` per run directory, a failed start blocks nothing, non-finite losses stop in
one line, and a non-finite Uth is never stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness import QUICKSTART, tiny_recipe

from avloc.config import load_recipe
from avloc.errors import AvlocError, RecipeError
from avloc.jobs.train import train
from avloc.recipe_checks import check_recipe
from avloc.runs import RunDir

#: This module's settings of a tiny quickstart run (harness.tiny_recipe), beside the data.
SETS = [
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "eval.calibration_samples=4",
    "eval.batch_size=4",
]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=12, test=4, seed=3)


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.epochs=-1", "train.epochs: must be at least 1, got -1"),
        ("train.batch_size=0", "train.batch_size: must be at least 1, got 0"),
        ("train.learning_rate=nan", "train.learning_rate: expected a finite number"),
        ("train.learning_rate=-0.1", "train.learning_rate: must be above 0"),
        ("model.visual.width=0", "model.visual.width: must be between 1 and 4096, got 0"),
        ("model.visual.blocks=[]", "model.visual.blocks: must be 1-64 each, got []"),
        ("data.clip_seconds=0", "data.clip_seconds: must be between 0.05 and 600"),
        ("seed=-1", "seed: must be at least 0, got -1"),
        ("eval.calibration_samples=0", "eval.calibration_samples: must be at least 1"),
        ("data.train_resize=20", "data.train_resize: must be at least data.image_size"),
        ("loss.ezvsl.tau=inf", "loss.ezvsl.tau: expected a finite number"),
    ],
)
def test_nonsense_recipe_values_are_refused_before_any_output(override, words):
    """At load (config's ranges), or at job start for loss-term arguments (check_recipe)."""
    with pytest.raises(RecipeError) as info:
        check_recipe(load_recipe(QUICKSTART, [override]), QUICKSTART)
    message = str(info.value)
    assert words in message and "quickstart.toml" in message and "\n" not in message


@pytest.mark.parametrize(
    "override, words",
    [
        ("loss.ezvsl.tau=-0.1", "loss.ezvsl.tau: must be above 0 (a temperature), got -0.1"),
        ("loss.ezvsl.tau=0", "loss.ezvsl.tau: must be above 0 (a temperature), got 0"),
        ("loss.ezvsl.weight=-1", "loss.ezvsl.weight: must be at least 0, got -1"),
        ("loss.silence_map.weight=-0.5", "loss.silence_map.weight: must be at least 0, got -0.5"),
        ("loss.lvs.threshold_tau=0", "loss.lvs.threshold_tau: must be above 0 (a temperature)"),
    ],
)
def test_loss_temperatures_and_weights_are_refused_at_load(override, words):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICKSTART, [override])  # no stage check: the recipe's own ranges
    message = str(info.value)
    assert words in message and "quickstart.toml" in message and "\n" not in message


def test_a_zero_temperature_makes_no_run_dir(tmp_path):
    from typer.testing import CliRunner

    from avloc_cli.main import app

    run = tmp_path / "run"
    argv = ["train", str(QUICKSTART), "--run-dir", str(run), "--set", "loss.ezvsl.tau=0"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "quickstart.toml: loss.ezvsl.tau: must be above 0" in lines[0]
    assert not run.exists()


def test_fewer_samples_than_one_batch_is_one_line_and_makes_no_run_dir(shards, tmp_path):
    with pytest.raises(AvlocError, match="12 training samples, fewer than one batch of"):
        train(tiny_recipe(*SETS, "train.batch_size=16", shards=shards), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_second_train_on_one_run_dir_is_refused_naming_the_first(shards, tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():  # as a running `avloc train` holds it
        with pytest.raises(AvlocError, match=r"in use by another avloc train \(process \d+\)"):
            train(tiny_recipe(*SETS, shards=shards), run.root, verbose=0)
    assert not run.recipe.exists() and not run.backup.exists()


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(shards, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RecipeError, match="model.init"):
        train(
            tiny_recipe(*SETS, f"model.init={tmp_path / 'absent.keras'}", shards=shards),
            run,
            verbose=0,
        )
    result = train(tiny_recipe(*SETS, shards=shards), run, verbose=0)  # the corrected command
    assert result.model_path.is_file()
    # a run that got somewhere is still protected from another recipe
    with pytest.raises(AvlocError, match="holds a run of a different recipe"):
        train(tiny_recipe(*SETS, "train.learning_rate=0.5", shards=shards), run, verbose=0)


def test_a_non_finite_loss_stops_training_in_one_line(shards, tmp_path, monkeypatch):
    from keras import ops

    from avloc.losses.empty_maps import SilenceMap

    monkeypatch.setattr(SilenceMap, "__call__", lambda self, outputs: ops.log(ops.zeros(()) - 1))
    with pytest.raises(AvlocError, match=r"training step 1: loss\S* is nan") as info:
        train(tiny_recipe(*SETS, shards=shards), tmp_path / "run", verbose=0)
    assert "\n" not in str(info.value)
    assert not RunDir(tmp_path / "run").model.exists()
    assert not (RunDir(tmp_path / "run").backup / "LATEST").exists()  # no non-finite backup


def test_a_non_finite_uth_is_never_stored(shards):
    import keras

    from avloc.maps.calibration import calibrate
    from avloc.models import build_network

    recipe = tiny_recipe(*SETS, shards=shards)
    net = build_network(recipe.model, recipe.data)
    kernel = net.visual_proj.kernel
    kernel.assign(np.full(tuple(kernel.shape), np.nan, "float32"))
    keras.utils.set_random_seed(0)
    with pytest.raises(AvlocError, match="calibration maps are not finite"):
        calibrate(net, recipe.data.train, recipe.eval)
    assert net.calibration is None


def test_a_zip_bomb_checkpoint_is_refused_before_unpacking(tmp_path, monkeypatch):
    import zipfile

    from avloc.errors import DataError
    from avloc.models import file_limits, io

    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("model.weights.h5", bytes(16 * 2**20))  # 16 MiB of zeros, ~16 KB packed
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"bomb.keras: member model.weights.h5 unpacks 16 MiB"):
        io.load_network(bomb)
    # The total size is checked too (here with a lower limit than the real 4 GiB).
    monkeypatch.setattr(file_limits, "MAX_UNPACKED_BYTES", 2**20)
    monkeypatch.setattr(file_limits, "MAX_RATIO", 10**9)
    limit = r"bomb.keras: would unpack to 16 MiB \(more than 1 MiB\); refused"
    with pytest.raises(DataError, match=limit):
        io.load_network(bomb)


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    """A folder on a read-only file system: a tmpfs remounted read-only where this process may
    mount (root), else one whose creation and writes fail with EROFS (injected)."""
    import errno
    import os
    import shutil
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "run").mkdir()  # a finished run's directory: what it holds is never read
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                              capture_output=True)  # fmt: skip
        if done.returncode == 0:
            (folder / "run").mkdir()
            (folder / "run" / "model.keras").write_bytes(b"finished")
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            try:
                yield folder
            finally:
                subprocess.run(["umount", str(folder)], capture_output=True)
            return
    (folder / "run" / "model.keras").write_bytes(b"finished")
    real_mkdir, real_open = Path.mkdir, open

    def refuse(path):
        if str(path).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def mkdir(self, *args, **kwargs):
        if not self.exists():
            refuse(self)
        return real_mkdir(self, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr("builtins.open", open_)
    yield folder


@pytest.mark.parametrize("which", ["new", "finished"])
def test_a_run_dir_on_a_read_only_file_system_is_one_line(shards, read_only_folder, which):
    run = read_only_folder / ("new-run" if which == "new" else "run")
    with pytest.raises(AvlocError) as info:
        train(tiny_recipe(*SETS, shards=shards), run, verbose=0)
    message = str(info.value)
    assert message.startswith(f"{run}: cannot write to this run directory (")
    assert "Read-only file system" in message and "\n" not in message
