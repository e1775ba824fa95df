"""``avloc localize``: maps at the original image size, abstention at Uth, overlays, batch mode,
robustness to users' media, and one-line errors (functions, the Typer app, and subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import matplotlib
import numpy as np
import pytest
import soundfile as sf
from keras import ops
from PIL import Image
from typer.testing import CliRunner

from avloc.errors import AvlocError, DataError
from avloc.inputs.images import preprocess_test
from avloc.inputs.spectrogram import spectrogram
from avloc.jobs import localize as lz
from avloc.media.audio import clip_centered, load_audio
from avloc.media.image import load_image
from avloc.media.overlay import outline_mask, overlay_heatmap, stamp_caption
from avloc.models import AudioVisualNet, pair_maps, upsample_maps
from avloc.models.io import load_network, save_network
from avloc_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
INPUTS = {"image_size": 64, "sample_rate": 16000, "clip_seconds": 1.0}


# ------------------------------------------------------------------------------------------
# generated media


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a bright square: structure that survives JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[top : top + h // 3, left : left + w // 3] = rng.integers(150, 255, 3)
    return img.astype(np.uint8)


def _tone(seconds: float, rate: int = 44100, freq: float = 440.0, stereo: bool = True):
    t = np.arange(int(round(seconds * rate))) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    if not stereo:
        return left.astype(np.float32)
    right = 0.3 * np.sign(np.sin(2 * np.pi * freq / 3 * t))
    return np.stack([left, right], axis=1).astype(np.float32)


def _write_av(path: Path, seconds: float, video: bool = True, audio: bool = True) -> None:
    """An mp4/m4a with an MPEG-4 video stream (varying frames) and/or a stereo AAC stream."""
    rate, fps = 44100, 10
    with av.open(str(path), "w") as out:  # every stream must exist before the first mux
        a = out.add_stream("aac", rate=rate) if audio else None
        if a is not None:
            a.layout = "stereo"
        v = out.add_stream("mpeg4", rate=fps) if video else None
        if v is not None:
            v.width, v.height, v.pix_fmt = 48, 34, "yuv420p"
            for k in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(_scene(34, 48, seed=k), format="rgb24")
                for packet in v.encode(frame):
                    out.mux(packet)
            for packet in v.encode(None):
                out.mux(packet)
        if a is not None:
            samples = _tone(seconds, rate).T.copy()
            for i in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, i : i + 1024]), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts = rate, i
                frame.time_base = Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m: dict[str, Path] = {}
    m["image"] = d / "scene.png"
    Image.fromarray(_scene(37, 53)).save(m["image"])
    m["wav"] = d / "tone.wav"
    sf.write(m["wav"], _tone(2.5), 44100)
    m["silence"] = d / "silence.wav"
    sf.write(m["silence"], np.zeros((44100 * 2, 2), np.float32), 44100)
    m["video"] = d / "clip.mp4"
    _write_av(m["video"], 2.0)
    m["mute"] = d / "mute.mp4"
    _write_av(m["mute"], 1.0, audio=False)
    m["notes"] = d / "notes.wav"
    m["notes"].write_text("not audio at all\n" * 40)
    m["empty"] = d / "empty.wav"
    m["empty"].write_bytes(b"")
    m["noframes"] = d / "noframes.wav"
    sf.write(m["noframes"], np.zeros((0, 2), np.float32), 44100)
    m["badimage"] = d / "broken.jpg"
    m["badimage"].write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    return m


# ------------------------------------------------------------------------------------------
# the network


def _tiny_net(calibration=None) -> AudioVisualNet:
    return AudioVisualNet(
        embed_dim=8,
        visual=dict(width=4, stem_pool=False),  # 64 px -> 4x4 maps
        audio=dict(width=4),
        inputs=INPUTS,
        calibration=calibration,
        name="avnet",
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory, media) -> dict:
    """A tiny network saved three times: Uth below, Uth above its silence maximum, no Uth."""
    d = tmp_path_factory.mktemp("models")
    net = _tiny_net()
    image = load_image(media["image"])
    silence = np.zeros(16000, np.float32)
    silence_max = lz.localize_pair(net, image, silence, uth=0.0).max_score
    out = {"silence_max": silence_max, "dir": d}
    for name, calibration in [
        ("low", {"uth": -1.0, "statistic": "test"}),
        ("high", {"uth": silence_max + 0.02, "statistic": "test"}),
        ("none", None),
    ]:
        net.calibration = calibration
        out[name] = save_network(net, d / f"{name}.keras")
    return out


@pytest.fixture(scope="module")
def net(models) -> AudioVisualNet:
    return load_network(models["high"])


# ------------------------------------------------------------------------------------------
# overlay


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.hypot(y - cy, x - cx) - r  # negative inside


def test_overlay_blends_colormap_and_outlines_region():
    h, w = 40, 70
    image = np.full((h, w, 3), 100, np.uint8)
    heat = np.clip(-_disc(h, w, 20, 30, 10) / 20, -1, 1).astype(np.float32)  # > 0 in the disc
    out = overlay_heatmap(image, heat, threshold=0.0, alpha=0.4, outline_color=(255, 0, 255))
    assert out.shape == image.shape and out.dtype == np.uint8
    # the outline is the set of region pixels with a 4-neighbour outside the region
    mask = heat > 0.0
    padded = np.pad(mask, 1)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~inside
    assert edge.sum() > 20
    np.testing.assert_array_equal(out[edge], np.tile([255, 0, 255], (edge.sum(), 1)))
    # elsewhere: (1 - alpha) * image + alpha * jet((heat + 1) / 2)
    jet = matplotlib.colormaps["jet"]
    expected = 0.6 * 100 + 0.4 * 255 * jet(np.round((heat + 1) / 2 * 255) / 255)[..., :3]
    assert np.max(np.abs(out[~edge].astype(float) - expected[~edge])) <= 1.0
    # no threshold: no outline, only the blend
    plain = overlay_heatmap(image, heat, threshold=None, alpha=0.4)
    assert np.max(np.abs(plain.astype(float) - expected)) <= 1.0
    # the input is not modified
    assert np.all(image == 100)


def test_overlay_region_touching_border_is_closed_and_thickness():
    heat = np.full((30, 30), -0.5, np.float32)
    heat[:, :10] = 0.5  # a band along the left border
    edge = outline_mask(heat > 0, thickness=2)
    assert edge[:, 8:10].all() and edge[:2, :10].all() and edge[-2:, :10].all()
    assert edge[:, 0:2].all()  # the image border closes the region
    assert not edge[2:-2, 2:8].any() and not edge[:, 10:].any()
    assert not outline_mask(np.zeros((5, 5), bool)).any()


def test_overlay_value_range_fixed_versus_minmax():
    image = np.zeros((8, 9, 3), np.uint8)
    heat = np.linspace(0.1, 0.2, 72, dtype=np.float32).reshape(8, 9)
    jet = (np.asarray(matplotlib.colormaps["jet"]([0.0, 1.0]))[:, :3] * 255).round()
    fixed = overlay_heatmap(image, heat, alpha=1.0)
    minmax = overlay_heatmap(image, heat, value_range="minmax", alpha=1.0)
    np.testing.assert_allclose(minmax[0, 0], jet[0], atol=1)  # own min -> bottom colour
    np.testing.assert_allclose(minmax[-1, -1], jet[1], atol=1)  # own max -> top colour
    # on the fixed [-1, 1] scale the whole map sits just above the middle of the colormap
    mid = (np.asarray(matplotlib.colormaps["jet"]([0.55, 0.6]))[:, :3] * 255).round()
    assert np.abs(fixed[0, 0] - mid[0]).max() <= 3 and np.abs(fixed[-1, -1] - mid[1]).max() <= 3
    with pytest.raises(ValueError):
        overlay_heatmap(image, heat[:4])
    with pytest.raises(ValueError):
        overlay_heatmap(image, heat, value_range=(1.0, -1.0))


@pytest.mark.parametrize("size", [(300, 400), (23, 31)])
def test_stamp_caption_changes_only_a_top_band(size):
    image = np.full((*size, 3), 200, np.uint8)
    out = stamp_caption(image, "no sounding object found (max 0.210 < Uth 0.350)")
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.flatnonzero(np.any(out != image, axis=(1, 2)))
    assert changed.size > 0 and changed[0] == 0
    band = changed[-1] + 1
    assert np.all(np.any(out[:band] != image[:band], axis=(1, 2)))  # one contiguous band
    assert band <= max(size[0] // 2 + 1, 14)  # at most half the picture (or one 8 px line)
    np.testing.assert_array_equal(out[band:], image[band:])
    darkened = np.median(out[:band])
    assert darkened < 120 and out[:band].max() > darkened + 100  # light text on a dark band


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
    images = [_scene(h, w, seed=i) for i, (h, w) in enumerate([(30, 40), (64, 64), (17, 90)])]
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


# ------------------------------------------------------------------------------------------
# batch mode over a directory of what users actually have


def _write_user_folder(folder: Path, media: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """Pairs in many image modes and audio formats; returns the expected (W, H) per name."""
    folder.mkdir()
    base = _scene(45, 61, seed=5)
    sizes: dict[str, tuple[int, int]] = {}

    def pair(name: str, pil: Image.Image, ext: str, audio: str, **save) -> None:
        pil.save(folder / f"{name}{ext}", **save)
        (folder / f"{name}.{audio}").write_bytes(audio_bytes[audio])
        sizes[name] = pil.size

    audio_bytes = {}
    for fmt, seconds, rate in [("wav", 0.4, 44100), ("flac", 6.0, 22050), ("ogg", 1.3, 48000)]:
        path = folder / f"_tmp.{fmt}"
        sf.write(path, _tone(seconds, rate), rate)
        audio_bytes[fmt] = path.read_bytes()
        path.unlink()
    mp3 = folder / "_tmp.mp3"
    sf.write(mp3, _tone(2.0, 44100), 44100, format="MP3")
    audio_bytes["mp3"] = mp3.read_bytes()
    mp3.unlink()
    m4a = folder / "_tmp.m4a"
    _write_av(m4a, 1.5, video=False)
    audio_bytes["m4a"] = m4a.read_bytes()
    m4a.unlink()

    rgb = Image.fromarray(base)
    pair("rgb_short_wav", rgb, ".png", "wav")
    rgba = np.dstack([base, np.linspace(0, 255, 61, dtype=np.uint8)[None].repeat(45, 0)])
    pair("rgba_flac", Image.fromarray(rgba, "RGBA"), ".png", "flac")
    pair("gray_ogg", rgb.convert("L"), ".png", "ogg")
    pair("palette_mp3", rgb.convert("P"), ".gif", "mp3")
    pair("cmyk_m4a", rgb.convert("CMYK"), ".jpg", "m4a", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: width and height swap
    rgb.save(folder / "rotated.jpg", exif=exif, quality=90)
    (folder / "rotated.wav").write_bytes(audio_bytes["wav"])
    sizes["rotated"] = (45, 61)
    (folder / "video.mp4").write_bytes(media["video"].read_bytes())
    sizes["video"] = (48, 34)
    # bad items: each must be reported and skipped
    (folder / "mute.mp4").write_bytes(media["mute"].read_bytes())
    rgb.save(folder / "textaudio.png")
    (folder / "textaudio.wav").write_bytes(media["notes"].read_bytes())
    rgb.save(folder / "lonely.png")
    (folder / "README.txt").write_text("ignored")
    return sizes


def test_run_batch_on_users_media(net, media, tmp_path):
    sizes = _write_user_folder(tmp_path / "in", media)
    items = lz.items_from_directory(tmp_path / "in")
    assert sorted(i.name for i in items) == sorted([*sizes, "mute", "textaudio", "lonely"])
    errors: list[str] = []
    ticks: list[int] = []
    summary = lz.run_batch(
        net,
        items,
        tmp_path / "out",
        batch_size=3,
        write_json=True,
        write_raw=True,
        on_error=errors.append,
        on_progress=ticks.append,
    )
    assert summary.total == len(items) and sum(ticks) == len(items)
    assert summary.ok == len(sizes) and len(summary.failed) == 3 == len(errors)
    assert any("mute.mp4: has no audio track" in e for e in errors)
    assert any("textaudio.wav: not a readable audio file" in e for e in errors)
    assert any("lonely.png: no audio file" in e for e in errors)
    assert all("\n" not in e for e in errors)
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").open()]
    assert [r["name"] for r in records] == [i.name for i in items]
    for record in records:
        name = record["name"]
        if name not in sizes:
            assert record["status"] == "error" and not (tmp_path / "out" / f"{name}.png").exists()
            continue
        assert record["status"] == "ok"
        with Image.open(tmp_path / "out" / f"{name}.png") as png:
            assert png.size == sizes[name], name
        raw = np.load(tmp_path / "out" / f"{name}.npy")
        assert raw.shape == sizes[name][::-1]
        assert record["max_score"] == float(raw.max())
        assert record["sounding"] == (raw.max() > record["uth"])
        assert json.loads((tmp_path / "out" / f"{name}.json").read_text()) == {
            k: v for k, v in record.items() if k != "status"
        }
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name]
    assert leftovers == []


# ------------------------------------------------------------------------------------------
# the command line


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "avloc_cli.main", "localize", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.large  # starts subprocesses
def test_cli_silence_gives_sounding_false_with_json_and_raw(models, media, tmp_path):
    out = tmp_path / "heat.png"
    result = _cli(
        str(media["image"]), str(media["silence"]), "--checkpoint", str(models["high"]),
        "-o", str(out), "--json", "--raw",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    for key in ("peak_xy", "max_score", "area_above_uth", "sounding", "uth", "image_size"):
        assert key in record
    assert record["sounding"] is False and record["area_above_uth"] == 0.0
    assert record["uth"] == pytest.approx(models["silence_max"] + 0.02)
    raw = np.load(out.with_suffix(".npy"))
    assert raw.shape == (37, 53) and record["image_size"] == [53, 37]
    assert record["max_score"] == float(raw.max())
    y, x = np.unravel_index(np.argmax(raw), raw.shape)
    assert record["peak_xy"] == [x, y]
    image = load_image(media["image"])
    png = np.asarray(Image.open(out).convert("RGB"))
    assert png.shape == image.shape
    # the PNG is the overlay of the saved map plus a caption band across the top
    plain = overlay_heatmap(image, raw, record["uth"])
    differing = np.flatnonzero(np.any(png != plain, axis=(1, 2)))
    assert differing.size > 0 and differing[0] == 0
    np.testing.assert_array_equal(png[differing[-1] + 1 :], plain[differing[-1] + 1 :])


@pytest.mark.large  # starts subprocesses
def test_cli_subprocess_bad_input_is_one_line(models, media, tmp_path):
    result = _cli(str(media["mute"]), "--checkpoint", str(models["low"]), "-o", str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [f"avloc: error: {media['mute']}: has no audio track"]
    assert list(tmp_path.iterdir()) == []


runner = CliRunner()


def test_cli_video_with_time_and_sounding(models, media, tmp_path):
    out = tmp_path / "v.png"
    result = runner.invoke(
        app,
        ["localize", str(media["video"]), "--time", "0.5", "--checkpoint", str(models["low"]),
         "-o", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["sounding"] is True and abs(record["time"] - 0.5) < 1e-6
    assert record["video"] == str(media["video"]) and record["area_above_uth"] == 1.0
    with Image.open(out) as png:
        assert png.size == (48, 34)
    # plain text output, --uth overriding the calibration, and no raw file unless asked
    result = runner.invoke(
        app,
        ["localize", str(media["image"]), str(media["wav"]), "--checkpoint", str(models["low"]),
         "--uth", "1.0", "-o", str(tmp_path / "i.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("no sounding object found (max ")
    assert "< Uth 1.000" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.png", "v.png"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "missing.wav: no such file"),
        ("notes", "notes.wav: not a readable audio file"),
        ("empty", "empty.wav: contains no audio samples"),
        ("noframes", "noframes.wav: contains no audio samples"),
        ("mute", "mute.mp4: has no audio track"),
        ("badimage", "broken.jpg: not a readable image"),
        ("uncalibrated", "none.keras: no calibrated universal threshold"),
    ],
)
def test_cli_bad_inputs_one_line_nonzero(models, media, tmp_path, case, message):
    image, audio, model = str(media["image"]), str(media["wav"]), str(models["low"])
    args = {
        "missing": [image, str(tmp_path / "missing.wav")],
        "notes": [image, str(media["notes"])],
        "empty": [image, str(media["empty"])],
        "noframes": [image, str(media["noframes"])],
        "mute": [str(media["mute"])],
        "badimage": [str(media["badimage"]), audio],
        "uncalibrated": [image, audio],
    }[case]
    if case == "uncalibrated":
        model = str(models["none"])
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["localize", *args, "--checkpoint", model, "-o", str(out)])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avloc: error: ")
    assert message in lines[0]
    if case == "uncalibrated":  # a checkpoint outside a run: the hint names the data to give
        assert f"--checkpoint {model} --calibration-data TRAIN_SHARDS" in lines[0]
    assert not out.exists()


def test_cli_batch_directory(models, media, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_scene(20 + i, 30 + 2 * i, seed=i)).save(folder / f"p{i}.jpg")
        sf.write(folder / f"p{i}.wav", _tone(0.5 + i), 44100)
    (folder / "bad.png").write_bytes(media["badimage"].read_bytes())
    (folder / "bad.wav").write_bytes(media["wav"].read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["localize", str(folder), "--checkpoint", str(models["low"]), "-o", str(out)]
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("avloc: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"avloc: error: {folder / 'bad.png'}: not a readable image")
    assert "[progress" not in result.stderr  # no style markup leaks into the progress label
    assert "Localized 3 of 4 item(s)" in result.stdout
    for i in range(3):
        with Image.open(out / f"p{i}.png") as png:
            assert png.size == (30 + 2 * i, 20 + i)
    assert not (out / "p0.json").exists() and not (out / "p0.npy").exists()
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    # batch mode needs -o
    result = runner.invoke(app, ["localize", str(folder), "--checkpoint", str(models["low"])])
    assert result.exit_code == 2 and "needs an output directory" in result.stderr
