"""Visual-trunk pretraining on synthetic objects (avloc.jobs.pretrain, ``avloc pretrain``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from harness import trunk_output
from references import ResNet18
from typer.testing import CliRunner

from avloc.config import recipe_from_dict
from avloc.data.synthetic import make_scene
from avloc.data.synthetic.objects import make_object_image, make_object_images
from avloc.errors import AvlocError, RecipeError
from avloc.jobs.pretrain import PretrainRecipe, from_dict, load_pretrain_recipe, pretrain
from avloc.models import build_network

WIDTH, SIZE = 4, 32
TINY = [
    "data.images=48",
    "data.validation=16",
    f"data.image_size={SIZE}",
    "data.shift=2",
    f"model.visual.width={WIDTH}",
    "train.epochs=1",
    "train.batch_size=16",
]


def tiny_recipe(*extra: str) -> PretrainRecipe:
    from avloc.config import apply_overrides

    return from_dict(PretrainRecipe, apply_overrides({}, [*TINY, *extra]))


@pytest.fixture(scope="module")
def trunk_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("trunk") / "trunk.pth"
    result = pretrain(tiny_recipe(), out, verbose=0)
    return out, result


def test_object_images_are_deterministic_single_objects():
    a, la = make_object_image(5, seed=3, image_size=48)
    b, lb = make_object_image(5, seed=3, image_size=48)
    assert a.dtype == np.uint8 and a.shape == (48, 48, 3) and np.array_equal(a, b) and la == lb
    images, labels = make_object_images(0, 200, seed=3, image_size=24, num_classes=12)
    assert images.shape == (200, 24, 24, 3) and labels.dtype == np.int32
    assert set(labels.tolist()) == set(range(12))  # every class, distractors included
    # never an audio-visual scene: another random stream than the training split's
    scene = make_scene(5, seed=3, split="train")["image"]
    big, _ = make_object_image(5, seed=3, image_size=scene.shape[0])
    assert not np.array_equal(big, scene)


def test_pretrain_writes_a_torchvision_state_dict(trunk_file):
    out, result = trunk_file
    info = json.loads(out.with_name(out.name + ".json").read_text())
    assert info == result.info and info["stem_pool"] is False
    assert 0.0 <= info["validation_accuracy"] <= 1.0
    state = torch.load(out, weights_only=True)
    # a torchvision resnet18 of this width (no stem pool) with a 12-class fc loads it strictly
    reference = ResNet18(3, width=WIDTH, classes=12)
    reference.load_state_dict(state, strict=True)
    assert state["fc.weight"].shape == (12, 8 * WIDTH)


def test_pretrained_trunk_loads_through_the_recipe_with_reference_maps(trunk_file):
    """The same maps on every backend: each backend's trunk equals the plain-torch reference."""
    out, _ = trunk_file
    model = recipe_from_dict(
        {
            "model": {
                "embed_dim": 8,
                "visual": {"width": WIDTH, "stem_pool": False, "pretrained": str(out)},
                "audio": {"width": WIDTH},
            }
        },
    ).model
    net = build_network(model)
    reference = ResNet18(3, width=WIDTH, classes=12)
    reference.load_state_dict(torch.load(out, weights_only=True))
    reference.maxpool = torch.nn.Identity()
    reference = reference.double().eval()
    image = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype("float32")
    with torch.no_grad():
        want = reference(torch.from_numpy(image).double()).numpy()
    got = trunk_output(net, image)
    assert got.shape == want.shape == (2, 8 * WIDTH, SIZE // 16, SIZE // 16)
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_stem_pool_must_match_the_recorded_one(trunk_file):
    out, _ = trunk_file
    model = recipe_from_dict(
        {"model": {"visual": {"width": WIDTH, "stem_pool": True, "pretrained": str(out)}}},
    ).model
    with pytest.raises(RecipeError, match=r"model\.visual\.stem_pool: .* stem_pool = false"):
        build_network(model)


def test_rerun_keeps_the_file_and_another_recipe_is_refused(trunk_file):
    out, first = trunk_file
    before = out.read_bytes()
    again = pretrain(tiny_recipe(), out, verbose=0)
    assert again.reused and out.read_bytes() == before
    with pytest.raises(AvlocError, match="another recipe"):
        pretrain(tiny_recipe("seed=1"), out, verbose=0)


@pytest.mark.large  # starts subprocesses
def test_the_command_reproduces_its_file(tmp_path):
    """Run twice from scratch (fresh processes), ``avloc pretrain`` writes the same weights."""
    import os
    import subprocess
    import sys

    recipe = tmp_path / "trunk.toml"
    recipe.write_text("")
    sums = []
    for name in ("a.pth", "b.pth"):
        args = [
            sys.executable,
            "-m",
            "avloc_cli.main",
            "pretrain",
            str(recipe),
            "--out",
            str(tmp_path / name),
        ]
        for value in TINY:
            args += ["--set", value]
        done = subprocess.run(
            args, capture_output=True, text=True, env=dict(os.environ), timeout=600
        )
        assert done.returncode == 0, done.stderr
        sums.append(json.loads((tmp_path / f"{name}.json").read_text())["content_sha256"])
    assert sums[0] == sums[1]
    a = torch.load(tmp_path / "a.pth", weights_only=True)
    b = torch.load(tmp_path / "b.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_sidecar_written_before_a_field_existed_still_matches():
    """Fields added to the recipe since a trunk was made take their defaults when its sidecar is
    read, so the finished trunk is found, not refused as another recipe's."""
    from avloc.jobs.pretrain import stored_recipe
    from avloc.jobs.reproduce.plan import TRUNK_RECIPE

    recipe = load_pretrain_recipe(TRUNK_RECIPE)
    old = recipe.to_dict()
    for key in ("optimizer", "lr_schedule", "weight_decay_mode"):  # added later
        old["train"].pop(key)
    assert stored_recipe({"recipe": old}) == recipe
    old["train"]["learning_rate"] = 1.0
    assert stored_recipe({"recipe": old}) != recipe
    assert stored_recipe({"recipe": {"train": {"epochz": 1}}}) is None


def test_recipe_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nepochs = 0\n")
    with pytest.raises(
        RecipeError, match=r"^\S*bad\.toml: train\.epochs: must be at least 1, got 0$"
    ):
        load_pretrain_recipe(path)
    path.write_text('[train]\noptimizer = "sgd"\n')  # the training recipes' types and choices
    with pytest.raises(RecipeError, match=r"bad\.toml: train\.optimizer: expected one of"):
        load_pretrain_recipe(path)
    path.write_text("[data]\nclasses = 40\n")
    with pytest.raises(RecipeError, match=r"data\.classes"):
        load_pretrain_recipe(path)
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(RecipeError, match=r"train\.epoch: unknown key"):
        load_pretrain_recipe(path)


def test_shipped_recipe_fits_the_synthetic_twins():
    from avloc.config import load_recipe
    from avloc.jobs.reproduce.plan import RECIPE_DIR, TRUNK_RECIPE

    trunk = load_pretrain_recipe(TRUNK_RECIPE)
    for name in ("sslsan.toml", "ezvsl.toml"):
        twin = load_recipe(RECIPE_DIR / name)
        v = twin.model.visual
        assert (v.width, tuple(v.blocks), v.stem_pool) == (
            trunk.model.visual.width,
            tuple(trunk.model.visual.blocks),
            trunk.model.visual.stem_pool,
        )
        assert twin.data.image_size == trunk.data.image_size
        assert v.pretrained.endswith("visual_trunk.pth")


def test_cli_pretrain(tmp_path):
    from avloc_cli.main import app

    recipe = tmp_path / "trunk.toml"
    recipe.write_text("")
    out = tmp_path / "t.pth"
    args = ["pretrain", str(recipe), "--out", str(out)]
    for value in TINY:
        args += ["--set", value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output and out.is_file()
    result = CliRunner().invoke(app, [*args, "--set", "seed=2"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "another recipe" in result.output
