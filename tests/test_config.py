"""Recipes: loading, strict validation with one-line errors naming the TOML path, ``--set``
overrides, save/load round trips, and the CLI's handling of user errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from avloc.config import (
    Recipe,
    apply_overrides,
    load_recipe,
    parse_override,
    recipe_from_dict,
    save_recipe,
)
from avloc.errors import AvlocError, RecipeError
from avloc.recipe_checks import check_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
QUICKSTART = ROOT / "recipes" / "quickstart.toml"

MINIMAL = textwrap.dedent(
    """\
    name = "mini"

    [data]
    train = "data/train"
    image_size = 32

    [model.visual]
    width = 4

    [loss.ezvsl]
    tau = 0.05

    [train]
    batch_size = 4
    learning_rate = 1e-3
    """
)


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_and_check(path: Path, overrides: list[str] | None = None):
    """What a job does with a recipe file: parse it, then check it against the stages."""
    return check_recipe(load_recipe(path, overrides), path)


def recipe_error(func, *args, **kwargs) -> str:
    """Call ``func``; it must raise a one-line RecipeError. Return the message."""
    with pytest.raises(RecipeError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message, repr(message)
    return message


# ------------------------------------------------------------------------------------------
# loading


def test_quickstart_loads():
    recipe = load_recipe(QUICKSTART)
    assert isinstance(recipe, Recipe)
    assert recipe.name == "quickstart"
    assert recipe.data.image_size == 112
    assert recipe.model.visual.width == 8 and recipe.model.visual.stem_pool is False
    assert recipe.model.visual.blocks == (2, 2, 2, 2)  # default kept, as a tuple
    assert set(recipe.loss) == {"ezvsl", "silence_map", "noise_map"}
    assert recipe.loss["ezvsl"]["silence_negative"] is True
    assert recipe.train.learning_rate == 1e-3 and isinstance(recipe.train.learning_rate, float)


def test_there_are_recipes():
    assert QUICKSTART in RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_loads_and_round_trips(path, tmp_path):
    recipe = load_recipe(path)
    assert recipe.loss, "a recipe needs at least one loss term"
    save_recipe(recipe, tmp_path / "saved.toml")
    assert load_recipe(tmp_path / "saved.toml") == recipe


def test_defaults_and_minimal_recipe(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.name == "mini"
    assert recipe.data.image_size == 32 and recipe.data.train_resize == 246  # default
    assert recipe.model.embed_dim == 512 and recipe.model.visual.width == 4
    assert recipe.model.audio.width == 64
    assert recipe.loss == {"ezvsl": {"tau": 0.05}}
    assert recipe.train.batch_size == 4 and recipe.train.optimizer == "adam"


def test_int_accepted_for_float(tmp_path):
    recipe = load_recipe(
        write(tmp_path, MINIMAL.replace("learning_rate = 1e-3", "learning_rate = 1"))
    )
    assert recipe.train.learning_rate == 1.0
    assert type(recipe.train.learning_rate) is float
    recipe = load_recipe(write(tmp_path, MINIMAL), ["data.clip_seconds=2"])
    assert type(recipe.data.clip_seconds) is float and recipe.data.clip_seconds == 2.0


@pytest.mark.parametrize(
    "old, new, fragments",
    [
        ("batch_size = 4", "batch_size = 4\nbogus = 1", ["train.bogus: unknown key"]),
        ("[data]", "[data]\nresize = 3", ["data.resize: unknown key", "train_resize"]),
        ("[model.visual]", "[model.visual]\ndepth = 3", ["model.visual.depth: unknown key"]),
        ('name = "mini"', 'name = "mini"\n[extra]\nx = 1', ["extra: unknown key"]),
        ("batch_size = 4", 'batch_size = "a"', ["train.batch_size: expected int"]),
        ("batch_size = 4", "batch_size = 4.0", ["train.batch_size: expected int, got float"]),
        ("batch_size = 4", "batch_size = true", ["train.batch_size: expected int, got bool"]),
        ("learning_rate = 1e-3", 'learning_rate = "fast"', ["train.learning_rate: expected float"]),
        ("image_size = 32", "image_size = [32]", ["data.image_size: expected int, got list"]),
        ("width = 4", "width = 4\nstem_pool = 1", ["model.visual.stem_pool: expected bool"]),
        ("width = 4", 'width = 4\nblocks = [1, "2"]', ["model.visual.blocks[1]: expected int"]),
        ("width = 4", "width = 4\nblocks = 2", ["model.visual.blocks: expected a list"]),
        (
            "batch_size = 4",
            'batch_size = 4\noptimizer = "sgd"',
            ["train.optimizer: expected one of"],
        ),
        ('name = "mini"', "name = 3", ["name: expected str, got int"]),
        ('name = "mini"', 'name = "mini"\neval = 3', ["eval: expected a table, got int"]),
        ("[loss.ezvsl]", "[loss.ezvsl_v2]", ["loss.ezvsl_v2: unknown loss term 'ezvsl_v2'"]),
        ("tau = 0.05", "tau = 0.05\ntemperature = 1.0", ["loss.ezvsl.temperature: unknown key"]),
        ("tau = 0.05", 'tau = "0.05"', ["loss.ezvsl.tau: expected float, got str"]),
        (
            "tau = 0.05",
            "tau = 0.05\nnoise_negative = 1",
            ["loss.ezvsl.noise_negative: expected bool"],
        ),
        ("tau = 0.05", "tau = 0.05\n[loss.silence_map]\nweight = 'x'", ["loss.silence_map.weight"]),
    ],
)
def test_invalid_recipes_name_the_toml_path(tmp_path, old, new, fragments):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    message = recipe_error(load_and_check, path)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_loading_parses_and_the_job_start_checks_the_terms(tmp_path):
    """config only parses: loss terms are checked where they are built (check_recipe)."""
    path = write(tmp_path, MINIMAL.replace("[loss.ezvsl]", "[loss.future_term]"))
    recipe = load_recipe(path)
    assert recipe.loss == {"future_term": {"tau": 0.05}}
    message = recipe_error(check_recipe, recipe, path)
    assert message.startswith(f"{path}: loss.future_term: unknown loss term")
    bad_arch = load_recipe(QUICKSTART, ["model.arch=resnet"])
    assert "model.arch: unknown architecture 'resnet'" in recipe_error(check_recipe, bad_arch)
    bad_uth = load_recipe(QUICKSTART, ["eval.uth_statistic=q5"])
    assert "eval.uth_statistic: 'q5' is not one of" in recipe_error(check_recipe, bad_uth)


def test_unreadable_recipe_files(tmp_path):
    message = recipe_error(load_recipe, tmp_path / "absent.toml")
    assert "absent.toml" in message
    broken = write(tmp_path, "[train\nbatch_size = 4\n", "broken.toml")
    message = recipe_error(load_recipe, broken)
    assert "broken.toml" in message and "invalid TOML" in message
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x81name")
    assert "binary.toml" in recipe_error(load_recipe, binary)
    assert tmp_path.name in recipe_error(load_recipe, tmp_path)  # a directory
    assert issubclass(RecipeError, AvlocError)


# ------------------------------------------------------------------------------------------
# overrides


def test_overrides(tmp_path):
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(
        path,
        [
            "train.batch_size=8",
            "loss.silence_map.weight=0.5",  # creates a new term table
            "loss.ezvsl.silence_negative=true",
            "name=plain words",  # not TOML: kept as a plain string
            'description="quoted = text"',  # TOML string; '=' inside the value
            "model.visual.blocks=[1, 1, 2, 1]",
            "data.train=/some/where/train",
            "train.learning_rate = 5e-4",  # spaces around '='
            "train.batch_size=16",  # the last one wins
        ],
    )
    assert recipe.train.batch_size == 16
    assert recipe.loss["silence_map"] == {"weight": 0.5}
    assert recipe.loss["ezvsl"] == {"tau": 0.05, "silence_negative": True}
    assert recipe.name == "plain words"
    assert recipe.description == "quoted = text"
    assert recipe.model.visual.blocks == (1, 1, 2, 1)
    assert recipe.data.train == "/some/where/train"
    assert recipe.train.learning_rate == 5e-4


def test_parse_override_values():
    assert parse_override("train.batch_size=8") == (["train", "batch_size"], 8)
    assert parse_override("a.b=1e-4") == (["a", "b"], 1e-4)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=[2, 2]") == (["a"], [2, 2])
    assert parse_override('a="x"') == (["a"], "x")
    assert parse_override("a=data/x.h5") == (["a"], "data/x.h5")
    assert parse_override("a=") == (["a"], "")
    raw = apply_overrides({"train": {"epochs": 1}}, ["train.epochs=3", "eval.batch_size=2"])
    assert raw == {"train": {"epochs": 3}, "eval": {"batch_size": 2}}


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("train.batch_size", ["--set train.batch_size", "KEY=VALUE"]),
        ("=8", ["--set =8", "invalid key"]),
        ("train..batch_size=8", ["invalid key"]),
        ("train.=8", ["invalid key"]),
        ("train.batch_size.x=1", ["train.batch_size is not a table"]),
        ("train.batch_size=eight", ["train.batch_size: expected int, got str"]),
        ("train.batch_size=8.0", ["train.batch_size: expected int, got float"]),
        ("train.batchsize=8", ["train.batchsize: unknown key"]),
        ("loss.silence_map.weight=heavy", ["loss.silence_map.weight: expected float"]),
        ("loss.silence_map.lambda=1", ["loss.silence_map.lambda: unknown key"]),
        ("loss.nothing.weight=1", ["loss.nothing: unknown loss term"]),
        ("model.visual.blocks=[1, 1.5]", ["model.visual.blocks[1]: expected int"]),
    ],
)
def test_bad_overrides(tmp_path, override, fragments):
    message = recipe_error(load_and_check, write(tmp_path, MINIMAL), [override])
    for fragment in fragments:
        assert fragment in message


# ------------------------------------------------------------------------------------------
# save / load


def test_save_recipe_round_trip(tmp_path):
    recipe = load_recipe(
        QUICKSTART,
        ["train.batch_size=8", "loss.ezvsl.margin=-0.2", "model.audio.blocks=[1, 1, 1, 1]"],
    )
    out = tmp_path / "out" / "recipe.toml"
    out.parent.mkdir()
    save_recipe(recipe, out)
    again = load_recipe(out)
    assert again == recipe
    assert again.to_dict() == recipe.to_dict()
    assert again.model.audio.blocks == (1, 1, 1, 1)
    assert [p.name for p in out.parent.iterdir()] == ["recipe.toml"]  # atomic, no leftovers
    # saving the re-loaded recipe gives the same bytes
    save_recipe(again, tmp_path / "again.toml")
    assert (tmp_path / "again.toml").read_bytes() == out.read_bytes()


def test_recipe_from_dict_equals_loaded(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe_from_dict(recipe.to_dict()) == recipe
    assert Recipe() == recipe_from_dict({})


# ------------------------------------------------------------------------------------------
# the CLI


def avloc_command() -> list[str]:
    exe = shutil.which("avloc")
    return [exe] if exe else [sys.executable, "-m", "avloc_cli.main"]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "torch")
    return subprocess.run(
        avloc_command() + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


# TensorFlow >= 2.21 writes these absl lines at import, ignoring TF_CPP_MIN_LOG_LEVEL.
TF_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} )")


def stderr_lines(result: subprocess.CompletedProcess, keep_framework_logs: bool = False):
    lines = result.stderr.strip().splitlines()
    if not keep_framework_logs:
        lines = [line for line in lines if not TF_LOG_LINE.match(line)]
    return lines


def assert_cli_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("avloc: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.large  # starts subprocesses
def test_cli_train_unknown_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace("batch_size = 4", "batch_size = 4\nbogus = 1"))
    result = run_cli(["train", str(path), "--run-dir", str(tmp_path / "run")], tmp_path)
    assert_cli_user_error(result, "train.bogus", "recipe.toml")
    assert not (tmp_path / "run").exists()


@pytest.mark.large  # starts subprocesses
def test_cli_train_missing_shards(tmp_path):
    path = write(tmp_path, MINIMAL)
    result = run_cli(
        [
            "train",
            str(path),
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            "data.train=/nonexistent",
        ],
        tmp_path,
    )
    assert_cli_user_error(result, "/nonexistent")
    assert not (tmp_path / "run").exists()


@pytest.mark.large  # starts subprocesses
def test_cli_user_error_is_the_only_stderr_line(tmp_path):
    """The whole stderr is the one error line, framework start-up logs included."""
    path = write(tmp_path, MINIMAL)
    result = run_cli(["train", str(path), "--set", "data.train=/nonexistent"], tmp_path)
    assert result.returncode == 2
    lines = stderr_lines(result, keep_framework_logs=True)
    assert len(lines) == 1 and lines[0].startswith("avloc: error: "), result.stderr


@pytest.mark.large  # starts subprocesses
def test_cli_train_bad_override(tmp_path):
    path = write(tmp_path, MINIMAL)
    result = run_cli(["train", str(path), "--set", "train.batch_size"], tmp_path)
    assert_cli_user_error(result, "train.batch_size", "KEY=VALUE")
    result = run_cli(["train", str(tmp_path / "missing.toml")], tmp_path)
    assert_cli_user_error(result, "missing.toml")


def test_noise_color_is_checked():
    recipe = load_recipe(QUICKSTART, ["data.noise_color=pink"])
    assert recipe.data.noise_color == "pink"
    assert load_recipe(QUICKSTART).data.noise_color == "white"  # the paper's default
    with pytest.raises(RecipeError, match=r"data.noise_color: expected one of .*'pink'"):
        load_recipe(QUICKSTART, ["data.noise_color=blue"])
    from avloc.config import DataConfig
    from avloc.inputs.noise import NOISE_COLORS

    hint = typing.get_type_hints(DataConfig)["noise_color"]
    assert set(typing.get_args(hint)) == set(NOISE_COLORS)  # the recipe's set is the audio's
