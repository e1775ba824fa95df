"""``avloc localize``'s functions (avloc.jobs.localize): maps at the original image size, batches
equal to single pairs, abstention at Uth, loading a network from a run or a checkpoint, and the
items (audio centred on a time, a video's frame, manifests). Overlays:
tests/test_localize_overlay.py; batch mode and the command: tests/test_localize_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from keras import ops
from localize_harness import INPUTS, save_models, scene, write_media

from avloc.errors import AvlocError, DataError
from avloc.inputs.images import preprocess_test
from avloc.inputs.spectrogram import spectrogram
from avloc.jobs import localize as lz
from avloc.media.audio import clip_centered, load_audio
from avloc.media.image import load_image
from avloc.models import AudioVisualNet, pair_maps, upsample_maps
from avloc.models.io import load_network

# ------------------------------------------------------------------------------------------
# media and the network (tests/localize_harness.py), once for this module


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return write_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def models(tmp_path_factory, media) -> dict:
    """A tiny network saved three times: Uth below, Uth above its silence maximum, no Uth."""
    return save_models(tmp_path_factory.mktemp("models"), media)


@pytest.fixture(scope="module")
def net(models) -> AudioVisualNet:
    return load_network(models["high"])


# ------------------------------------------------------------------------------------------
# localize_pair / localize_many


def test_localize_pair_map_at_original_size(net, media):
    image = load_image(media["image"])
    wave = load_audio(media["wav"])
    loc = lz.localize_pair(net, image, wave, uth=0.0)
    heat = loc.heatmap
    assert heat.shape == image.shape[:2] == (37, 53) and heat.dtype == np.float32
    # the model's h x w map, upsampled with aligned corners straight to the image size
    x_img = preprocess_test(image, INPUTS["image_size"])[None]
    x_aud = spectrogram(clip_centered(wave, 16000, 1.0))[None, ..., None]
    small = ops.convert_to_numpy(pair_maps(net.encode_image(x_img), net.encode_audio(x_aud)))
    assert small.shape == (1, 4, 4)
    np.testing.assert_allclose(
        heat, ops.convert_to_numpy(upsample_maps(small, (37, 53)))[0], atol=1e-5
    )
    np.testing.assert_allclose(heat[[0, 0, -1, -1], [0, -1, 0, -1]], small[0].flat[[0, 3, 12, 15]])
    assert -1.0 <= heat.min() and heat.max() <= 1.0
    # every reported number comes from that map
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert loc.peak == (x, y) and loc.max_score == float(heat.max())
    assert loc.pixels_above_uth == int((heat > 0.0).sum())
    assert loc.area_above_uth == pytest.approx((heat > 0.0).mean())
    assert loc.sounding == (heat.max() > 0.0)
    d = loc.to_dict()
    assert d["image_size"] == [53, 37] and d["peak_xy"] == [x, y] and d["uth"] == 0.0


def test_localize_many_equals_pairs_in_order(net, media):
    rng = np.random.default_rng(3)
    images = [scene(h, w, seed=i) for i, (h, w) in enumerate([(30, 40), (64, 64), (17, 90)])]
    waves = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (4000, 16000, 50000)]
    many = list(lz.localize_many(net, zip(images, waves, strict=True), uth=0.1, batch_size=2))
    assert [m.heatmap.shape for m in many] == [im.shape[:2] for im in images]
    for image, wave, got in zip(images, waves, many, strict=True):
        one = lz.localize_pair(net, image, wave, uth=0.1)
        np.testing.assert_allclose(got.heatmap, one.heatmap, atol=1e-5)
    assert len({round(m.max_score, 6) for m in many}) == 3  # different pairs, different maps


def test_silence_below_uth_abstains(models, media):
    image = load_image(media["image"])
    silence = np.zeros(16000, np.float32)
    high = load_network(models["high"])
    assert high.uth == pytest.approx(models["silence_max"] + 0.02)
    loc = lz.localize_pair(high, image, silence)
    assert loc.max_score == pytest.approx(models["silence_max"], abs=1e-5)
    assert not loc.sounding and loc.pixels_above_uth == 0 and loc.area_above_uth == 0.0
    assert loc.caption().startswith("no sounding object found (max ")
    low = load_network(models["low"])
    loc_low = lz.localize_pair(low, image, silence)
    assert loc_low.sounding and loc_low.area_above_uth == 1.0  # Uth -1: every pixel above
    # the override wins over the calibration
    assert lz.localize_pair(high, image, silence, uth=-1.0).sounding


def test_uncalibrated_network_needs_uth(models, media):
    net = load_network(models["none"])
    assert net.uth is None
    with pytest.raises(AvlocError, match="avloc eval --calibrate") as info:
        lz.localize_pair(net, load_image(media["image"]), np.zeros(800, np.float32))
    assert "\n" not in str(info.value)
    assert lz.resolve_uth(net, 0.25) == 0.25
    with pytest.raises(AvlocError, match="finite"):
        lz.resolve_uth(net, float("nan"))


def test_load_model_from_run_dir_or_checkpoint(models, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(DataError, match="no model.keras"):
        lz.load_model(run_dir=run)
    (run / "model.keras").write_bytes(Path(models["high"]).read_bytes())
    assert lz.load_model(run_dir=run).uth == pytest.approx(models["silence_max"] + 0.02)
    assert lz.load_model(checkpoint=models["low"]).uth == -1.0
    for kwargs in ({}, {"run_dir": run, "checkpoint": models["low"]}):
        with pytest.raises(AvlocError, match="exactly one of --run DIR or --checkpoint FILE"):
            lz.load_model(**kwargs)
    with pytest.raises(DataError, match="nope.keras: no such checkpoint file"):
        lz.load_model(checkpoint=tmp_path / "nope.keras")


# ------------------------------------------------------------------------------------------
# items: time, video, manifest


def test_load_item_centres_audio_on_time_and_video_frame(media):
    rate = INPUTS["sample_rate"]
    full = load_audio(media["wav"], rate)
    for when in (None, 0.2, 2.2):
        item = lz.Item("x", image=media["image"], audio=media["wav"], time=when)
        got = lz.load_item(item, INPUTS)
        assert got.image.shape == (37, 53, 3)
        np.testing.assert_array_equal(got.wave, clip_centered(full, rate, 1.0, when))
    # video: the frame at --time and the audio of the same file centred on that frame's time
    got = lz.load_item(lz.Item("v", video=media["video"], time=1.23), INPUTS)
    assert got.image.shape == (34, 48, 3) and abs(got.time - 1.2) < 1e-6
    np.testing.assert_array_equal(
        got.wave, clip_centered(load_audio(media["video"]), rate, 1.0, 1.2)
    )
    # default: the middle of the video
    assert abs(lz.load_item(lz.Item("v", video=media["video"]), INPUTS).time - 1.0) <= 0.1


def test_manifest_items(tmp_path, media):
    manifest = tmp_path / "list.jsonl"
    lines = [
        json.dumps({"image": str(media["image"]), "audio": str(media["wav"]), "time": 1.5}),
        json.dumps({"video": "clips/a.mp4", "id": "my clip/1", "label": "dog"}),
        "",
        "{not json",
        json.dumps({"image": "x.png"}),
        json.dumps({"image": str(media["image"]), "audio": str(media["wav"]), "time": -1}),
        json.dumps({"image": str(media["image"]), "audio": str(media["wav"])}),
    ]
    manifest.write_text("\n".join(lines) + "\n")
    items = lz.items_from_manifest(manifest, time=0.5)
    assert len(items) == 6
    assert items[0].time == 1.5 and items[0].image == media["image"]
    assert items[1].video == tmp_path / "clips" / "a.mp4" and items[1].time == 0.5
    assert items[1].name == "my_clip_1"
    errors = [i.error for i in items if i.error]
    assert [e.split(": ")[0] for e in errors] == [f"{manifest}:4", f"{manifest}:5", f"{manifest}:6"]
    assert "not valid JSON" in errors[0] and "needs" in errors[1] and ">= 0" in errors[2]
    assert items[5].name == "scene-2" and items[0].name == "scene"  # unique output names
    # a JSON array works too; a manifest with no entries is an error
    array = tmp_path / "list.json"
    array.write_text(json.dumps([{"video": "v.mp4", "time": 2}, {"audio": "a.wav"}], indent=1))
    items = lz.items_from_manifest(array)
    assert items[0].video == tmp_path / "v.mp4" and items[0].time == 2.0
    assert items[1].error.startswith(f"{array}[1]: needs")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="lists no items"):
        lz.items_from_manifest(tmp_path / "empty.jsonl")
