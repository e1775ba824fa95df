"""Evaluation with a real (tiny) network: maps per audio condition, calibration, the `avloc eval`
command end to end. Scoring without a network: tests/test_evaluation_scoring.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import QUICKSTART, TINY_NET, run_avloc, synthetic_shards

from avloc.data.shards import ShardSet, write_shard
from avloc.utils.interpolation import upsample

RECIPE = QUICKSTART
TINY = TINY_NET


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthetic_shards(tmp_path_factory.mktemp("synthetic"), train=24, test=20, seed=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import keras

    from avloc.config import load_recipe
    from avloc.models import build_network
    from avloc.models.io import save_network

    keras.utils.set_random_seed(11)
    recipe = load_recipe(RECIPE, TINY)
    net = build_network(recipe.model, recipe.data)
    return save_network(net, tmp_path_factory.mktemp("ckpt") / "net.keras")


# --------------------------------------------------------------------------------------------
# inference with a real (tiny) network


@pytest.mark.jax
def test_maps_equal_the_network_forward_and_visual_runs_once_per_image(data, checkpoint):
    from keras import ops

    from avloc.inputs.images import preprocess_test
    from avloc.inputs.spectrogram import spectrogram
    from avloc.maps.records import collect_records
    from avloc.media.audio import clip_centered
    from avloc.models import pair_maps
    from avloc.models.io import load_network

    net = load_network(checkpoint)
    shards = ShardSet(data / "test")
    seen = {"images": 0, "calls": 0}
    encode_image = net.encode_image

    def counting(images, training=False):
        seen["images"] += len(images)
        seen["calls"] += 1
        return encode_image(images, training=training)

    net.encode_image = counting
    rec = collect_records(net, shards, batch_size=8, control="shuffled")
    assert seen == {"images": len(shards), "calls": 3}  # 20 images in batches of 8
    assert set(rec.maps) == {"positive", "silence", "noise", "offscreen", "shuffled"}
    net.encode_image = encode_image

    rows = shards.read([4, 9], ["image", "audio", "offscreen_audio"])
    size = net.inputs["image_size"]
    frame = int(net.inputs.get("inference_border", 0))  # the recipe's (docs/method.md)
    images = np.stack([preprocess_test(i, size) for i in rows["image"]])
    images = np.pad(images, ((0, 0), (frame, frame), (frame, frame), (0, 0)))
    for key, condition in (("audio", "positive"), ("offscreen_audio", "offscreen")):
        specs = np.stack([spectrogram(clip_centered(w)) for w in rows[key]])[..., None]
        out = net({"image": images, "audio": specs})
        direct = ops.convert_to_numpy(pair_maps(out["v_map"], out["a_emb"]))
        np.testing.assert_allclose(rec.maps[condition][[4, 9]], direct, atol=1e-5)
    # silence: one clip for every image; noise: same clip for a sample whatever the batching
    again = collect_records(net, shards, batch_size=5, negatives=("silence", "noise"))
    np.testing.assert_allclose(again.maps["noise"], rec.maps["noise"], atol=1e-5)
    np.testing.assert_allclose(again.maps["silence"], rec.maps["silence"], atol=1e-5)
    assert "offscreen" not in again.maps


def test_shards_without_offscreen_audio_say_the_offscreen_rows_are_absent(
    data, checkpoint, tmp_path, capsys
):
    from avloc.jobs.evaluate import ModelSource, evaluate

    # the synthetic test set without its offscreen clips: as prepared without an offscreen pool
    test = ShardSet(data / "test")
    kept = [f for f in test.fields if not f.startswith("offscreen_")]
    assert len(kept) < len(test.fields)
    bare = tmp_path / "no-offscreen"
    write_shard(bare / "set-00000.h5", test.read(np.arange(6), kept), source="synthetic",
                split="test", class_names=test.class_names)  # fmt: skip
    out = tmp_path / "eval"
    result = evaluate([ModelSource("tiny", checkpoint=checkpoint)], bare, out, uth=0.1,
                      overlays=0, floors=False)  # fmt: skip

    # one warning line on stderr, naming the shards
    warned = [line for line in capsys.readouterr().err.splitlines() if "offscreen" in line]
    assert len(warned) == 1 and warned[0].startswith(f"warning: {bare}: ")
    assert "no offscreen audio" in warned[0] and "absent" in warned[0]
    # the report carries it: results.json's "absent", and a line below table.txt's tables
    row = json.loads((out / "results.json").read_text())["models"][0]
    assert "offscreen" not in row["metrics"] and {"silence", "noise"} <= set(row["metrics"])
    assert row["absent"]["offscreen"].startswith(f"{bare}: ")
    table = (out / "table.txt").read_text()
    assert f"offscreen: absent for tiny ({bare}: " in table and result.text == table
    # and so do the saved per-sample records, re-scored without the model
    again = evaluate([ModelSource("again", records=out / "samples" / "tiny.npz")], None,
                     tmp_path / "again", overlays=0, floors=False)  # fmt: skip
    assert again.rows[0]["absent"] == row["absent"]
    assert "offscreen: absent for again" in again.text
    assert capsys.readouterr().err.count(f"warning: {bare}: ") == 1
    # shards that hold offscreen audio have nothing absent
    full = evaluate([ModelSource("full", checkpoint=checkpoint)], data / "test",
                    tmp_path / "full", uth=0.1, limit=6, overlays=0, floors=False)  # fmt: skip
    assert "offscreen" in full.rows[0]["metrics"] and "absent" not in full.rows[0]
    assert "absent" not in full.text and "warning" not in capsys.readouterr().err


def test_derangement_moves_every_sample():
    from avloc.maps.conditions import derangement

    for n in (2, 3, 10, 101):
        perm = derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and np.all(perm != np.arange(n))


def test_calibration_is_the_third_quartile_of_negative_maxima(data, checkpoint, tmp_path):
    from avloc.config import EvalConfig
    from avloc.maps.calibration import calibrate, calibration_indices, negative_maxima
    from avloc.models.io import load_network, save_network

    net = load_network(checkpoint)
    shards = ShardSet(data / "train")
    settings = EvalConfig(calibration_samples=10, uth_statistic="q3", batch_size=4)
    entry = calibrate(net, data / "train", settings)
    idx = calibration_indices(len(shards), 10)
    assert len(idx) == 10 and entry["samples"] == 10
    maxima = negative_maxima(net, shards, idx, batch_size=10)
    pooled = np.concatenate([maxima["silence"], maxima["noise"]])
    assert entry["uth"] == pytest.approx(float(np.percentile(pooled, 75)))
    net.calibration = entry
    saved = save_network(net, tmp_path / "calibrated.keras")
    assert load_network(saved).uth == pytest.approx(entry["uth"])


def test_other_clip_calibration_matches_a_naive_loop(data, checkpoint):
    """ "other" = each calibration image with another calibration clip's audio (a derangement)."""
    from keras import ops

    from avloc.config import EvalConfig
    from avloc.inputs.contract import InputContract
    from avloc.inputs.images import preprocess_test
    from avloc.maps.calibration import calibrate, calibration_indices, negative_maxima
    from avloc.maps.conditions import derangement
    from avloc.models.io import load_network

    net = load_network(checkpoint)
    shards = ShardSet(data / "train")
    idx = calibration_indices(len(shards), 9)
    got = negative_maxima(net, shards, idx, seed=3, batch_size=4, conditions=("other",))
    assert set(got) == {"other"}
    rows = shards.read(idx, ["image", "audio"])
    partner = derangement(len(idx), 3)
    contract = InputContract(net.inputs)
    size = int(net.inputs["image_size"])
    frame = int(net.inputs.get("inference_border", 0))  # the recipe's (docs/method.md)
    want = []
    for j in range(len(idx)):  # one image and one clip at a time, through the network
        image = preprocess_test(rows["image"][j], size)[None]
        image = np.pad(image, ((0, 0), (frame, frame), (frame, frame), (0, 0)))
        spec = contract.spectrogram(rows["audio"][partner[j]], int(shards.attrs["sample_rate"]))
        spec = spec[None, :, :, None]
        v = ops.convert_to_numpy(net.encode_image(image))
        a = ops.convert_to_numpy(net.encode_audio(spec))
        want.append(upsample(np.einsum("bhwd,bd->bhw", v, a), size).max())
    np.testing.assert_allclose(got["other"], want, rtol=1e-4, atol=1e-5)
    settings = EvalConfig(calibration_samples=9, uth_statistic="max", calibration_audio=("other",))
    entry = calibrate(net, data / "train", settings, seed=3)
    assert entry["audio"] == ["other"] and entry["uth"] == pytest.approx(max(want), rel=1e-4)
    assert set(entry) >= {"other_max"} and "silence_max" not in entry


def test_calibrate_run_honours_the_runs_eval_settings(data, tmp_path):
    """`avloc eval --calibrate --run R` repeats the run's [eval]: statistic, audio, samples."""
    from avloc.config import load_recipe
    from avloc.jobs import evaluate as ev
    from avloc.jobs.train import train
    from avloc.maps.calibration import calibration_indices, negative_maxima
    from avloc.models.io import load_network

    recipe = load_recipe(
        RECIPE,
        [
            *TINY,
            f"data.train={data / 'train'}",
            "train.epochs=1",
            "train.batch_size=8",
            "train.tensorboard=false",
            "data.workers=1",
            'eval.uth_statistic="max"',
            'eval.calibration_audio=["silence", "other"]',
            "eval.calibration_samples=12",
            "seed=4",
        ],
    )
    run = tmp_path / "run"
    train(recipe, run, verbose=0)
    trained = load_network(run / "model.keras").calibration
    assert trained["statistic"] == "max" and trained["audio"] == ["silence", "other"]
    (source,) = ev.resolve_models([run], [], [])
    entry = ev.calibrate_checkpoint(source)
    assert entry["statistic"] == "max" and entry["audio"] == ["silence", "other"]
    assert entry["samples"] == 12
    net = load_network(run / "model.keras")
    shards = ShardSet(data / "train")
    maxima = negative_maxima(
        net, shards, calibration_indices(len(shards), 12), seed=4, conditions=("silence", "other")
    )
    assert entry["uth"] == pytest.approx(float(np.max(np.concatenate(list(maxima.values())))))
    assert entry["uth"] == pytest.approx(trained["uth"])  # the same calibration as training's
    assert net.uth == pytest.approx(entry["uth"])


# --------------------------------------------------------------------------------------------
# the command, end to end


@pytest.mark.large  # starts subprocesses
@pytest.mark.once_per_suite  # it evaluates the same checkpoint on both backends itself
def test_eval_command_end_to_end_and_same_metrics_on_the_other_backend(data, checkpoint, tmp_path):
    import keras

    ckpt = tmp_path / "tiny.keras"
    ckpt.write_bytes(checkpoint.read_bytes())
    backend = keras.backend.backend()
    other = "tensorflow" if backend == "torch" else "torch"
    calib = run_avloc(
        "eval", "--calibrate", "--checkpoint", str(ckpt),
        "--calibration-data", str(data / "train"), "--calibration-samples", "12",
    )  # fmt: skip
    assert calib.returncode == 0, calib.stderr[-3000:]
    assert "Uth = " in calib.stdout
    outs = {}
    for b in (backend, other):
        out = tmp_path / f"eval_{b}"
        done = run_avloc(
            "eval", "--dataset", str(data / "test"), "--checkpoint", str(ckpt),
            "--out", str(out), "--control", "shuffled", backend=b,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "FLOC" in done.stdout and "silence" in done.stdout
        outs[b] = json.loads((out / "results.json").read_text())["models"][0]
        for name in ("table.txt", "samples/tiny.npz", "plots/scores_tiny.png"):
            assert (out / name).is_file(), name
        assert (out / "plots" / "overlays_tiny.png").is_file()
        assert (out / "plots" / "success_curves.png").is_file()
    assert outs[backend]["uth_source"] == "calibration"

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    ours, theirs = dict(flat(outs[backend]["metrics"])), dict(flat(outs[other]["metrics"]))
    assert ours.keys() == theirs.keys() and "global.floc" in ours and "shuffled.median.auc" in ours
    for key in ours:
        assert abs(ours[key] - theirs[key]) < 1e-3, (key, ours[key], theirs[key])

    # Per-sample results recompute the same table without the model; --uth changes Uth only.
    samples = tmp_path / f"eval_{backend}" / "samples" / "tiny.npz"
    again = run_avloc("eval", "--samples", str(samples), "--out", str(tmp_path / "re"), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    recomputed = json.loads(again.stdout)["models"][0]["metrics"]
    assert dict(flat(recomputed)) == pytest.approx(ours, abs=1e-9)


@pytest.mark.large  # starts subprocesses
@pytest.mark.once_per_suite  # the checks run before a network is built; the same on any backend
def test_eval_bad_inputs_give_one_line_errors(data, checkpoint, tmp_path):
    # shards without any ground truth, asked for localisation metrics
    rng = np.random.default_rng(0)
    bare = tmp_path / "bare"
    write_shard(
        bare / "bare-00000.h5",
        {
            "id": ["a", "b"],
            "image": rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8),
            "audio": rng.uniform(-0.5, 0.5, (2, 48000)).astype(np.float32),
        },
        source="test",
        split="test",
    )
    text = tmp_path / "not_a_model.keras"
    text.write_text("hello")
    cases = [
        (["--dataset", "no-such-set", "--checkpoint", str(checkpoint)], "is not prepared"),
        (
            ["--dataset", str(bare), "--checkpoint", str(checkpoint), "--uth", "0.2",
             "--metrics", "localization"],
            "ground-truth boxes or masks",
        ),
        (["--dataset", str(data / "test"), "--checkpoint", str(text)], "not_a_model.keras"),
        (["--dataset", str(data / "test"), "--checkpoint", str(checkpoint)], "--calibrate"),
    ]  # fmt: skip
    for args, needle in cases:
        done = run_avloc("eval", *args, "--out", str(tmp_path / "out"))
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("avloc: error:"), done.stderr
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "out" / "results.json").exists()


# --------------------------------------------------------------------------------------------
# refusals before any work or output: one line from the command


def _eval_cli(*args: str) -> list[str]:
    """``avloc eval ARGS`` in this process; its stderr lines (it must fail as a user error)."""
    from typer.testing import CliRunner

    from avloc_cli.main import app

    result = CliRunner().invoke(app, ["eval", *args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    return result.stderr.strip().splitlines()


def _no_evaluation(monkeypatch):
    def evaluated(*args, **kwargs):
        raise AssertionError("the evaluation ran before the refusal")

    monkeypatch.setattr("avloc.jobs.evaluate.collect_records", evaluated)
    monkeypatch.setattr("avloc.maps.calibration.calibrate", evaluated)


def test_eval_out_onto_a_file_is_refused_before_evaluating(data, checkpoint, tmp_path, monkeypatch):
    _no_evaluation(monkeypatch)
    out = tmp_path / "out"
    out.write_text("keep")
    args = ["--dataset", str(data / "test"), "--checkpoint", str(checkpoint), "--uth", "0.2"]
    lines = _eval_cli(*args, "--out", str(out))
    assert lines == [f"avloc: error: {out}: exists and is not a directory"]
    assert out.read_text() == "keep" and list(tmp_path.iterdir()) == [out]


def test_eval_calibrate_with_out_onto_a_file_leaves_the_checkpoint(
    data, checkpoint, tmp_path, monkeypatch
):
    _no_evaluation(monkeypatch)
    model = tmp_path / "net.keras"
    model.write_bytes(checkpoint.read_bytes())
    out = tmp_path / "out"
    out.write_text("keep")
    args = ["--dataset", str(data / "test"), "--checkpoint", str(model), "--calibrate"]
    lines = _eval_cli(*args, "--calibration-data", str(data / "train"), "--out", str(out))
    assert lines == [f"avloc: error: {out}: exists and is not a directory"]
    assert model.read_bytes() == checkpoint.read_bytes() and out.read_text() == "keep"


def test_eval_symlinked_results_file_is_refused_before_evaluating(
    data, checkpoint, tmp_path, monkeypatch
):
    _no_evaluation(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").symlink_to(tmp_path / "elsewhere.json")
    args = ["--dataset", str(data / "test"), "--checkpoint", str(checkpoint), "--uth", "0.2"]
    lines = _eval_cli(*args, "--out", str(out), "--protocol", "vssl_eval")
    assert len(lines) == 1 and f"{out / 'results.json'}: exists and is a symbolic link" in lines[0]
    assert [p.name for p in out.iterdir()] == ["results.json"]


def test_eval_damaged_shard_attribute_is_one_line(data, checkpoint, tmp_path, monkeypatch):
    import shutil

    import h5py

    _no_evaluation(monkeypatch)
    shards = tmp_path / "test"
    shutil.copytree(data / "test", shards)
    first = sorted(shards.glob("*.h5"))[0]
    with h5py.File(first, "r+") as f:
        f.attrs["count"] = int(f.attrs["count"]) + 5
    args = ["--dataset", str(shards), "--checkpoint", str(checkpoint), "--uth", "0.2"]
    lines = _eval_cli(*args, "--out", str(tmp_path / "out"))
    assert len(lines) == 1 and lines[0].startswith(f"avloc: error: {first}: shard attribute count")
    assert not (tmp_path / "out").exists()
