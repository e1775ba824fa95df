"""``avloc reproduce synthetic``: the plan, the claim rules, and the --quick run's report.

The quick run trains every row at toy size, so it checks the report's structure, never its
numbers; the claim rules are checked on hand-made scores where the verdict is known.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from avloc.evaluation.scoring import Scores
from avloc.jobs.reproduce import Budget, centre_prior_records
from avloc.jobs.reproduce import claims as rules
from avloc.jobs.reproduce.plan import ROWS, objective_fingerprint, plan_jobs


def test_plan_trains_each_objective_once_per_seed(tmp_path):
    budget = Budget.quick()
    jobs = plan_jobs(budget, tmp_path)
    assert len(jobs) == 9  # 11 rows: ablation 1 = EZ-VSL, ablation 7 = SSL-SaN
    by_row = {row.key: job for job in jobs for row in job.rows}
    assert by_row["ablation-1"] is by_row["ezvsl"]
    assert by_row["ablation-7"] is by_row["sslsan"]
    assert len({objective_fingerprint(j.recipe) for j in jobs}) == 9
    for job in jobs:  # the budget reaches every recipe: same data, model size and schedule
        assert job.recipe.data.train == str(tmp_path / "train")
        assert job.recipe.train.epochs == 1
        assert job.recipe.model.visual.width == 4
    two = plan_jobs(Budget(24, 16, seeds=(0, 1), overrides=budget.overrides), tmp_path)
    assert len(two) == 18 and {j.seed for j in two} == {0, 1}
    assert {j.recipe.seed for j in two if j.seed == 1} == {1}


def _scores(**per_sample) -> Scores:
    arrays = {k.replace("__", "/"): np.asarray(v, float) for k, v in per_sample.items()}
    return Scores(metrics={}, per_sample=arrays)


def test_bootstrap_interval_brackets_the_mean_and_is_exact_for_a_constant():
    assert rules.bootstrap_interval(np.full(50, 3.0)) == (3.0, 3.0)
    rng = np.random.default_rng(1)
    diff = rng.normal(2.0, 1.0, 400)
    low, high = rules.bootstrap_interval(diff)
    assert low < diff.mean() < high
    half = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)  # normal-theory half-width
    assert high - low == pytest.approx(2 * half, rel=0.15)


def test_two_level_bootstrap_carries_the_spread_between_seeds():
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 1.0, (5, 200))
    same = 1.0 + noise  # five seeds that agree
    apart = same + np.array([-3.0, -1.5, 0.0, 1.5, 3.0])[:, None]  # five seeds that do not
    low_same, high_same = rules.bootstrap_interval(same)
    low_apart, high_apart = rules.bootstrap_interval(apart)
    assert low_same < 1.0 < high_same and low_apart < 1.0 < high_apart
    assert (high_apart - low_apart) > 5 * (high_same - low_same)
    flat_low, flat_high = rules.bootstrap_interval(apart.ravel())  # samples only: too narrow
    assert (flat_high - flat_low) < 0.5 * (high_apart - low_apart)


def test_pia_claim_needs_a_large_and_significant_drop():
    n = 100
    ez = _scores(pia__silence=np.full(n, 0.10), pia__noise=np.linspace(0.0, 0.2, n))
    san = _scores(pia__silence=np.full(n, 0.01), pia__noise=np.full(n, 0.0))
    claim = rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: san}})
    assert claim.holds is True
    assert claim.numbers["silence"]["a"] == pytest.approx(10.0)
    half = _scores(pia__silence=np.full(n, 0.05), pia__noise=np.full(n, 0.0))
    assert rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: half}}).holds is False
    assert rules.claim_pia({"ezvsl": {0: ez}}).holds is None


def test_listening_claim_compares_own_and_shuffled_audio_per_method():
    n = 60
    listens = _scores(
        ciou__adaptive=np.full(n, 0.6),
        ciou_shuffled__adaptive=np.full(n, 0.2),
        ciou__universal=np.full(n, 0.5),
        ciou_shuffled__universal=np.full(n, 0.1),
    )
    deaf = _scores(
        ciou__adaptive=np.full(n, 0.3),
        ciou_shuffled__adaptive=np.full(n, 0.3),
        ciou__universal=np.full(n, 0.3),
        ciou_shuffled__universal=np.full(n, 0.3),
    )
    both = rules.claim_listening({"a": {0: listens}, "b": {0: listens}}, ["a", "b"])
    assert both.holds is True
    one_deaf = rules.claim_listening({"a": {0: listens}, "b": {0: deaf}}, ["a", "b"])
    assert one_deaf.holds is False
    assert one_deaf.numbers["a"]["adaptive"]["diff"] == pytest.approx(40.0)


def test_full_row_claim_ranks_sep_and_floc_over_ablation_rows():
    def row(sep, floc):
        return {0: Scores(metrics={"global": {"sep": sep, "floc": floc}}, per_sample={})}

    keys = [f"ablation-{i}" for i in range(1, 8)]
    scores = {k: row(0.1 * i, 10.0 * i) for i, k in enumerate(keys, 1)}
    assert rules.claim_full_row_best(scores, keys).holds is True
    scores["ablation-3"] = row(0.9, 1.0)
    claim = rules.claim_full_row_best(scores, keys)
    assert claim.holds is False
    assert claim.numbers["sep"]["rank_of_full_row"] == 2
    assert claim.numbers["floc"]["rank_of_full_row"] == 1


def test_task_learned_claim_against_the_centre_prior():
    n = 200
    prior = {0: _scores(ciou__adaptive=np.r_[np.ones(20), np.zeros(n - 20)])}  # 10%
    good = {0: _scores(ciou__adaptive=np.r_[np.ones(100), np.zeros(n - 100)])}  # 50%
    weak = {0: _scores(ciou__adaptive=np.r_[np.ones(30), np.zeros(n - 30)])}  # 15%
    assert rules.claim_task_learned({"ezvsl": good}, prior).holds is True
    claim = rules.claim_task_learned({"ezvsl": weak}, prior)
    assert claim.holds is False and claim.numbers["diff"] == pytest.approx(5.0)


def test_centre_prior_peaks_in_the_middle_and_ignores_audio():
    from avloc.maps.records import SampleRecords

    maps = {"positive": np.random.rand(3, 7, 7), "silence": np.random.rand(3, 7, 7)}
    records = SampleRecords(
        ids=np.array(["a", "b", "c"]),
        maps=maps,
        image_emb=np.zeros((3, 4)),
        audio_emb=np.zeros((3, 4)),
        map_size=32,
    )
    prior = centre_prior_records(records)
    assert prior.maps["positive"].shape == (3, 7, 7)
    np.testing.assert_array_equal(prior.maps["positive"], prior.maps["silence"])
    assert np.unravel_index(prior.maps["positive"][0].argmax(), (7, 7)) == (3, 3)
    assert records.maps["positive"] is maps["positive"]  # the input is untouched


@pytest.mark.large  # trains the reproduction's jobs
# the plan, the report and its verdicts: training on each backend is tests/test_training.py's
@pytest.mark.once_per_suite
def test_quick_reproduction_writes_the_report(tmp_path):
    from avloc_cli.main import app

    out, work = tmp_path / "results", tmp_path / "work"
    args = ["reproduce", "synthetic", "--quick", "--out", str(out), "--work", str(work)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    md = (out / "synthetic.md").read_text()
    for section in ("## Setting", "## Claims", "## Methods", "## Ablation", "## Figures"):
        assert section in md
    claim_rows = re.findall(r"^\| (\d) \| .* \| \*\*(holds|fails)\*\* \|", md, flags=re.M)
    assert [n for n, _ in claim_rows] == ["1", "2", "3", "4", "5"]
    methods = md.split("## Methods")[1].split("## Ablation")[0]
    for label in ("EZ-VSL", "marginNCE", "FNAC", "SSL-SaN"):
        assert f"| {label} |" in methods
    ablation = md.split("## Ablation")[1].split("## Figures")[0]
    assert len(re.findall(r"^\| [1-7] \|", ablation, flags=re.M)) == 7
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / target).is_file(), target

    data = json.loads((out / "synthetic.json").read_text())
    assert [c["key"] for c in data["claims"]] == [
        "pia_far_below",
        "ciou_not_worse",
        "full_row_best",
        "models_listen",
        "task_learned",
    ]
    assert all(isinstance(c["holds"], bool) for c in data["claims"])
    assert [r["key"] for r in data["rows"]] == [r.key for r in ROWS]
    for row in data["rows"]:
        (metrics,) = row["metrics_by_seed"]
        assert {"positive", "silence", "noise", "offscreen", "shuffled", "global"} <= set(metrics)
    # the EZ-VSL row and ablation row 1 are one training: identical numbers
    assert data["rows"][0]["metrics_by_seed"] == data["rows"][4]["metrics_by_seed"]
    assert data["settings"]["quick"] is True
    # Uth recomputed from the saved calibration maxima is the one training stored
    from avloc.maps.records import load_records

    stored = load_records(work / "samples" / "ezvsl-s0.npz").meta["uth"]
    assert data["rows"][0]["metrics_by_seed"][0]["uth"] == pytest.approx(stored, abs=1e-6)
    sensitivity = data["uth_sensitivity"]
    for audio in ("silence+noise", "silence+noise+other"):
        order = [f"{s} of {audio}" for s in ("q3", "p90", "p99", "max")]
        assert set(order) <= set(sensitivity)
        uths = [sensitivity[s]["metrics_by_row"]["ezvsl"][0]["uth"] for s in order]
        assert uths == sorted(uths)  # higher statistics, higher thresholds
    assert len(sensitivity) == 8
    assert "## Uth calibration" in md
    # every row and seed in the per-seed table, with the empty-maps count
    per_seed = data["per_seed"]
    assert set(per_seed) == {r.key for r in ROWS}
    for key, seeds in per_seed.items():
        (line,) = seeds.values()
        assert line["empty_negative_maps"] == (line["q3_silence_noise"] <= 0.2), key
    seeds_md = md.split("## Per seed")[1].split("## Uth calibration")[0]
    assert len(re.findall(r"^\| \*[^|]+\* \| \*\d of 1 empty\* \|", seeds_md, flags=re.M)) == 9
    # the trunk every row started from
    trunk = json.loads((work / "data" / "visual_trunk.pth.json").read_text())
    assert trunk["recipe"]["model"]["visual"]["width"] == 4
    recipe = (work / "runs" / "ezvsl-s0" / "recipe.toml").read_text()
    assert str(work / "data" / "visual_trunk.pth") in recipe

    # a second call resumes: nothing is trained again and the claims are the same
    ledger = json.loads((work / "jobs.json").read_text())
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((work / "jobs.json").read_text()) == ledger
    assert json.loads((out / "synthetic.json").read_text())["claims"] == data["claims"]

    # the same work folder with another recipe setting: one line, nothing reused or written
    changed = CliRunner().invoke(app, [*args, "--set", "train.learning_rate=0.5"])
    assert changed.exit_code == 2
    assert "holds a run of a different recipe" in changed.output
    assert json.loads((work / "jobs.json").read_text()) == ledger
