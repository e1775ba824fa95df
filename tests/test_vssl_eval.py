"""``avloc eval --protocol vssl_eval`` against a naive re-implementation of vssl_eval's rules.

The reference (tests/vssl_reference.py) follows xavijuanola/vssl_eval's code
(``datasets/datasets*.py``, ``eval.py``, ``utils_dir/``) line by line with scipy, torch and
sklearn: its spectrograms, rolls and crops, silence and noise without the log, ``cv2``-style
(half-pixel) and aligned-corner upsampling, the per-sample median and adaptive thresholds,
``cal_CIOU``, ``compute_AUC`` / ``compute_AUC_pIA`` and the F-scores. Only the network forward is
avloc's (tested against plain torch elsewhere). Here: which family's rules a network gets, and
the protocol end to end; avloc's pieces of the rules: tests/test_vssl_eval_rules.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from harness import QUICKSTART, TINY_NET, run_avloc, synthetic_shards
from vssl_reference import SEEDS, reference_metrics

from avloc.evaluation import vssl_eval as rules

# --------------------------------------------------------------------------------------------
# the family whose rules a network gets


def tiny_network(arch: str):
    """avloc's own tiny network of architecture ``arch``, built from a recipe."""
    from avloc.config import load_recipe
    from avloc.models import build_network

    lvs = ["model.arch=lvs", "model.visual.last_stride=1", "model.embed_dim=32"]
    recipe = load_recipe(QUICKSTART, [*TINY_NET, *(lvs if arch == "lvs" else [])])
    return build_network(recipe.model, recipe.data)


def test_the_family_is_what_the_network_records_never_a_guess(tmp_path):
    from avloc.errors import DataError
    from avloc.models.avnet import AudioVisualNet
    from avloc.models.io import load_network, save_network

    # avloc's own networks record their architecture, kept through saving and loading
    for arch in ("ezvsl", "lvs"):
        net = load_network(save_network(tiny_network(arch), tmp_path / f"{arch}.keras"))
        assert net.arch == arch and "published_as" not in net.inputs
        assert rules.family_of(net) is rules.FAMILIES[arch]
    # an imported one records the published model it is: FNAC's layout is EZ-VSL's, its
    # family is not (the layout alone would say ezvsl)
    # SSL-SaN is SSL-TIE's network with SSL-TIE's loader: SSL-TIE's rules
    recorded = {"marginnce": "ezvsl", "sslsan": "ssltie", **{f: f for f in rules.FAMILIES}}
    for published, family in recorded.items():
        net.inputs["published_as"] = published
        assert rules.family_of(net) is rules.FAMILIES[family], published

    def refusal(net, run_arch=None) -> str:
        with pytest.raises(DataError) as raised:
            rules.family_of(net, run_arch)
        assert "\n" not in str(raised.value)
        return str(raised.value)

    net.inputs["published_as"] = "rcgrad"
    assert "no rules for the published model rcgrad" in refusal(net)
    # a network saved before the architecture was recorded: arch "" and no published_as
    old = AudioVisualNet(embed_dim=16, visual={"width": 4}, audio={"width": 4}, name="avnet")
    assert old.arch == "" and "records neither" in refusal(old)
    assert rules.family_of(old, "ezvsl") is rules.FAMILIES["ezvsl"]  # its run's model.arch
    assert "no rules for the architecture resnet50" in refusal(old, "resnet50")
    old.arch = "resnet50"
    assert "no rules for the architecture resnet50" in refusal(old)


# --------------------------------------------------------------------------------------------
# end to end


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 2 s clips: shorter than every family's window, so the rolls and tiling all matter
    folder = tmp_path_factory.mktemp("synthetic")
    return synthetic_shards(folder, train=4, test=6, seed=8, clip_seconds=2.0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The same tiny network as avloc's own (calibrated) and as three published families."""
    import keras

    from avloc.config import load_recipe
    from avloc.models import build_network
    from avloc.models.io import save_network

    keras.utils.set_random_seed(4)
    # no frame (data.inference_border): published networks have none, and vssl_eval's code
    # knows none; the maps stage's frame is tested in tests/test_inference_border.py
    recipe = load_recipe(QUICKSTART, [*TINY_NET, "data.inference_border=0"])
    net = build_network(recipe.model, recipe.data)
    folder = tmp_path_factory.mktemp("ckpt")
    out = {}
    net.calibration = {"uth": 0.1}  # avloc's own network: (0.1 + 1) / 2 on vssl_eval's scale
    out["own"] = save_network(net, folder / "own.keras")
    net.calibration = None
    for family in ("fnac", "lvs", "ssltie"):
        net.inputs["published_as"] = family
        out[family] = save_network(net, folder / f"{family}.keras")
    return out


# the protocol's rules are numpy; the maps on both backends are compared in
# tests/test_evaluation_network.py
@pytest.mark.once_per_suite
def test_vssl_eval_protocol_equals_the_naive_reimplementation(data, checkpoints, tmp_path):
    from avloc.models.io import load_network

    out = tmp_path / "eval"
    args = ["eval", "--protocol", "vssl_eval", "--dataset", str(data / "test"), "--out", str(out)]
    for path in checkpoints.values():
        args += ["--checkpoint", str(path)]
    done = run_avloc(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vssl_eval protocol" in done.stdout and "floor: whole image" in done.stdout
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}
    assert list(rows) == [*checkpoints, "floor: whole image", "floor: centre prior",
                          "floor: random map"]  # fmt: skip
    families = {"own": "ezvsl", "fnac": "fnac", "lvs": "lvs", "ssltie": "ssltie"}
    for name, family in families.items():
        row = rows[name]
        assert row["family"] == family
        uth = 0.55 if name == "own" else rules.PUBLISHED_UTH[family]
        assert row["uth"] == pytest.approx(uth)
        want = reference_metrics(load_network(checkpoints[name]), family, data / "test", uth)
        got = row["metrics"]
        for section in ("0.5", "uth", "median", "adaptive"):
            for key, value in want[section].items():
                assert got[section][key] == pytest.approx(value, abs=1e-3), (name, section, key)
        for key, value in want["F"].items():
            assert got["F"][key] == pytest.approx(value, abs=1e-3), (name, key)
        assert got["extremes"]["positive"]["max_mean"] == pytest.approx(
            want["extremes"]["positive"]["max_mean"], abs=1e-5
        )
    # known by construction: the whole-image map covers every pixel at 0.5
    whole = rows["floor: whole image"]["metrics"]["uth"]
    from avloc.data.shards import ShardSet
    from avloc.metrics import gt_from_boxes_normalized

    boxes = ShardSet(data / "test").read(np.arange(6), ["box"])["box"]
    areas = [gt_from_boxes_normalized(b[None], 224).mean() for b in boxes]
    assert whole["CIoU"] == pytest.approx(np.mean(areas) * 100, abs=1e-6)
    for k in ("silence", "noise", "offscreen"):
        assert whole[f"pIA_{k}"] == 100.0
        assert whole[f"AUC_N_{k}"] == pytest.approx(2.5)  # share(pIA <= t) is 1 only at t = 1


def test_vssl_eval_refuses_what_it_cannot_score(data, checkpoints, tmp_path):
    plain = tmp_path / "plain.keras"
    shutil.copy(checkpoints["own"], plain)
    done = run_avloc("eval", "--protocol", "vssl_eval", "--dataset", str(data / "test"),
                     "--checkpoint", str(plain), "--control", "shuffled")  # fmt: skip
    assert done.returncode == 2 and "--control belongs to avloc's protocol" in done.stderr
    done = run_avloc("eval", "--protocol", "vssl", "--dataset", str(data / "test"),
                     "--checkpoint", str(plain))  # fmt: skip
    assert done.returncode == 2 and "expected one of avloc, vssl_eval" in done.stderr


def test_an_older_network_takes_its_runs_arch_and_without_a_run_is_refused(data, tmp_path):
    from avloc.errors import DataError
    from avloc.jobs.evaluate import ModelSource
    from avloc.jobs.evaluate_vssl import evaluate_vssl
    from avloc.models.io import save_network

    net = tiny_network("ezvsl")
    net.arch = ""  # as saved before networks recorded their architecture
    alone = save_network(net, tmp_path / "alone.keras")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(QUICKSTART, run / "recipe.toml")  # model.arch = "ezvsl"
    in_run = save_network(net, run / "model.keras")
    options = dict(uth=0.5, limit=2, floors=False, seeds=SEEDS[:1])

    with pytest.raises(DataError) as raised:
        evaluate_vssl([ModelSource("alone", checkpoint=alone)], data / "test", tmp_path / "a",
                      **options)  # fmt: skip
    message = str(raised.value)
    assert message.startswith(f"{alone}: ") and "records neither" in message
    assert "\n" not in message
    done = evaluate_vssl([ModelSource("run", checkpoint=in_run, run_dir=run)], data / "test",
                         tmp_path / "b", **options)  # fmt: skip
    assert [r["family"] for r in done.rows] == ["ezvsl"]
