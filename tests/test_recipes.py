"""Every recipe under ``recipes/`` loads, says how to run it and where its settings come from.

The tree (a recipe per method and ablation row, the miniature's twins), the headers (command,
reported numbers and their source), the twins' objectives, the ablation switches and the paper
settings; ``tests/test_recipes_train.py`` trains every recipe one step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from harness import PRETRAIN_RECIPES, RECIPE_DIR, RECIPE_IDS, TRAINING_RECIPES

from avloc.config import load_recipe

PRETRAIN, RECIPES, IDS = PRETRAIN_RECIPES, TRAINING_RECIPES, RECIPE_IDS
PAPER = [
    "ezvsl.toml", "marginnce.toml", "fnac.toml", "lvs.toml", "ssltie.toml", "sslsan.toml",
    "ezvsl_san.toml",
]  # fmt: skip
#: Paper recipe -> its synthetic twin (the miniature at quickstart size).
TWINS = {
    "ezvsl.toml": "synthetic/ezvsl.toml",
    "marginnce.toml": "synthetic/marginnce.toml",
    "fnac.toml": "synthetic/fnac.toml",
    "lvs.toml": "synthetic/lvs.toml",
    "ssltie.toml": "synthetic/ssltie.toml",
    "sslsan.toml": "synthetic/sslsan.toml",
    "ezvsl_san.toml": "synthetic/ezvsl_san.toml",
}
ABLATION = {  # the SSL-SaN paper's ablation table: file -> (S, N, L_S, L_N)
    "1_none.toml": (False, False, False, False),
    "2_s.toml": (True, False, False, False),
    "3_s_ls.toml": (True, False, True, False),
    "4_n.toml": (False, True, False, False),
    "5_n_ln.toml": (False, True, False, True),
    "6_s_n.toml": (True, True, False, False),
    "7_s_n_ls_ln.toml": (True, True, True, True),
}
FULL_SIZE = PAPER + [f"ablation/{name}" for name in ABLATION]


def rel(path: Path) -> str:
    return path.relative_to(RECIPE_DIR).as_posix()


# ------------------------------------------------------------------------------------------
# the recipe tree and its headers


def test_every_method_and_ablation_row_has_a_recipe_and_the_miniature_its_twins():
    names = set(IDS)
    assert "quickstart.toml" in names
    for name in FULL_SIZE:
        assert name in names, name
    for paper, twin in TWINS.items():
        assert paper in names and twin in names, (paper, twin)
    for folder in ("ablation", "synthetic/ablation"):
        rows = {
            n for n in names if n.startswith(f"{folder}/") and n.count("/") == folder.count("/") + 1
        }
        assert rows == {f"{folder}/{a}" for a in ABLATION}


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_header_names_its_command_and_results(path):
    lines = path.read_text().splitlines()
    assert lines[0] == f"# avloc train recipes/{rel(path)}"
    header = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert len(header) >= 3, "a recipe explains itself in its header"
    if rel(path) in FULL_SIZE:
        assert "Reported" in text and " paper" in text, "the paper's numbers and their source"
    load_recipe(path)  # and it is a valid recipe


def test_pretraining_recipe_header_names_its_command():
    from avloc.jobs.pretrain import load_pretrain_recipe

    for path in PRETRAIN:
        first = path.read_text().splitlines()[0]
        assert first.startswith(f"# avloc pretrain recipes/{rel(path)} --out ")
        load_pretrain_recipe(path)


#: What a twin may change: the warm-up length (a shorter run), the temperatures (0.1 in both
#: families at width 8: the EZ-VSL paper's 0.03 sat at chance from scratch and, with the
#: pretrained trunk, keeps the silence/noise maps as high as the positives; SSL-TIE's 0.07 is
#: 0.1 in its twins, section 10), the empty-map
#: weights lambda_S, lambda_N (0.1, where the paper's 1 holds a run at chance or keeps it from
#: listening), and FNAC's term weights and visual dropout (1 and 0, where the published 100 and
#: 0.9 keep it at chance); see docs/results/synthetic-notes.md (sections 1, 5, 6, 9 and 10).
#: Twins and quickstart start the visual trunk from the synthetic pretraining, the paper recipes
#: from ImageNet (EZ-VSL's family) or from scratch (SSL-TIE's; section 10 has the runs).
TWIN_MAY_CHANGE = ("start_epoch", "tau")
#: The SSL-TIE family's twins train on crop and flip without SpecAugment, where the paper
#: recipes use moco_v2 and SpecAugment: with them, 12 epochs of the miniature localize but hardly
#: listen (Sep 0.16-0.24 over seeds 0-2); without them every seed learns to listen
#: (synthetic-notes.md, 10.2). Front end -> the twins' (image_augment, spec_augment).
TWIN_AUGMENTATION = {"mel_db": ("crop_flip", 0.0)}
EMPTY_MAP_TERMS = ("silence_map", "noise_map")
TWIN_EMPTY_MAP_WEIGHT = 0.1
FNAC_TERMS = ("fnac_fns1", "fnac_fns2", "fnac_tne")
TWIN_FNAC_WEIGHT = 1.0
TWIN_WEIGHTED_TERMS = EMPTY_MAP_TERMS + FNAC_TERMS  # their weights are set below
#: The twins of a family share data, model size and schedule: SSL-TIE's (mel front end,
#: moco_v2, SpecAugment, 14 x 14 maps) and EZ-VSL's (log power spectrogram, crop and flip).
FAMILY = {"mel_db": "synthetic/sslsan.toml", "log_psd": "synthetic/ezvsl_san.toml"}


def family_twin(paper):
    return load_recipe(RECIPE_DIR / FAMILY[paper.data.audio_frontend])


def objective(recipe) -> dict:
    """What a synthetic twin must share with its paper recipe."""
    loss = {
        name: {
            k: v
            for k, v in kwargs.items()
            if k not in TWIN_MAY_CHANGE and not (name in TWIN_WEIGHTED_TERMS and k == "weight")
        }
        for name, kwargs in recipe.loss.items()
    }
    t = recipe.train
    return {
        "loss": loss,
        "arch": recipe.model.arch,
        "visual_dropout": recipe.model.visual_dropout > 0,
        "last_stride": recipe.model.visual.last_stride,
        "optimizer": (t.optimizer, t.weight_decay, t.weight_decay_mode),
    }


@pytest.mark.parametrize("name", list(TWINS))
def test_synthetic_twin_has_the_same_objective_at_quickstart_size(name):
    paper = load_recipe(RECIPE_DIR / name)
    twin = load_recipe(RECIPE_DIR / TWINS[name])
    family = family_twin(paper)
    twin_objective = objective(twin)
    if name == "fnac.toml":  # the one twin without dropout (see TWIN_MAY_CHANGE)
        assert paper.model.visual_dropout == 0.9 and twin.model.visual_dropout == 0.0
        twin_objective["visual_dropout"] = True
    assert twin_objective == objective(paper)
    if twin.model.arch == "ezvsl":  # the reproduced family: one temperature, 0.1, everywhere
        assert {kw["tau"] for kw in twin.loss.values() if "tau" in kw} == {0.1}
    if paper.data.audio_frontend == "mel_db":  # SSL-TIE's 0.07 is the EZ-VSL twins' 0.1
        assert (paper.loss["lvs"]["tau"], twin.loss["lvs"]["tau"]) == (0.07, 0.1)
    for name in EMPTY_MAP_TERMS:
        if name in paper.loss:
            assert paper.loss[name]["weight"] == 1.0
            assert twin.loss[name]["weight"] == TWIN_EMPTY_MAP_WEIGHT
    for name in FNAC_TERMS:
        if name in paper.loss:
            assert paper.loss[name]["weight"] == 100.0
            assert twin.loss[name]["weight"] == TWIN_FNAC_WEIGHT
    for kwargs_paper, kwargs_twin in zip(paper.loss.values(), twin.loss.values(), strict=True):
        # a warm-up stays a warm-up (a shorter one for the shorter run)
        assert (kwargs_paper.get("start_epoch", 0) > 0) == (kwargs_twin.get("start_epoch", 0) > 0)
        assert kwargs_twin.get("start_epoch", 0) < twin.train.epochs
    # the twins feed their models as the paper's evaluation does, without a frame
    assert twin.data == family.data and twin.data.inference_border == 0
    # the same input pipeline as the paper recipe, at the synthetic clips' length (the SSL-TIE
    # family's augmentations aside: TWIN_AUGMENTATION)
    d, p = twin.data, paper.data
    augmentation = TWIN_AUGMENTATION.get(p.audio_frontend, (p.image_augment, p.spec_augment))
    assert (d.audio_frontend, d.image_augment, d.spec_augment, d.spec_freq_mask) == (
        p.audio_frontend, *augmentation, p.spec_freq_mask
    )  # fmt: skip
    assert d.spec_time_mask == round(p.spec_time_mask * d.clip_seconds / p.clip_seconds)
    # the paper recipes start the visual trunk from ImageNet (a user's file) or from scratch,
    # the twins from its synthetic stand-in (avloc pretrain recipes/synthetic/visual_trunk.toml)
    assert twin.model.visual.pretrained == "data/synthetic/visual_trunk.pth"
    assert paper.model.visual.pretrained == ""
    v, f = twin.model.visual, family.model.visual
    assert (v.width, v.stem_pool, v.blocks) == (f.width, f.stem_pool, f.blocks)
    assert twin.model.audio == family.model.audio
    assert (twin.train.epochs, twin.train.batch_size, twin.train.learning_rate) == (
        family.train.epochs,
        family.train.batch_size,
        family.train.learning_rate,
    )
    # paper size: ResNet-18 at width 64, 224 px (docs/method.md)
    assert paper.model.visual.width == 64 and paper.model.audio.width == 64
    assert paper.model.visual.blocks == (2, 2, 2, 2) and paper.data.image_size == 224
    if paper.data.audio_frontend == "mel_db":  # SSL-TIE's schedule
        assert (paper.train.batch_size, paper.train.learning_rate) == (32, 1e-4)
    else:  # EZ-VSL's: global batch 128
        assert (paper.train.batch_size, paper.train.learning_rate) == (128, 1e-4)


def test_the_quickstart_is_a_twin_framed_with_half_a_stride():
    """The quickstart trains one twin's recipe; only its test-time frame differs (docs/method.md,
    "Where the map is drawn")."""
    quick = load_recipe(RECIPE_DIR / "quickstart.toml")
    same = [
        twin
        for twin in (load_recipe(RECIPE_DIR / f) for f in FAMILY.values())
        if objective(twin) == objective(quick)
    ]
    assert len(same) == 1
    twin = same[0]
    assert quick.loss == twin.loss and quick.model == twin.model and quick.train == twin.train
    border = quick.data.inference_border
    assert quick.data == dataclasses.replace(twin.data, inference_border=border)
    assert quick.eval == twin.eval


def test_ablation_rows_differ_only_in_their_switches():
    """SSL-TIE's lvs term and equivariance (recipes/sslsan.toml) with the four switches, in the
    paper's rows and in the miniature's (on its sslsan.toml)."""
    sslsan = load_recipe(RECIPE_DIR / "sslsan.toml")
    twin = load_recipe(RECIPE_DIR / "synthetic" / "sslsan.toml")
    for folder, contrastive, reference in [
        ("ablation", "lvs", sslsan),
        ("synthetic/ablation", "lvs", twin),
    ]:
        for name, switches in ABLATION.items():
            recipe = load_recipe(RECIPE_DIR / folder / name)
            term = recipe.loss[contrastive]
            row = (
                term.get("silence_negative", False),
                term.get("noise_negative", False),
                "silence_map" in recipe.loss,
                "noise_map" in recipe.loss,
            )
            assert row == switches, (folder, name)
            assert recipe.model == reference.model and recipe.train == reference.train
            assert recipe.data == reference.data
            assert recipe.eval == reference.eval
            switched = ("silence_negative", "noise_negative")
            assert {k: v for k, v in term.items() if k not in switched} == {
                k: v for k, v in reference.loss[contrastive].items() if k not in switched
            }
            others = {k: v for k, v in recipe.loss.items() if k != contrastive}
            assert others == {k: v for k, v in reference.loss.items() if k in others}
            assert set(reference.loss) - set(recipe.loss) <= {"silence_map", "noise_map"}
        full = load_recipe(RECIPE_DIR / folder / "7_s_n_ls_ln.toml")
        assert full.loss == reference.loss


def test_sslsan_is_ssltie_with_silence_and_noise():
    ssltie = load_recipe(RECIPE_DIR / "ssltie.toml")
    sslsan = load_recipe(RECIPE_DIR / "sslsan.toml")
    assert sslsan.model == ssltie.model and sslsan.train == ssltie.train
    assert sslsan.data == ssltie.data
    assert ssltie.model.arch == "lvs" and ssltie.model.visual.last_stride == 1
    assert ssltie.model.visual.pretrained == ""  # from scratch
    d = ssltie.data
    assert (d.audio_frontend, d.image_augment, d.spec_augment) == ("mel_db", "moco_v2", 0.8)
    assert (d.clip_seconds, d.spec_time_mask, d.spec_freq_mask) == (10.0, 180, 35)
    t = ssltie.train
    assert (t.epochs, t.batch_size, t.learning_rate) == (100, 32, 1e-4)
    assert (t.weight_decay, t.weight_decay_mode) == (1e-4, "l2")
    assert set(ssltie.loss) == {"lvs", "equivariance"}
    lvs = dict(sslsan.loss["lvs"])
    assert lvs.pop("silence_negative") and lvs.pop("noise_negative")
    assert lvs == ssltie.loss["lvs"]
    assert sslsan.loss["equivariance"] == ssltie.loss["equivariance"] == {"weight": 1.0}
    assert set(sslsan.loss) == {"lvs", "equivariance", "silence_map", "noise_map"}


def test_paper_settings_of_the_baselines():
    margin = load_recipe(RECIPE_DIR / "marginnce.toml")
    ezvsl = load_recipe(RECIPE_DIR / "ezvsl.toml")
    assert margin.loss["ezvsl"]["margin"] == -0.2
    assert {k: v for k, v in margin.loss["ezvsl"].items() if k != "margin"} == {
        k: v for k, v in ezvsl.loss["ezvsl"].items() if k != "margin"
    }
    assert margin.model == ezvsl.model and margin.train == ezvsl.train

    fnac = load_recipe(RECIPE_DIR / "fnac.toml")
    assert set(fnac.loss) == {"ezvsl", "fnac_fns1", "fnac_fns2", "fnac_tne"}
    for name in ("fnac_fns1", "fnac_fns2", "fnac_tne"):
        assert fnac.loss[name]["weight"] == 100.0 and fnac.loss[name]["start_epoch"] == 3
    assert fnac.model.visual_dropout == 0.9
    t = fnac.train
    assert (t.epochs, t.weight_decay, t.weight_decay_mode) == (30, 1e-4, "l2")

    lvs = load_recipe(RECIPE_DIR / "lvs.toml")
    assert lvs.model.arch == "lvs" and lvs.model.visual.last_stride == 1
    assert lvs.loss["lvs"] == {
        "weight": 1.0,
        "epsilon": 0.65,
        "epsilon_neg": 0.4,
        "threshold_tau": 0.03,
        "tau": 0.07,
        "hard_negative": True,
    }
