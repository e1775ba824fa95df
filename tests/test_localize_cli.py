"""``avloc localize`` in batch mode over a folder of what users actually have (image modes, audio
formats, rotated and broken files), and the command: JSON and raw outputs, a caption when it
abstains, one-line errors (the Typer app and subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from localize_harness import save_models, scene, tone, write_av, write_media
from PIL import Image
from typer.testing import CliRunner

from avloc.jobs import localize as lz
from avloc.media.image import load_image
from avloc.media.overlay import overlay_heatmap
from avloc.models import AudioVisualNet
from avloc.models.io import load_network
from avloc_cli.main import app

ROOT = Path(__file__).resolve().parents[1]


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
# batch mode over a directory of what users actually have


def _write_user_folder(folder: Path, media: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """Pairs in many image modes and audio formats; returns the expected (W, H) per name."""
    folder.mkdir()
    base = scene(45, 61, seed=5)
    sizes: dict[str, tuple[int, int]] = {}

    def pair(name: str, pil: Image.Image, ext: str, audio: str, **save) -> None:
        pil.save(folder / f"{name}{ext}", **save)
        (folder / f"{name}.{audio}").write_bytes(audio_bytes[audio])
        sizes[name] = pil.size

    audio_bytes = {}
    for fmt, seconds, rate in [("wav", 0.4, 44100), ("flac", 6.0, 22050), ("ogg", 1.3, 48000)]:
        path = folder / f"_tmp.{fmt}"
        sf.write(path, tone(seconds, rate), rate)
        audio_bytes[fmt] = path.read_bytes()
        path.unlink()
    mp3 = folder / "_tmp.mp3"
    sf.write(mp3, tone(2.0, 44100), 44100, format="MP3")
    audio_bytes["mp3"] = mp3.read_bytes()
    mp3.unlink()
    m4a = folder / "_tmp.m4a"
    write_av(m4a, 1.5, video=False)
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
@pytest.mark.jax
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
        ("time-past-audio", "tone.wav: --time 1e+300 s is past its end"),
        ("time-infinite", "--time must be a finite number of seconds >= 0, got inf"),
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
        "time-past-audio": [image, audio, "--time", "1e300"],
        "time-infinite": [image, audio, "--time", "inf"],
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
        Image.fromarray(scene(20 + i, 30 + 2 * i, seed=i)).save(folder / f"p{i}.jpg")
        sf.write(folder / f"p{i}.wav", tone(0.5 + i), 44100)
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


# ------------------------------------------------------------------------------------------
# output paths are checked before the first byte is written


def test_cli_raw_onto_a_symlink_writes_no_png(models, media, tmp_path):
    out = tmp_path / "heat.png"
    target = tmp_path / "elsewhere.npy"
    out.with_suffix(".npy").symlink_to(target)
    args = [str(media["image"]), str(media["wav"]), "--checkpoint", str(models["low"])]
    result = runner.invoke(app, ["localize", *args, "-o", str(out), "--raw"])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [f"avloc: error: {out.with_suffix('.npy')}: exists and is a symbolic link; "
                     "avloc only replaces regular files"]  # fmt: skip
    assert not out.exists() and not target.exists()


def test_batch_raw_onto_a_symlink_fails_that_item_alone(net, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(scene(20, 30, seed=i)).save(folder / f"p{i}.png")
        sf.write(folder / f"p{i}.wav", tone(0.5), 16000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0.npy").symlink_to(tmp_path / "elsewhere.npy")
    summary = lz.run_batch(net, lz.items_from_directory(folder), out, write_raw=True)
    assert summary.ok == 1 and len(summary.failed) == 1
    assert summary.failed[0].startswith(f"{out / 'p0.npy'}: exists and is a symbolic link")
    assert not (out / "p0.png").exists() and (out / "p1.png").is_file()


def test_batch_results_onto_a_directory_writes_nothing(net, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(scene(20, 30, seed=0)).save(folder / "p0.png")
    sf.write(folder / "p0.wav", tone(0.5), 16000)
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)
    with pytest.raises(lz.AvlocError, match=r"results\.jsonl: exists and is a directory"):
        lz.run_batch(net, lz.items_from_directory(folder), out)
    assert [p.name for p in out.iterdir()] == ["results.jsonl"]
