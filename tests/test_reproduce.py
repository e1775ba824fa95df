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
    assert len(jobs) == 11  # 13 rows: ablation 1 = SSL-TIE, ablation 7 = SSL-SaN
    by_row = {row.key: job for job in jobs for row in job.rows}
    assert by_row["ablation-1"] is by_row["ssltie"]
    assert by_row["ablation-7"] is by_row["sslsan"]
    assert len({objective_fingerprint(j.recipe) for j in jobs}) == 11
    for job in jobs:  # the budget reaches every recipe: same data, model size and schedule
        assert job.recipe.data.train == str(tmp_path / "train")
        assert job.recipe.train.epochs == 1
        assert job.recipe.model.visual.width == 4
    two = plan_jobs(Budget(24, 16, seeds=(0, 1), overrides=budget.overrides), tmp_path)
    assert len(two) == 22 and {j.seed for j in two} == {0, 1}
    assert {j.recipe.seed for j in two if j.seed == 1} == {1}


#: The claims, in the report's order: the paper's five, then two against SSL-TIE.
CLAIM_KEYS = [
    "pia_far_below",
    "ciou_not_worse",
    "full_row_best",
    "models_listen",
    "task_learned",
    "pia_far_below_ssltie",
    "ciou_not_worse_ssltie",
]


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


HOLDS, FAILS, TOO_CLOSE = "holds", "fails", "too close to call"


def test_a_claim_carries_its_verdict_and_holds_only_for_the_two_clear_ones():
    assert rules.VERDICTS == (HOLDS, FAILS, TOO_CLOSE)
    for verdict, holds in ((HOLDS, True), (FAILS, False), (TOO_CLOSE, None), (None, None)):
        claim = rules.Claim("k", "text", verdict, "evidence", {"x": 1.0})
        assert claim.holds is holds
        data = json.loads(json.dumps(claim.to_dict()))
        assert data["verdict"] == verdict and data["holds"] is holds
        assert data["numbers"] == {"x": 1.0}
    with pytest.raises(ValueError, match="verdict"):
        rules.Claim("k", "text", "maybe", "evidence")


def test_pia_claim_holds_for_a_large_significant_drop():
    n = 100
    ez = _scores(pia__silence=np.full(n, 0.10), pia__noise=np.linspace(0.0, 0.2, n))
    san = _scores(pia__silence=np.full(n, 0.01), pia__noise=np.full(n, 0.0))
    claim = rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: san}})
    assert claim.verdict == HOLDS and claim.holds is True
    assert claim.key == "pia_far_below"
    assert claim.numbers["silence"]["a"] == pytest.approx(10.0)
    assert claim.numbers["silence"]["needed"] == pytest.approx(7.5)  # (1 - 0.25) x 10
    assert rules.claim_pia({"ezvsl": {0: ez}}).verdict is None


def test_pia_claim_fails_when_the_interval_cannot_reach_far_below():
    n = 100
    ez = _scores(pia__silence=np.full(n, 0.10), pia__noise=np.full(n, 0.10))
    # half of EZ-VSL's, exactly: the drop (5 points) is certain, and short of the 7.5 needed
    half = _scores(pia__silence=np.full(n, 0.05), pia__noise=np.full(n, 0.0))
    claim = rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: half}})
    assert claim.verdict == FAILS and claim.holds is False
    assert claim.numbers["silence"]["verdict"] == FAILS
    assert claim.numbers["noise"]["verdict"] == HOLDS
    # no difference, with little noise: the interval hugs 0, far from the 7.5 points needed
    rng = np.random.default_rng(3)
    base = rng.uniform(0.05, 0.15, 2000)
    ez = _scores(pia__silence=base, pia__noise=base)
    same = _scores(pia__silence=base + rng.normal(0, 0.005, 2000), pia__noise=base)
    claim = rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: same}})
    assert claim.verdict == FAILS
    silence = claim.numbers["silence"]
    assert silence["low"] < 0 < silence["high"] < 0.5
    # both at zero: nothing to be far below
    zero = _scores(pia__silence=np.zeros(n), pia__noise=np.zeros(n))
    assert rules.claim_pia({"ezvsl": {0: zero}, "sslsan": {0: zero}}).verdict == FAILS


def test_pia_claim_is_too_close_to_call_when_the_interval_straddles():
    # ten samples: SaN is at 40% of EZ-VSL's mean, but the interval reaches the needed drop
    ez = _scores(pia__silence=np.full(10, 0.10), pia__noise=np.full(10, 0.10))
    san = _scores(pia__silence=np.r_[np.zeros(8), 0.2, 0.2], pia__noise=np.zeros(10))
    claim = rules.claim_pia({"ezvsl": {0: ez}, "sslsan": {0: san}})
    silence = claim.numbers["silence"]
    assert silence["b"] == pytest.approx(0.4 * silence["a"])
    assert silence["low"] < silence["needed"] < silence["high"]
    assert silence["verdict"] == TOO_CLOSE and claim.numbers["noise"]["verdict"] == HOLDS
    assert claim.verdict == TOO_CLOSE and claim.holds is None


def test_ciou_claim_three_ways():
    rng = np.random.default_rng(4)
    ez = rng.uniform(0.2, 0.6, 1000)

    def verdict(san, base=ez):
        return rules.claim_ciou_not_worse(
            {
                "ezvsl": {0: _scores(ciou__universal=base)},
                "sslsan": {0: _scores(ciou__universal=san)},
            }
        )

    same = verdict(ez + rng.normal(0, 0.01, 1000))  # no difference, tight
    assert same.verdict == HOLDS and same.key == "ciou_not_worse"
    assert -1.0 < same.numbers["low"] < 0 < same.numbers["high"]
    worse = verdict(ez - 0.05 + rng.normal(0, 0.01, 1000))  # 5 points lower, tight
    assert worse.verdict == FAILS and worse.numbers["high"] < -1.0
    # ten samples, 1 point lower on average with a spread of 10: either side of -1
    close = verdict(0.5 + np.tile([-0.11, 0.09], 5), base=np.full(10, 0.5))
    assert close.numbers["low"] < -1.0 < close.numbers["high"]
    assert close.verdict == TOO_CLOSE and close.holds is None
    vacuous = verdict(np.zeros(10), base=np.full(10, 0.001))
    assert vacuous.verdict == HOLDS and vacuous.evidence.startswith("Vacuously")


def test_the_ssltie_claims_compare_sslsan_with_its_base():
    n = 100
    tie = _scores(pia__silence=np.full(n, 0.10), pia__noise=np.full(n, 0.10),
                  ciou__universal=np.full(n, 0.30))  # fmt: skip
    ez = _scores(pia__silence=np.full(n, 0.01), pia__noise=np.full(n, 0.01),
                 ciou__universal=np.full(n, 0.40))  # fmt: skip
    san = _scores(pia__silence=np.full(n, 0.01), pia__noise=np.zeros(n),
                  ciou__universal=np.full(n, 0.35))  # fmt: skip
    scores = {"ezvsl": {0: ez}, "sslsan": {0: san}, "ssltie": {0: tie}}
    pia = rules.claim_pia(scores, "ssltie")
    assert pia.key == "pia_far_below_ssltie" and "SSL-TIE" in pia.text
    assert pia.verdict == HOLDS and pia.numbers["silence"]["a"] == pytest.approx(10.0)
    assert rules.claim_pia(scores).verdict == FAILS  # EZ-VSL's pIA is already as low
    ciou = rules.claim_ciou_not_worse(scores, "ssltie")
    assert ciou.key == "ciou_not_worse_ssltie" and "SSL-TIE" in ciou.text
    assert ciou.verdict == HOLDS and ciou.numbers["diff"] == pytest.approx(5.0)
    assert rules.claim_ciou_not_worse(scores).verdict == FAILS  # 5 points below EZ-VSL
    # noisy and close: too close to call against SSL-TIE
    tie10 = _scores(pia__silence=np.full(10, 0.10), pia__noise=np.full(10, 0.10),
                    ciou__universal=np.full(10, 0.5))  # fmt: skip
    san10 = _scores(pia__silence=np.r_[np.zeros(8), 0.2, 0.2], pia__noise=np.zeros(10),
                    ciou__universal=0.5 + np.tile([-0.11, 0.09], 5))  # fmt: skip
    close = {"sslsan": {0: san10}, "ssltie": {0: tie10}}
    assert rules.claim_pia(close, "ssltie").verdict == TOO_CLOSE
    assert rules.claim_ciou_not_worse(close, "ssltie").verdict == TOO_CLOSE
    # no SSL-TIE row: not run, and saying which row is missing
    absent = {"ezvsl": {0: ez}, "sslsan": {0: san}}
    for claim in (rules.claim_pia(absent, "ssltie"), rules.claim_ciou_not_worse(absent, "ssltie")):
        assert claim.verdict is None and claim.holds is None
        assert claim.evidence == "needs the SSL-TIE row"
        assert claim.to_dict()["verdict"] is None


def _listening(own, shuffled) -> Scores:
    own, shuffled = np.asarray(own, float), np.asarray(shuffled, float)
    return _scores(ciou__adaptive=own, ciou_shuffled__adaptive=shuffled,
                   ciou__universal=own, ciou_shuffled__universal=shuffled)  # fmt: skip


def test_listening_claim_compares_own_and_shuffled_audio_per_method():
    n = 60
    listens = _listening(np.full(n, 0.6), np.full(n, 0.2))
    deaf = _listening(np.full(n, 0.3), np.full(n, 0.3))
    # six samples, 5 points better with their own audio on average, spread over +-25
    unsure = _listening(np.tile([0.5, 0.0], 3), np.tile([0.2, 0.2], 3))
    both = rules.claim_listening({"a": {0: listens}, "b": {0: listens}}, ["a", "b"])
    assert both.verdict == HOLDS
    one_deaf = rules.claim_listening({"a": {0: listens}, "b": {0: deaf}}, ["a", "b"])
    assert one_deaf.verdict == FAILS and one_deaf.numbers["b"]["verdict"] == FAILS
    assert one_deaf.numbers["a"]["adaptive"]["diff"] == pytest.approx(40.0)
    one_unsure = rules.claim_listening({"a": {0: listens}, "b": {0: unsure}}, ["a", "b"])
    adaptive = one_unsure.numbers["b"]["adaptive"]
    assert adaptive["low"] < 0 < adaptive["high"] and adaptive["diff"] == pytest.approx(5.0)
    assert one_unsure.verdict == TOO_CLOSE
    # a deaf method fails the claim whatever the others' intervals say
    assert rules.claim_listening({"a": {0: unsure}, "b": {0: deaf}}, ["a", "b"]).verdict == FAILS
    assert rules.claim_listening({}, ["a"]).verdict is None


def _ablation_row(sep, ciou, n=20, seeds=(0,)) -> dict:
    """Per-sample arrays whose Sep is ``sep`` and whose FLOC grows with ``ciou`` (pIA 0)."""
    ciou = np.broadcast_to(np.asarray(ciou, float), (n,))
    per_sample = {"max/positive": np.full(n, 0.5 + sep), "ciou/universal": ciou.copy()}
    for condition in ("silence", "noise", "offscreen"):
        per_sample[f"max/{condition}"] = np.full(n, 0.5)
        per_sample[f"pia/{condition}"] = np.zeros(n)
    return {s: Scores(metrics={}, per_sample=per_sample) for s in seeds}


def test_set_statistics_are_the_scorers_sep_and_floc():
    from harness import random_records

    from avloc.evaluation.scoring import score_records

    records = random_records(n=12)
    scores = score_records(records, 0.3)
    stats = rules.set_statistics(scores, np.arange(12)[None])
    assert stats["sep"][0] == pytest.approx(scores.metrics["global"]["sep"])
    assert stats["floc"][0] == pytest.approx(scores.metrics["global"]["floc"])


def test_full_row_claim_ranks_sep_and_floc_over_ablation_rows():
    keys = [f"ablation-{i}" for i in range(1, 8)]
    scores = {k: _ablation_row(0.1 * i, 0.1 * i, seeds=(0, 1)) for i, k in enumerate(keys, 1)}
    claim = rules.claim_full_row_best(scores, keys)
    assert claim.verdict == HOLDS
    assert claim.numbers["sep"]["values"]["ablation-7"] == pytest.approx(0.7)
    assert claim.numbers["sep"]["compared_with"] == "ablation-6"
    assert claim.numbers["sep"]["versus"]["ablation-6"]["low"] == pytest.approx(0.1)
    scores["ablation-3"] = _ablation_row(0.9, 0.1, seeds=(0, 1))
    claim = rules.claim_full_row_best(scores, keys)
    assert claim.verdict == FAILS
    assert claim.numbers["sep"]["rank_of_full_row"] == 2
    assert claim.numbers["sep"]["verdict"] == FAILS
    assert claim.numbers["floc"]["rank_of_full_row"] == 1
    assert claim.numbers["floc"]["verdict"] == HOLDS
    # row 6's cIoU at Uth is just below the full row's on average, but spread widely: FLOC's
    # interval against it reaches both sides of 0
    scores["ablation-3"] = _ablation_row(0.3, 0.3, seeds=(0, 1))
    scores["ablation-6"] = _ablation_row(0.6, 0.68 + np.tile([0.3, -0.3], 10), seeds=(0, 1))
    claim = rules.claim_full_row_best(scores, keys)
    floc = claim.numbers["floc"]
    assert floc["rank_of_full_row"] == 1 and floc["compared_with"] == "ablation-6"
    assert floc["versus"]["ablation-6"]["low"] < 0 < floc["versus"]["ablation-6"]["high"]
    assert floc["verdict"] == TOO_CLOSE and claim.numbers["sep"]["verdict"] == HOLDS
    assert claim.verdict == TOO_CLOSE
    assert rules.claim_full_row_best({"ablation-7": scores["ablation-7"]}, keys).verdict is None


def test_task_learned_claim_against_the_centre_prior():
    n = 200
    prior = {0: _scores(ciou__adaptive=np.r_[np.ones(20), np.zeros(n - 20)])}  # 10%
    good = {0: _scores(ciou__adaptive=np.r_[np.ones(100), np.zeros(n - 100)])}  # 50%
    weak = {0: _scores(ciou__adaptive=np.r_[np.ones(30), np.zeros(n - 30)])}  # 15%
    assert rules.claim_task_learned({"ezvsl": good}, prior).verdict == HOLDS
    claim = rules.claim_task_learned({"ezvsl": weak}, prior)
    assert claim.verdict == FAILS and claim.numbers["diff"] == pytest.approx(5.0)
    assert claim.numbers["high"] < rules.LEARNED_POINTS
    # forty samples, 7.5 points above the prior: the interval reaches +10
    prior40 = {0: _scores(ciou__adaptive=np.r_[np.ones(8), np.zeros(32)])}
    small = {0: _scores(ciou__adaptive=np.r_[np.ones(11), np.zeros(29)])}
    claim = rules.claim_task_learned({"ezvsl": small}, prior40)
    assert claim.numbers["high"] > rules.LEARNED_POINTS > claim.numbers["diff"]
    assert claim.verdict == TOO_CLOSE
    assert rules.claim_task_learned({}, prior).verdict is None


def test_check_claims_returns_the_seven_in_order():
    n = 50
    full = _scores(
        pia__silence=np.full(n, 0.1),
        pia__noise=np.full(n, 0.1),
        ciou__universal=np.full(n, 0.4),
        ciou_shuffled__universal=np.full(n, 0.1),
        ciou__adaptive=np.full(n, 0.6),
        ciou_shuffled__adaptive=np.full(n, 0.1),
    )
    scores = {"ezvsl": {0: full}, "sslsan": {0: full}}
    prior = {0: _scores(ciou__adaptive=np.zeros(n))}
    claims = rules.check_claims(scores, prior, ["ezvsl", "sslsan"], ["ablation-7"])
    assert [c.key for c in claims] == CLAIM_KEYS
    assert [c.verdict for c in claims] == [FAILS, HOLDS, None, HOLDS, HOLDS, None, None]


def test_the_report_prints_each_verdict_and_counts_them():
    from avloc.jobs.reproduce.report import claims_summary, claims_table

    claims = [
        rules.Claim("a", "first", HOLDS, "e1"),
        rules.Claim("b", "second", FAILS, "e2"),
        rules.Claim("c", "third", TOO_CLOSE, "e3"),
        rules.Claim("d", "fourth", None, "needs the SSL-TIE row"),
        rules.Claim("e", "fifth", HOLDS, "e5"),
    ]
    table = claims_table(claims)
    assert "| 1 | first | **holds** | e1 |" in table
    assert "| 2 | second | **fails** | e2 |" in table
    assert "| 3 | third | *too close to call* | e3 |" in table
    assert "| 4 | fourth | not run | needs the SSL-TIE row |" in table
    assert claims_summary(claims) == (
        "**2 of 5 claims hold**, 1 fails, 1 is too close to call and 1 was not run"
    )
    assert claims_summary(claims[:2] + claims[4:]) == (
        "**2 of 3 claims hold**, 1 fails and 0 are too close to call"
    )


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
    cells = r"\*\*holds\*\*|\*\*fails\*\*|\*too close to call\*|not run"
    claim_rows = re.findall(rf"^\| (\d) \| .* \| ({cells}) \|", md, flags=re.M)
    assert [n for n, _ in claim_rows] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(cell != "not run" for _, cell in claim_rows[:5])  # 6-7 need an SSL-TIE row
    assert re.search(
        r"^\*\*\d of 7 claims hold\*\*, \d fails?(,| and) \d (is|are) too close", md, re.M
    )
    methods = md.split("## Methods")[1].split("## Ablation")[0]
    for label in ("EZ-VSL", "marginNCE", "FNAC", "SSL-SaN"):
        assert f"| {label} |" in methods
    ablation = md.split("## Ablation")[1].split("## Figures")[0]
    assert len(re.findall(r"^\| [1-7] \|", ablation, flags=re.M)) == 7
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / target).is_file(), target

    data = json.loads((out / "synthetic.json").read_text())
    assert [c["key"] for c in data["claims"]] == CLAIM_KEYS
    as_holds = {"holds": True, "fails": False, "too close to call": None, None: None}
    for i, c in enumerate(data["claims"], 1):
        assert c["verdict"] in (rules.VERDICTS if i <= 5 else (*rules.VERDICTS, None)), c
        assert c["holds"] is as_holds[c["verdict"]], c
    assert [r["key"] for r in data["rows"]] == [r.key for r in ROWS]
    for row in data["rows"]:
        (metrics,) = row["metrics_by_seed"]
        assert {"positive", "silence", "noise", "offscreen", "shuffled", "global"} <= set(metrics)
    # SSL-TIE and ablation row 1 are one training, SSL-SaN and row 7 another: identical numbers
    by_key = {r["key"]: r["metrics_by_seed"] for r in data["rows"]}
    assert by_key["ssltie"] == by_key["ablation-1"] and by_key["sslsan"] == by_key["ablation-7"]
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
    shown = len(ROWS) - 2  # ablation rows 1 and 7 are the SSL-TIE and SSL-SaN runs
    assert len(re.findall(r"^\| \*[^|]+\* \| \*\d of 1 empty\* \|", seeds_md, flags=re.M)) == shown
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
