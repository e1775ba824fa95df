"""``avloc prepare`` on broken inputs: corrupted, missing, silent or short media and boxes outside
the image are skipped with their reason in the report; a fault that is not the file's (a decoder
bug, EIO, ESTALE) stops the run and a re-run retries the sample; a missing corpus and a folder of
other shards are one-line errors."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from fakemedia import frame_pattern, write_video
from prepare_harness import (
    RATE,
    assert_same_shards,
    extracted_corpus,
    finished_shards,
    tone,
    write_jpeg,
    write_wav,
)
from typer.testing import CliRunner

from avloc.data.prepare import prepare, read_report
from avloc.data.shards import ShardSet
from avloc.data.sources import build_preparer
from avloc.errors import DataError, SampleFault, machine_fault
from avloc_cli.main import app

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# --------------------------------------------------------------------------------------------
# Broken inputs
# --------------------------------------------------------------------------------------------


def test_ten_percent_corrupted_files_are_exactly_the_report(tmp_path):
    root = tmp_path / "corpus"
    ids = extracted_corpus(root, 20)
    bad_image = root / "frames" / f"{ids[5]}.jpg"
    bad_image.write_bytes(b"this is not a JPEG at all")
    bad_audio = root / "audio" / f"{ids[13]}.wav"
    bad_audio.write_bytes(bad_audio.read_bytes()[:30])  # a truncated header, no samples

    out = tmp_path / "out"
    result = prepare(
        build_preparer("vggsound", root=root, image_size=32), out, shard_size=6, workers=2
    )
    assert result.written == 18 and result.planned == 20
    report = read_report(out / "report.tsv")
    assert {(s.id, s.file) for s in report} == {(ids[5], str(bad_image)), (ids[13], str(bad_audio))}
    assert all(s.reason for s in report)
    assert set(ShardSet(out).read(range(18), ["id"])["id"]) == set(ids) - {ids[5], ids[13]}

    # Two worker processes write exactly what one writes.
    single = tmp_path / "single"
    prepare(build_preparer("vggsound", root=root, image_size=32), single, shard_size=6)
    assert_same_shards(single, out)


def test_every_kind_of_broken_input_is_skipped_with_its_reason(tmp_path):
    root = tmp_path / "mine"
    good = frame_pattern(1, 40, 30)
    write_jpeg(root / "ok.jpg", good)
    write_wav(root / "ok.wav", tone(440, 3.0))
    write_wav(root / "silent.wav", np.zeros(3 * RATE, np.float32))
    write_wav(root / "short.wav", tone(440, 0.3))
    (root / "text.wav").write_text("hello, I am not audio\n")
    jpeg = (root / "ok.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    write_video(root / "clip.mp4", seconds=2, fps=5)
    (root / "cut.mp4").write_bytes((root / "clip.mp4").read_bytes()[:3000])
    lines = {
        "good": {"image": "ok.jpg", "audio": "ok.wav", "boxes": [[0.1, 0.1, 0.5, 0.5]]},
        "missing": {"image": "nowhere.jpg", "audio": "ok.wav"},
        "cut-video": {"video": "cut.mp4"},
        "not-audio": {"image": "ok.jpg", "audio": "text.wav"},
        "silent": {"image": "ok.jpg", "audio": "silent.wav"},
        "short": {"image": "ok.jpg", "audio": "short.wav"},
        "bad-jpeg": {"image": "truncated.jpg", "audio": "ok.wav"},
        "box-outside": {
            "image": "ok.jpg",
            "audio": "ok.wav",
            "boxes": [[10, 5, 80, 20]],
            "box_format": "pixel",
        },
        "box-inverted": {"image": "ok.jpg", "audio": "ok.wav", "boxes": [[0.6, 0.1, 0.5, 0.5]]},
    }
    manifest = root / "list.jsonl"
    manifest.write_text("".join(json.dumps({"id": k, **v}) + "\n" for k, v in lines.items()))
    result = prepare(build_preparer("manifest", manifest=manifest), tmp_path / "out")
    assert result.written == 1
    reasons = {s.id: (Path(s.file).name, s.reason) for s in result.skipped}
    expected = {
        "missing": ("nowhere.jpg", "no such file"),
        "cut-video": ("cut.mp4", "not a readable video"),
        "not-audio": ("text.wav", "not a readable audio file"),
        "silent": ("silent.wav", "audio is silent"),
        "short": ("short.wav", "audio too short (0.30 s"),
        "bad-jpeg": ("truncated.jpg", "not a readable image"),
        "box-outside": ("list.jsonl", "lies outside the image"),
        "box-inverted": ("list.jsonl", "is inverted"),
    }
    assert set(reasons) == set(expected)
    for key, (name, reason) in expected.items():
        assert reasons[key][0] == name, key
        assert reason in reasons[key][1], (key, reasons[key])
    assert len(read_report(tmp_path / "out")) == len(expected)


def _manifest_of(root: Path, lines: dict) -> Path:
    manifest = root / "list.jsonl"
    manifest.write_text("".join(json.dumps({"id": k, **v}) + "\n" for k, v in lines.items()))
    return manifest


def test_a_manifest_label_that_is_not_a_string_is_skipped_naming_the_key(tmp_path):
    root = tmp_path / "mine"
    write_jpeg(root / "ok.jpg", frame_pattern(1, 40, 30))
    write_wav(root / "ok.wav", tone(440, 3.0))
    pair = {"image": "ok.jpg", "audio": "ok.wav"}
    manifest = _manifest_of(
        root, {"good": {**pair, "label": "dog"}, "bad": {**pair, "label": ["dog"]}}
    )
    result = prepare(build_preparer("manifest", manifest=manifest), tmp_path / "out")
    assert result.written == 1
    [skip] = result.skipped
    assert (skip.id, skip.file) == ("line 2", str(manifest))
    assert skip.reason == """'label' must be a class name (a string), got ["dog"]"""
    assert ShardSet(tmp_path / "out").class_names == ["dog"]


def test_a_manifest_time_past_the_video_end_is_skipped_naming_the_video(tmp_path):
    root = tmp_path / "mine"
    write_video(root / "clip.mp4", seconds=2, fps=5)
    manifest = _manifest_of(root, {"inside": {"video": "clip.mp4", "time": 1.0},
                                   "past": {"video": "clip.mp4", "time": 30.0}})  # fmt: skip
    result = prepare(build_preparer("manifest", manifest=manifest), tmp_path / "out")
    assert result.written == 1
    [skip] = result.skipped
    assert (skip.id, Path(skip.file).name) == ("past", "clip.mp4")
    assert skip.reason.startswith("time 30 s is past its end (2.")


def _image_failing(monkeypatch, bad: Path, fault: BaseException) -> None:
    """Reading the image ``bad`` raises ``fault``: a bug of the decoder (anything but an OSError)
    patched into load_image, or an OSError such as EIO patched under it, into PIL's open."""
    import PIL.Image

    import avloc.media.image

    module, name = (
        (PIL.Image, "open") if isinstance(fault, OSError) else (avloc.media.image, "load_image")
    )
    real = getattr(module, name)

    def failing(path, *args, **kwargs):
        if Path(path) == bad:
            raise fault
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize(
    "fault",
    [
        RuntimeError("a bug in the decoder"),
        OSError(errno.EIO, "Input/output error"),
        OSError(errno.ESTALE, "Stale file handle"),
    ],
    ids=["bug", "EIO", "ESTALE"],
)
def test_a_fault_not_of_the_file_stops_the_run_and_a_rerun_retries_the_sample(
    tmp_path, monkeypatch, fault
):
    root = tmp_path / "corpus"
    ids = extracted_corpus(root, 5)
    bad = root / "frames" / f"{ids[3]}.jpg"  # in the second of three chunks of two
    out = tmp_path / "out"
    args = ["--root", str(root), "--image-size", "32", "--shard-size", "2", "--workers", "1"]

    with monkeypatch.context() as patch:
        _image_failing(patch, bad, fault)
        runner = CliRunner()
        result = runner.invoke(app, ["prepare", "vggsound", *args, "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"avloc: error: {bad}: "), result.stderr
        assert ids[3] in lines[0] and type(fault).__name__ in lines[0]
        with pytest.raises(SampleFault) as raised:  # the API says the same, cause attached
            prepare(build_preparer("vggsound", root=root, image_size=32), out, shard_size=2)
        assert raised.value.__cause__ is fault and "\n" not in str(raised.value)
    # The first chunk is finished; the faulty one is not recorded (neither state nor shard).
    assert finished_shards(out) == ["vggsound-train-00000.h5"]
    assert not (out / ".prepare" / "vggsound-train-00001.json").exists()

    # The fault gone, a re-run keeps the finished chunk and prepares the sample.
    again = prepare(build_preparer("vggsound", root=root, image_size=32), out, shard_size=2)
    assert (again.reused_shards, again.new_shards, again.decoded) == (1, 2, 3)
    assert again.written == 5 and again.skipped == [] and read_report(out) == []
    assert sorted(ShardSet(out).read(range(5), ["id"])["id"]) == ids


def test_an_input_error_is_a_skip_but_a_machine_error_is_not():
    # Only an errno about the machine is its fault; a missing or forbidden file is the input's.
    assert machine_fault(OSError(errno.EIO, "Input/output error"))
    assert machine_fault(OSError(errno.ESTALE, "Stale file handle"))
    assert not machine_fault(OSError(errno.ENOENT, "No such file"))
    assert not machine_fault(OSError(errno.EACCES, "Permission denied"))
    assert not machine_fault(OSError("image file is truncated"))  # PIL: no errno
    assert not machine_fault(ValueError("bad data"))


def test_ffmpeg_eio_of_a_readable_file_is_the_files_problem(tmp_path):
    # FFmpeg answers EIO for some truncated files: that counts as the machine's only when
    # reading the bytes fails too.
    import av.error

    clip = tmp_path / "clip.mkv"
    clip.write_bytes(b"\x1a\x45\xdf\xa3 truncated")
    with pytest.raises(av.error.FFmpegError) as raised:
        av.error.err_check(-errno.EIO, str(clip))
    ffmpeg_eio = raised.value
    assert isinstance(ffmpeg_eio, OSError) and ffmpeg_eio.errno == errno.EIO
    assert not machine_fault(ffmpeg_eio, str(clip))
    assert machine_fault(ffmpeg_eio)  # without the file to check: the machine's


def test_missing_corpus_or_annotations_is_one_line_error(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nowhere"
    cases = [
        ["vggss", "--root", str(tmp_path), "--annotations", str(missing / "vggss.json")],
        ["vggsound", "--root", str(missing)],
        ["flickr", "--root", str(missing)],
        ["avsbench-s4", "--root", str(tmp_path)],
        ["is3", "--annotations", str(missing / "x.json")],
        ["manifest", str(missing / "list.jsonl")],
    ]
    for case in cases:
        result = runner.invoke(app, ["prepare", *case, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, (case, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("avloc: error: "), result.output
        assert "not found" in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.h5"))


def test_a_directory_holding_other_shards_is_refused(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "synthetic-train-00000.h5").write_bytes(b"")
    with pytest.raises(DataError, match="holds other shards"):
        prepare(build_preparer("vggsound", root=root), out)
