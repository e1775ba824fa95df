"""The ``[distribute]`` recipe table and the command line: defaults and errors, one-line errors
for a bad ``--devices``, torch relaunched under torchrun, a run resumed on another device count
(the same recipe), several TensorFlow workers refused.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from avloc.config import load_recipe, recipe_from_dict
from avloc.errors import RecipeError

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()

# ------------------------------------------------------------------------------------------
# Recipe and CLI


def test_distribute_table_defaults_and_errors():
    recipe = recipe_from_dict({})
    assert recipe.distribute.devices == 1 and recipe.distribute.negatives == "global"
    two = recipe_from_dict({"distribute": {"devices": 2, "negatives": "local"}})
    assert two.distribute.devices == 2 and two.distribute.negatives == "local"
    with pytest.raises(RecipeError, match=r"distribute\.gpus: unknown key"):
        recipe_from_dict({"distribute": {"gpus": 2}})
    with pytest.raises(RecipeError, match=r"distribute\.negatives"):
        recipe_from_dict({"distribute": {"negatives": "all"}})
    with pytest.raises(RecipeError, match=r"distribute\.devices: expected a count >= 1"):
        recipe_from_dict({"distribute": {"devices": 0}})
    with pytest.raises(RecipeError, match="does not split evenly over 3 devices"):
        recipe_from_dict({"train": {"batch_size": 8}, "distribute": {"devices": 3}})


@pytest.mark.parametrize(
    "value, message",
    [("0", "distribute.devices: expected a count >= 1"), ("3", "split evenly over 3 devices")],
)
def test_cli_bad_device_count_is_one_line_error(value, message):
    from avloc_cli.main import app

    result = CliRunner().invoke(
        app, ["train", str(ROOT / "recipes" / "quickstart.toml"), "--devices", value]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avloc: error:"), result.output
    assert message in lines[0]


def test_torch_devices_outside_torchrun_is_relaunched(monkeypatch):
    from avloc.runtime import distribute

    monkeypatch.delenv(distribute.TORCHRUN_ENV, raising=False)
    command = distribute.torchrun_command(2, ["train", "r.toml", "--set", "x=1"])
    if BACKEND != "torch":
        assert command is None
        return
    assert command[1:6] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
    ]
    assert command[6:] == ["avloc_cli.main", "train", "r.toml", "--set", "x=1"]
    assert distribute.torchrun_command(1, ["train"]) is None
    monkeypatch.setenv(distribute.TORCHRUN_ENV, "run")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distribute.torchrun_command(2, ["train"]) is None  # a worker already


def test_resume_on_another_device_count_is_the_same_recipe(tmp_path):
    from avloc.config import save_recipe
    from avloc.jobs.train import check_run_dir

    recipe = load_recipe(ROOT / "recipes" / "quickstart.toml")
    save_recipe(recipe, tmp_path / "recipe.toml")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "LATEST").write_text("ckpt-00000004")  # a run with progress
    check_run_dir(
        tmp_path, load_recipe(ROOT / "recipes" / "quickstart.toml", ["distribute.devices=4"])
    )
    with pytest.raises(Exception, match="different recipe"):
        check_run_dir(
            tmp_path,
            load_recipe(ROOT / "recipes" / "quickstart.toml", ['distribute.negatives="local"']),
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow engine")
def test_several_tensorflow_workers_are_refused_in_one_line(monkeypatch):
    from avloc.config import DistributeConfig
    from avloc.errors import AvlocError
    from avloc.runtime import distribute

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}}')
    with pytest.raises(AvlocError, match="use torch .* or JAX"):
        distribute.setup(DistributeConfig(), batch_size=8)
