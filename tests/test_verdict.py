"""The quickstart's verdict (avloc.evaluation.verdict): targets, wording, JSON."""

from __future__ import annotations

import math

import pytest

from avloc.evaluation.verdict import judge, learned, verdict_json, verdict_lines

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


def metrics(adaptive=45.0, shuffled=10.0, silence=0.2, noise=0.0, sep=0.5, offscreen=12.0):
    return {
        "positive": {"adaptive": {"ciou_at_05": adaptive}},
        "shuffled": {"adaptive": {"ciou_at_05": shuffled}},
        "silence": {"pia": silence},
        "noise": {"pia": noise},
        "offscreen": {"pia": offscreen},
        "global": {"sep": sep},
    }


def test_a_model_that_meets_every_target_learned_even_with_offscreen_missed():
    outcomes = judge(metrics())
    assert learned(outcomes)
    by_name = {o.check.name: o for o in outcomes}
    assert by_name["listens"].bound == 22.5  # half the positive score
    assert (
        not by_name["abstains offscreen"].passed
        and not by_name["abstains offscreen"].check.required
    )
    lines = verdict_lines("run", outcomes)
    assert lines[-1].strip().startswith("=> run localizes")
    assert any(line.lstrip().startswith("MISS  offscreen pIA") for line in lines)


def test_each_required_target_fails_on_its_own():
    cases = {
        "localizes": dict(adaptive=39.9, shuffled=5.0),
        "listens": dict(shuffled=23.0),  # more than half of 45
        "abstains on silence": dict(silence=1.5),
        "abstains on noise": dict(noise=1.01),
        "separates": dict(sep=0.29),
    }
    for name, changed in cases.items():
        outcomes = judge(metrics(**changed))
        failed = [o.check.name for o in outcomes if o.check.required and not o.passed]
        assert failed == [name], name
        assert not learned(outcomes)
        assert name in verdict_lines("m", outcomes)[-1]


def test_boundaries_pass_and_missing_metrics_fail():
    assert learned(judge(metrics(adaptive=40.0, shuffled=20.0, silence=1.0, noise=1.0, sep=0.3)))
    partial = metrics()
    del partial["shuffled"]
    outcomes = judge(partial)
    listens = next(o for o in outcomes if o.check.name == "listens")
    assert math.isnan(listens.value) and not listens.passed and not learned(outcomes)
    payload = verdict_json(outcomes)
    assert payload["learned"] is False
    assert next(c for c in payload["checks"] if c["name"] == "listens")["value"] is None
