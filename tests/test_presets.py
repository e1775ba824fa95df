"""Presets (``avloc export``, avloc/presets.py, avloc/jobs/export.py, avloc/model_card.py): a run
exported, copied to another path layout and loaded gives the original network's map exactly;
the card states Uth and its calibration; a changed or missing file is refused in one line
naming it; a foreign folder is never written into; every command that takes a model takes a
preset.

The run is a tiny calibrated network (tests/localize_harness.py) in ``runs/tiny`` with a
``recipe.toml``, evaluated by ``avloc eval`` on a few synthetic shards into ``runs/tiny/eval``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from localize_harness import scene, tiny_net, tone
from PIL import Image
from typer.testing import CliRunner

import avloc
from avloc.errors import DataError
from avloc.jobs.export import export_preset
from avloc.models.io import save_network
from avloc.presets import open_preset, read_metadata
from avloc.utils.files import file_sha256

UTH = 0.05
CALIBRATION = {
    "uth": UTH,
    "statistic": "q3",
    "audio": ["silence", "noise"],
    "samples": 12,
    "data": "data/tiny/train",
    "silence_max": {"q1": 0.01, "median": 0.02, "q3": 0.03},
    "noise_max": {"q1": 0.02, "median": 0.04, "q3": 0.05},
}
RECIPE = """name = "tiny"
description = "A tiny test network"
seed = 3

[data]
train = "data/tiny/train"
test = "data/tiny/test"
image_size = 64
"""


def invoke(*args: str):
    from avloc_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avloc: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_shards) -> Path:
    d = tmp_path_factory.mktemp("presets")
    run = d / "runs" / "tiny"
    run.mkdir(parents=True)
    save_network(tiny_net(calibration=CALIBRATION), run / "model.keras")
    (run / "recipe.toml").write_text(RECIPE)
    bare = d / "runs" / "bare"  # the same, never evaluated
    shutil.copytree(run, bare)
    Image.fromarray(scene(37, 53)).save(d / "photo.png")
    sf.write(d / "sound.wav", tone(2.5, stereo=False), 44100, subtype="FLOAT")
    shards = tiny_shards(train=4, test=6, seed=0, image_size=64)
    (d / "dataset.txt").write_text(shards.name)  # the name eval gives it (synthetic0, 1, ...)
    result = invoke(
        "eval", "--dataset", shards / "test", "--run", run, "--out", run / "eval",
        "--overlays", "0", "--no-floors", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    avloc.load(run)  # a first load (on torch it caches the Keras-free copy every load then uses)
    return d


def dataset_name(preset: Path) -> str:
    """The evaluated data set's name (its shards folder's, which depends on the tests before)."""
    return (preset.parents[1] / "dataset.txt").read_text()


@pytest.fixture(scope="module")
def preset(workspace) -> Path:
    return export_preset(workspace / "runs" / "tiny", workspace / "out" / "tiny")


@pytest.fixture
def copied(preset, tmp_path) -> Path:
    """The preset copied into another path layout (another machine's)."""
    return Path(shutil.copytree(preset, tmp_path / "elsewhere" / "models" / "shared-net"))


def test_the_folder_holds_the_network_its_metadata_and_card(workspace, preset):
    assert sorted(p.name for p in preset.iterdir()) == [
        "MODEL_CARD.md", "metadata.json", "model.keras",
    ]  # fmt: skip
    assert not list(preset.parent.glob(".*"))  # no staging folder left
    original = workspace / "runs" / "tiny" / "model.keras"
    assert (preset / "model.keras").read_bytes() == original.read_bytes()
    meta = read_metadata(preset)
    assert meta["format"] == "avloc-preset" and meta["avloc_version"] == avloc.__version__
    assert meta["uth"] == UTH and meta["calibration"] == CALIBRATION
    assert meta["inputs"]["image_size"] == 64 and meta["inputs"]["sample_rate"] == 16000
    assert meta["recipe"]["data"]["train"] == "data/tiny/train" and meta["recipe_toml"] == RECIPE
    assert set(meta["files"]) == {"model.keras", "MODEL_CARD.md"}
    for name, digest in meta["files"].items():
        assert file_sha256(preset / name) == digest
    [evaluation] = meta["evaluation"]
    assert evaluation["results"] == "eval/results.json" and evaluation["samples"] == 6
    results = json.loads((workspace / "runs" / "tiny" / "eval" / "results.json").read_text())
    assert evaluation["metrics"] == results["models"][0]["metrics"]


def test_the_card_states_uth_its_calibration_and_the_negative_audio_table(preset):
    card = (preset / "MODEL_CARD.md").read_text()
    meta = read_metadata(preset)
    assert "# Model card: tiny" in card and "A tiny test network" in card
    assert f"**Uth = {UTH:.6f}**" in card
    assert "**q3** of the map maxima of 12 calibration images under silence + noise" in card
    assert "| silence | 0.0100 | 0.0200 | 0.0300 |" in card
    assert "trained on the shards `data/tiny/train`" in card
    assert RECIPE.strip() in card and meta["files"]["model.keras"] in card
    m = meta["evaluation"][0]["metrics"]
    assert meta["evaluation"][0]["dataset"] == dataset_name(preset)
    row = next(
        line for line in card.splitlines() if line.startswith(f"| {dataset_name(preset)} | 6 |")
    )
    for value in (m["silence"]["pia"], m["noise"]["pia"], m["offscreen"]["pia"]):
        assert f"{value:.1f}" in row
    assert f"{m['global']['sep']:.4f}" in row
    assert f"{m['positive']['universal']['ciou_mean']:.1f}" in row


def test_a_row_at_another_threshold_says_so(preset):
    from avloc.model_card import render

    meta = read_metadata(preset)
    row = {**meta["evaluation"][0], "uth": 0.3, "uth_source": "--uth"}
    card = render({**meta, "evaluation": [row]}, meta["files"]["model.keras"])
    assert "| 0.3000 (--uth) (not the preset's Uth) |" in card
    assert "(not the preset's Uth)" not in (preset / "MODEL_CARD.md").read_text()


def test_an_unevaluated_run_says_so(workspace, tmp_path):
    out = export_preset(workspace / "runs" / "bare", tmp_path / "bare")
    assert read_metadata(out)["evaluation"] == "not evaluated"
    assert "Not evaluated" in (out / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("torch_infer", ["1", "0"], ids=["default", "keras-only"])
def test_a_copied_preset_gives_the_original_networks_map(
    workspace, copied, monkeypatch, torch_infer
):
    monkeypatch.setenv("AVLOC_TORCH_INFER", torch_infer)
    photo, sound = workspace / "photo.png", workspace / "sound.wav"
    want = avloc.load(workspace / "runs" / "tiny" / "model.keras").localize(photo, sound)
    loc = avloc.load(copied)
    got = loc.localize(photo, sound)
    assert np.array_equal(got.heatmap, want.heatmap)
    assert np.array_equal(got.raw_map, want.raw_map)
    assert loc.uth == UTH and got.uth == UTH and loc.path == copied / "model.keras"
    assert loc.keras_model is not None


def test_a_changed_file_is_refused_in_one_line_naming_it(workspace, copied):
    model = copied / "model.keras"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        avloc.load(copied)
    message = str(caught.value)
    assert "\n" not in message and str(model) in message and "checksum mismatch" in message
    args = [workspace / "photo.png", workspace / "sound.wav", "--model", copied]
    one_line_error(invoke("localize", *args, "-o", copied.parent / "x.png"), str(model))


def test_a_changed_card_is_refused_too(copied):
    card = copied / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("Uth", "uth", 1))
    with pytest.raises(DataError, match=f"^{card}: checksum mismatch"):
        open_preset(copied)


def test_a_missing_file_is_refused_in_one_line_naming_it(copied):
    (copied / "MODEL_CARD.md").unlink()
    with pytest.raises(DataError) as caught:
        avloc.load(copied)
    message = str(caught.value)
    assert "\n" not in message and f"{copied / 'MODEL_CARD.md'}: missing" in message
    one_line_error(invoke("eval", "--checkpoint", copied), f"{copied / 'MODEL_CARD.md'}: missing")


def test_metadata_that_is_not_a_presets_is_refused(copied):
    (copied / "metadata.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not an avloc preset's metadata"):
        avloc.load(copied)
    (copied / "metadata.json").write_text(
        json.dumps({"format": "avloc-preset", "format_version": 1, "model": "model.keras",
                    "files": {"model.keras": "0" * 64, "../x": "0" * 64}})
    )  # fmt: skip
    with pytest.raises(DataError, match="not a file name of the preset folder"):
        open_preset(copied)


def test_a_foreign_folder_is_refused_and_left_untouched(workspace, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not really a jpeg")
    before = {p.name: p.read_bytes() for p in foreign.iterdir()}
    with pytest.raises(DataError, match="not empty and not an avloc preset"):
        export_preset(workspace / "runs" / "tiny", foreign)
    one_line_error(
        invoke("export", workspace / "runs" / "tiny", "--out", foreign), str(foreign), "refusing"
    )
    assert {p.name: p.read_bytes() for p in foreign.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # nothing staged is left


def test_an_earlier_preset_and_an_empty_folder_are_replaced(workspace, preset, tmp_path):
    target = Path(shutil.copytree(preset, tmp_path / "again"))
    (target / "MODEL_CARD.md").write_text("stale")
    export_preset(workspace / "runs" / "tiny", target)
    assert open_preset(target) == target / "model.keras"
    empty = tmp_path / "empty"
    empty.mkdir()
    export_preset(workspace / "runs" / "bare", empty)
    assert open_preset(empty) == empty / "model.keras"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "empty"]


def test_a_run_without_uth_or_recipe_is_refused(workspace, tmp_path):
    run = tmp_path / "uncalibrated"
    run.mkdir()
    save_network(tiny_net(), run / "model.keras")
    with pytest.raises(DataError, match="no recipe.toml"):
        export_preset(run, tmp_path / "out")
    (run / "recipe.toml").write_text(RECIPE)
    with pytest.raises(DataError, match=r"no calibrated Uth.*avloc eval --calibrate --run"):
        export_preset(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------
# the commands


def test_avloc_export_writes_a_preset(workspace, tmp_path):
    out = tmp_path / "cli-preset"
    result = invoke("export", workspace / "runs" / "tiny", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"Uth {UTH:.4f}" in result.stdout
    assert f"evaluation: {(workspace / 'dataset.txt').read_text()}" in result.stdout
    assert open_preset(out) == out / "model.keras"


@pytest.mark.parametrize("option", ["--model", "--run", "--checkpoint"])
def test_avloc_localize_takes_a_preset(workspace, copied, tmp_path, option):
    photo, sound = workspace / "photo.png", workspace / "sound.wav"
    png = tmp_path / "heat.png"
    result = invoke("localize", photo, sound, option, copied, "-o", png, "--raw", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    want = avloc.load(workspace / "runs" / "tiny" / "model.keras").localize(photo, sound)
    assert np.array_equal(np.load(png.with_suffix(".npy")), want.heatmap)
    assert record["uth"] == UTH


def test_avloc_localize_takes_one_model_option(workspace, copied):
    args = [workspace / "photo.png", workspace / "sound.wav", "--model", copied]
    one_line_error(invoke("localize", *args, "--run", copied), "exactly one of --model")


def test_avloc_eval_takes_a_preset_and_does_not_calibrate_it(workspace, copied, tmp_path):
    result = invoke("eval", "--calibrate", "--checkpoint", copied)
    one_line_error(result, f"{copied}: a preset is read-only")
    assert open_preset(copied)  # still intact
    results = json.loads((workspace / "runs" / "tiny" / "eval" / "results.json").read_text())
    dataset = results["dataset"]["shards"]
    out = tmp_path / "eval"
    result = invoke(
        "eval", "--dataset", dataset, "--checkpoint", copied, "--out", out,
        "--overlays", "0", "--no-floors", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = json.loads((out / "results.json").read_text())["models"]
    assert row["name"] == "shared-net" and row["uth"] == UTH
    assert row["metrics"] == results["models"][0]["metrics"]


def test_avloc_serve_takes_a_preset(copied, monkeypatch):
    import avloc.jobs.serve as serve_job

    seen = {}

    def fake_build(net, threshold, title, max_seconds):
        seen.update(net=net, threshold=threshold, title=title)
        return "page"

    monkeypatch.setattr(serve_job, "build_app", fake_build)
    monkeypatch.setattr(serve_job, "serve", lambda page, **kw: seen.update(page=page))
    result = invoke("serve", "--model", copied)
    assert result.exit_code == 0, result.output
    assert seen["threshold"] == UTH and seen["title"] == "avloc: shared-net"
    assert seen["page"] == "page"
