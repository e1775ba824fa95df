"""Heatmap videos: frame times, audio windows, the MP4 with its audio track, the timeline, and
bad inputs (one line, nothing left behind). The model here is a tiny untrained network; whether
a trained one follows a sounding object is tested in tests/test_learning.py."""

from __future__ import annotations

import json
from pathlib import Path

import av
import keras
import numpy as np
import pytest
from fakemedia import read_frame_pattern, tone_pattern, write_video
from harness import run_avloc

from avloc.errors import AvlocError, MediaError
from avloc.jobs.video import audio_window, localize_video, output_size, output_times
from avloc.media.video import VideoWriter, frames_at, probe
from avloc.models import AudioVisualNet
from avloc.models.io import save_network

INPUTS = {"image_size": 32, "sample_rate": 16000, "clip_seconds": 1.0}


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    return AudioVisualNet(
        embed_dim=8,
        visual=dict(width=4),
        audio=dict(width=4),
        inputs=INPUTS,
        calibration={"uth": 0.25, "statistic": "test"},
        name="avnet",
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 s at 10 frames/s, frame i showing i in binary; second s plays tone_frequency(s)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, seconds=4.0, fps=10, size=(64, 48), audio_rate=16000)
    return path


def test_output_times_and_windows():
    np.testing.assert_allclose(output_times(0.0, 2.0, 2.0), [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(output_times(1.0, 1.9, 4.0), [1.0, 1.25, 1.5, 1.75])
    wave = np.arange(1, 11, dtype=np.float32)  # 10 samples at 10 Hz: 1 s
    np.testing.assert_array_equal(audio_window(wave, 10, 0.5, 4), [4, 5, 6, 7])
    np.testing.assert_array_equal(audio_window(wave, 10, 0.0, 4), [0, 0, 1, 2])  # silence before
    np.testing.assert_array_equal(audio_window(wave, 10, 1.0, 4), [9, 10, 0, 0])  # and after
    assert output_size(1920, 1080, 640) == (640, 360) and output_size(64, 48, 640) == (64, 48)


def test_frames_at_gives_the_frame_on_screen(clip):
    info = probe(clip)
    assert (info.width, info.height, info.has_audio) == (64, 48, True)
    assert info.duration == pytest.approx(4.0, abs=0.11)
    times = [0.0, 0.05, 0.1, 0.34, 1.0, 2.55, 3.9, 9.0]
    got = [read_frame_pattern(frame) for _, frame in frames_at(clip, times)]
    assert got == [0, 0, 1, 3, 10, 25, 39, 39]  # the last frame stays after the end


def test_heatmap_video_has_every_frame_the_audio_and_a_timeline(net, clip, tmp_path):
    out = tmp_path / "heat.mp4"
    result = localize_video(net, clip, out, fps=5.0, start=0.5, end=3.5, batch_size=3)
    assert result.frames == 16 and result.video == out  # 0.5, 0.7, ..., 3.5
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (64, 48)
        assert sum(1 for _ in container.decode(video)) == 16
    # the muxed track is the clip's audio from --start to --end: its seconds keep their tones
    from avloc.media.audio import load_audio

    muxed = load_audio(out, 16000)
    assert len(muxed) == pytest.approx(3.2 * 16000, rel=0.02)  # 16 frames of 0.2 s
    original = tone_pattern(4.0, 16000)
    spectrum = np.abs(np.fft.rfft(muxed[8000:24000]))
    assert np.argmax(spectrum) == np.argmax(np.abs(np.fft.rfft(original[16000:32000])))
    # timeline: JSON and CSV say the same, against the network's calibrated Uth
    data = json.loads(result.timeline_json.read_text())
    rows = data["frames"]
    assert [r["time"] for r in rows] == pytest.approx(list(output_times(0.5, 3.5, 5.0)))
    assert all(r["uth"] == 0.25 and r["sounding"] == (r["max_score"] > 0.25) for r in rows)
    lines = result.timeline_csv.read_text().splitlines()
    assert lines[0] == "time,sounding,max_score,uth,peak_x,peak_y,area_above_uth"
    assert len(lines) == 17 and lines[1].split(",")[1] in ("0", "1")
    assert result.sounding_frames == sum(r["sounding"] for r in rows)
    assert result.timeline_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_inputs_are_one_line_errors_and_leave_nothing(net, clip, tmp_path):
    silent = tmp_path / "silent.mp4"
    write_video(silent, seconds=1.0, fps=5, audio_rate=None)
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    cases = [
        (silent, tmp_path / "a.mp4", {}, MediaError, "has no audio stream"),
        (text, tmp_path / "b.mp4", {}, MediaError, "not a readable video"),
        (clip, Path("/proc/avloc-test/c.mp4"), {}, AvlocError, "cannot create the output folder"),
        (clip, tmp_path, {}, AvlocError, "exists and is a directory"),
        (clip, tmp_path / "d.mp4", {"fps": 0.0}, AvlocError, "--fps"),
        (clip, tmp_path / "e.mp4", {"start": 5.0}, AvlocError, "leave nothing"),
    ]
    for video, out, options, error, words in cases:
        with pytest.raises(error, match=words) as info:
            localize_video(net, video, out, **options)
        assert "\n" not in str(info.value)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["silent.mp4", "text.mp4"]
    # never replaces what is not a regular file: a symlink stays a symlink
    link = tmp_path / "link.mp4"
    link.symlink_to(silent)
    with pytest.raises(AvlocError, match="exists and is a symbolic link"):
        localize_video(net, clip, link)
    assert link.is_symlink() and link.resolve() == silent


def test_writer_leaves_nothing_when_aborted(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 5, (32, 32), audio_rate=16000) as writer:
            writer.write_frame(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.large  # starts subprocesses
def test_cli_writes_a_heatmap_video(net, clip, tmp_path):
    checkpoint = save_network(net, tmp_path / "net.keras")
    out = tmp_path / "heat.mp4"
    done = run_avloc(
        "localize", str(clip), "--checkpoint", str(checkpoint), "-o", str(out), "--fps", "2"
    )
    assert done.returncode == 0, done.stderr
    assert "Localized 9 frames at 2 frames/s" in done.stdout
    assert out.is_file() and out.with_suffix(".timeline.csv").is_file()
    bad = run_avloc(
        "localize", str(clip), "--checkpoint", str(checkpoint), "-o", str(out), "--fps", "-1"
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("avloc: error: --fps")


def test_a_frame_time_past_the_end_is_an_error(clip):
    from avloc.media.items import Item, load_item

    with pytest.raises(MediaError, match=r"--time 99 s is past its end \(4\.\d\d s\)"):
        load_item(Item("clip", video=clip, time=99.0), INPUTS)
    loaded = load_item(Item("clip", video=clip, time=3.9), INPUTS)
    assert loaded.image.shape == (48, 64, 3) and len(loaded.wave) == 16000
