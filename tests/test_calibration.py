"""The one Uth rule (``avloc.maps.calibration.choose_uth``) and the jobs that apply it.

``--uth``, else the calibration, else a one-line error saying how to calibrate; a non-finite Uth
is refused naming where it came from (``--uth`` or the file). ``avloc eval``, ``avloc eval
--protocol vssl_eval`` and ``localize`` (with ``serve`` and ``video``) all go through it.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from avloc.errors import AvlocError, DataError
from avloc.maps.calibration import calibration_data, choose_uth, run_settings

CALIBRATE = "avloc eval --calibrate --checkpoint net.keras --calibration-data TRAIN_SHARDS"


def refusal(*args, **kwargs) -> str:
    with pytest.raises(AvlocError) as raised:
        choose_uth(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_an_explicit_uth_wins_over_the_calibration():
    assert choose_uth(0.25, 0.5, source="net.keras", calibrate=CALIBRATE) == (0.25, "--uth")
    assert choose_uth(-1, None, source="net.keras") == (-1.0, "--uth")  # no calibration needed
    value, where = choose_uth(np.float32(0.125), None, source="net.keras")
    assert value == 0.125 and type(value) is float and where == "--uth"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_uth_is_refused_naming_where_it_came_from(bad):
    message = refusal(bad, 0.5, source="net.keras", calibrate=CALIBRATE)
    assert message == f"--uth must be a finite number, got {bad}"
    with pytest.raises(DataError) as raised:
        choose_uth(None, bad, source="runs/a/model.keras", calibrate=CALIBRATE)
    message = str(raised.value)
    assert message.startswith(f"runs/a/model.keras: its calibrated Uth is {float(bad)}")
    assert "not a finite number" in message and f"run `{CALIBRATE}`" in message
    assert "\n" not in message


def test_the_calibration_when_no_uth_is_given():
    assert choose_uth(None, 0.5, source="net.keras") == (0.5, "calibration")
    assert choose_uth(None, -0.0, source="net.keras") == (0.0, "calibration")  # 0 is a Uth


def test_neither_says_how_to_calibrate_or_to_pass_uth():
    with pytest.raises(DataError) as raised:
        choose_uth(None, None, source="net.keras", calibrate=CALIBRATE)
    assert str(raised.value) == (
        f"net.keras: no calibrated universal threshold (Uth); run `{CALIBRATE}`, or pass "
        "--uth VALUE"
    )
    # saved per-sample results: calibrating a checkpoint would not change them
    message = refusal(None, None, source="saved.npz")
    assert message == "saved.npz: no calibrated universal threshold (Uth); pass --uth VALUE"


# --------------------------------------------------------------------------------------------
# the jobs apply it


def test_localize_resolves_through_the_shared_rule():
    from avloc.jobs.localize import resolve_uth

    calibrated, bare = SimpleNamespace(uth=0.3), SimpleNamespace(uth=None)
    assert resolve_uth(calibrated) == 0.3 and resolve_uth(calibrated, 0.1) == 0.1
    with pytest.raises(DataError, match="^none.keras: no calibrated universal threshold"):
        resolve_uth(bare, source="none.keras", calibrate=CALIBRATE)
    with pytest.raises(DataError, match="its calibrated Uth is nan"):
        resolve_uth(SimpleNamespace(uth=math.nan), source="nan.keras")
    with pytest.raises(AvlocError, match="^--uth must be a finite number"):
        resolve_uth(calibrated, math.inf)


def _net(calibration=None, published=None):
    inputs = {} if published is None else {"published_as": published}
    return SimpleNamespace(calibration=calibration, inputs=inputs)


def test_vssl_eval_takes_the_published_threshold_then_the_shared_rule():
    from avloc.evaluation import vssl_eval as rules
    from avloc.jobs.evaluate_vssl import protocol_uth

    ezvsl, lvs = rules.FAMILIES["ezvsl"], rules.FAMILIES["lvs"]
    # --uth is on vssl_eval's scale, as given
    assert protocol_uth(0.7, _net({"uth": 0.1}), ezvsl) == (0.7, "--uth")
    assert protocol_uth(0.7, _net(published="fnac"), ezvsl) == (0.7, "--uth")
    # a published model: vssl_eval's own th_maxq3
    got = protocol_uth(None, _net({"uth": 0.1}, "fnac"), rules.FAMILIES["fnac"])
    assert got == (rules.PUBLISHED_UTH["fnac"], "vssl_eval th_maxq3")
    # SSL-SaN gets SSL-TIE's rules but not SSL-TIE's th_maxq3 (a threshold of other weights):
    # vssl_eval has none for it, so its calibration (raw cosine, as SSL-TIE's maps) or --uth
    ssltie = rules.FAMILIES["ssltie"]
    assert "sslsan" not in rules.SCORED_BY_VSSL_EVAL
    assert protocol_uth(None, _net({"uth": 0.2}, "sslsan"), ssltie) == (0.2, "calibration")
    assert protocol_uth(0.4, _net(published="sslsan"), ssltie) == (0.4, "--uth")
    with pytest.raises(DataError, match="^sslsan.keras: no calibrated universal threshold"):
        protocol_uth(None, _net(published="sslsan"), ssltie, source="sslsan.keras")
    # avloc's own: the calibration, moved to the (cos + 1) / 2 scale where the family's maps are
    assert protocol_uth(None, _net({"uth": 0.1}), ezvsl) == (
        pytest.approx(0.55),
        "calibration, as (Uth + 1) / 2",
    )
    assert protocol_uth(None, _net({"uth": 0.1}), lvs) == (0.1, "calibration")
    with pytest.raises(DataError, match="^own.keras: no calibrated universal threshold"):
        protocol_uth(None, _net(), ezvsl, source="own.keras", calibrate=CALIBRATE)
    with pytest.raises(DataError, match="^own.keras: its calibrated Uth is nan"):
        protocol_uth(None, _net({"uth": math.nan}), ezvsl, source="own.keras")
    with pytest.raises(AvlocError, match="^--uth must be a finite number"):
        protocol_uth(math.nan, _net({"uth": 0.1}), ezvsl)


def test_eval_of_saved_results_without_a_uth_says_to_pass_one(tmp_path):
    from avloc.jobs.evaluate import ModelSource, evaluate
    from avloc.maps.records import SampleRecords, save_records

    rng = np.random.default_rng(0)
    records = SampleRecords(
        ids=np.array(["a", "b"]),
        maps={"positive": rng.uniform(-1, 1, (2, 3, 3)).astype(np.float32)},
        image_emb=rng.standard_normal((2, 4)).astype(np.float32),
        audio_emb=rng.standard_normal((2, 4)).astype(np.float32),
        map_size=8,
    )
    path = save_records(records, tmp_path / "saved.npz")
    source = [ModelSource("saved", records=path)]
    with pytest.raises(DataError) as raised:
        evaluate(source, None, tmp_path / "out", floors=False)
    assert str(raised.value) == (
        f"{path}: no calibrated universal threshold (Uth); pass --uth VALUE"
    )
    records.meta = {"uth": math.nan}
    save_records(records, path)
    with pytest.raises(DataError, match=f"^{path}: its calibrated Uth is nan"):
        evaluate(source, None, tmp_path / "out", floors=False)
    done = evaluate(source, None, tmp_path / "out", uth=0.2, floors=False)
    assert done.rows[0]["uth"] == 0.2 and done.rows[0]["uth_source"] == "--uth"


# --------------------------------------------------------------------------------------------
# the calibration job's settings


def test_a_checkpoint_calibrates_with_its_runs_settings_or_the_defaults():
    from avloc.config import EvalConfig

    assert run_settings(None) == (EvalConfig(), 0)
    recipe = SimpleNamespace(eval=EvalConfig(uth_statistic="p90"), seed=7, data=None)
    assert run_settings(recipe) == (recipe.eval, 7)
    recipe.data = SimpleNamespace(train="data/x/train")
    assert calibration_data("net.keras", recipe, None) == Path("data/x/train")
    assert str(calibration_data("net.keras", None, "shards")) == "shards"
    with pytest.raises(DataError, match="^net.keras: no recipe next to this checkpoint"):
        calibration_data("net.keras", None, None)
