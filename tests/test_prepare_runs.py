"""``avloc prepare`` runs: resuming after ``kill -9``, broken inputs, workers, the CLI, inspect."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from fakemedia import frame_pattern, write_video
from PIL import Image
from typer.testing import CliRunner

from avloc.data.prepare import PAUSE_ENV, prepare, read_report
from avloc.data.shards import ShardSet, read_info
from avloc.data.sources import build_preparer
from avloc.errors import DataError, SampleFault, machine_fault
from avloc_cli.main import app

RATE = 16000
REPO = Path(__file__).resolve().parents[1]


def write_jpeg(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)
    return path


def write_wav(path: Path, wave: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(wave, np.float32), rate, subtype="PCM_16")
    return path


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * RATE))) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def extracted_corpus(root: Path, count: int, seconds: float = 1.5) -> list[str]:
    """``frames/<id>.jpg`` + ``audio/<id>.wav`` for ``count`` ids, each image and tone distinct."""
    ids = [f"clip{i:02d}_{i:06d}" for i in range(count)]
    for i, name in enumerate(ids):
        write_jpeg(root / "frames" / f"{name}.jpg", frame_pattern(i, 32, 24))
        write_wav(root / "audio" / f"{name}.wav", tone(300 + 40 * i, seconds))
    return ids


def finished_shards(out: Path) -> list[str]:
    """Names of the finished shards (temporary files start with a dot)."""
    return sorted(p.name for p in out.glob("*.h5") if not p.name.startswith("."))


def shard_contents(out: Path) -> dict[str, tuple[dict, dict]]:
    """Every shard's datasets and attributes, by file name."""
    contents = {}
    for path in (out / name for name in finished_shards(out)):
        with h5py.File(path, "r") as f:
            data = {k: f[k][...] for k in f}
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        contents[path.name] = (data, attrs)
    return contents


def assert_same_shards(a: Path, b: Path) -> None:
    first, second = shard_contents(a), shard_contents(b)
    assert list(first) == list(second) and first
    for name, (data, attrs) in first.items():
        other_data, other_attrs = second[name]
        assert attrs == other_attrs, name
        assert sorted(data) == sorted(other_data)
        for key, value in data.items():
            assert value.dtype == other_data[key].dtype
            assert np.array_equal(value, other_data[key]), f"{name}:{key}"


# --------------------------------------------------------------------------------------------
# Resume after kill -9
# --------------------------------------------------------------------------------------------


@pytest.mark.large  # starts subprocesses
def test_kill_during_a_multi_shard_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 7)
    args = ["--root", str(root), "--shard-size", "2", "--image-size", "32"]

    # Uninterrupted reference run.
    reference = tmp_path / "reference"
    prepare(
        build_preparer("vggsound", root=root, image_size=32), reference, shard_size=2, workers=1
    )
    assert len(finished_shards(reference)) == 4

    # The CLI run sleeps after each shard; kill -9 it after the first shard is on disk.
    out = tmp_path / "out"
    env = dict(os.environ, **{PAUSE_ENV: "60"})
    command = [
        sys.executable,
        "-m",
        "avloc_cli.main",
        "prepare",
        "vggsound",
        *args,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not finished_shards(out) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert finished_shards(out) == ["vggsound-train-00000.h5"]
    first = out / "vggsound-train-00000.h5"
    stamp = first.stat().st_mtime_ns
    # A writer killed mid-shard leaves a temporary file behind: the next run removes it.
    (out / ".vggsound-train-00001.tmp-999999999.h5").write_bytes(b"half a shard")

    result = prepare(
        build_preparer("vggsound", root=root, image_size=32), out, shard_size=2, workers=1
    )
    assert result.reused_shards == 1 and result.new_shards == 3 and result.decoded == 5
    assert first.stat().st_mtime_ns == stamp  # kept, not rewritten
    assert not list(out.glob(".*.tmp-*"))
    assert_same_shards(reference, out)
    assert len(ShardSet(out)) == 7 and len(set(ShardSet(out).read(range(7), ["id"])["id"])) == 7


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killed_prepare_leaves_no_worker_behind(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 12)
    out = tmp_path / "out"
    env = dict(os.environ, **{PAUSE_ENV: "60"})
    command = [sys.executable, "-m", "avloc_cli.main", "prepare", "vggsound", "--root", str(root),
               "--shard-size", "2", "--image-size", "32", "--workers", "2",
               "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not finished_shards(out) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers  # the pool (and maybe its resource tracker)
    finally:
        proc.kill()  # kill -9 of the parent alone, as a crash or the OOM killer would
        proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived their parent"


def test_rerun_keeps_shards_and_a_changed_plan_rewrites_them(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 5)
    out = tmp_path / "out"

    def run(**options):
        return prepare(build_preparer("vggsound", root=root, **options), out, shard_size=2)

    first = run(image_size=32)
    assert (first.new_shards, first.reused_shards, first.decoded) == (3, 0, 5)
    again = run(image_size=32)
    assert (again.new_shards, again.reused_shards, again.decoded) == (0, 3, 0)
    changed = run(image_size=40)
    assert (changed.new_shards, changed.decoded) == (3, 5)
    assert ShardSet(out).read([0], ["image"])["image"].shape == (1, 40, 40, 3)
    # Fewer, larger shards: the old ones beyond the plan are removed (no duplicates).
    prepare(build_preparer("vggsound", root=root, image_size=40), out, shard_size=10)
    assert finished_shards(out) == ["vggsound-train-00000.h5"]
    assert len(ShardSet(out)) == 5


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


# --------------------------------------------------------------------------------------------
# CLI summary and inspect
# --------------------------------------------------------------------------------------------


def test_cli_summary_and_inspect_draws_the_boxes(tmp_path):
    root = tmp_path / "vggss"
    entries = []
    for i, cls in enumerate(["dog", "cat", "dog"]):
        name = f"v{i}_000000"
        write_jpeg(root / "frames" / f"{name}.jpg", np.zeros((60, 80, 3), np.uint8))
        write_wav(root / "audio" / f"{name}.wav", tone(300 + 200 * i, 4.0))
        entries.append({"file": name, "class": cls, "bbox": [[0.403125, 0.253125, 0.6, 0.75]]})
    entries.append({"file": "gone_000000", "class": "cat", "bbox": [[0, 0, 1, 1]]})
    (root / "vggss.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["prepare", "vggss", "--root", str(root), "--annotations", str(root / "vggss.json")]
        + ["--out", str(out), "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    # The entry whose media are not on disk is left out at planning, named by its file.
    assert "3 of 3 samples in 1 shard(s)" in result.output
    assert "skipped 1 broken input(s)" in result.output and "samples/s" in result.output
    report = (out / "report.tsv").read_text()
    assert "gone_000000" in report and str(root / "frames" / "gone_000000.jpg") in report

    png = tmp_path / "sheet.png"
    result = runner.invoke(app, ["prepare", "inspect", str(out), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "3 samples in 1 shard(s)" in result.output and "ground_truth=boxes" in result.output
    assert "classes: 2 with samples: dog 2, cat 1" in result.output
    assert (
        "offscreen_audio" in result.output and "inputs skipped at preparation: 1" in result.output
    )
    sheet = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # The first tile (224 px, black image): its box's left edge at x = 0.403125 * 224 = 90.3.
    edge = sheet[60:160, 88:93]
    red = (edge[..., 0] > 200) & (edge[..., 1] < 100) & (edge[..., 2] < 100)
    assert red.any(axis=1).all()
    inside = sheet[60:160, 100:130]
    assert inside.max() < 30  # the image itself is black


# --------------------------------------------------------------------------------------------
# --part I/N: a job array prepares a corpus in parallel
# --------------------------------------------------------------------------------------------


def test_parts_are_disjoint_and_their_union_equals_an_unsplit_run(tmp_path):
    from avloc.data.inspect import inspect_shards

    root = tmp_path / "corpus"
    ids = extracted_corpus(root, 9)
    (root / "frames" / f"{ids[4]}.jpg").write_bytes(b"not a JPEG")  # a skip in part 2
    (root / "audio" / f"{ids[8]}.wav").write_bytes(b"not a WAV")  # the last chunk: no shard

    def preparer():
        return build_preparer("vggsound", root=root, image_size=32)

    reference = tmp_path / "reference"
    prepare(preparer(), reference, shard_size=2)
    assert len(finished_shards(reference)) == 4  # of 5 chunks: part 1 has 0, 2 has 1-2, 3 has 3-4

    out = tmp_path / "out"
    # A dead writer's leftover of a chunk of part 3: parts 1 and 2 leave it alone.
    leftover = out / ".vggsound-train-00003.tmp-999999999.h5"
    out.mkdir()
    leftover.write_bytes(b"half a shard")
    names = []
    for index in (2, 1, 3):  # any order
        result = prepare(preparer(), out, shard_size=2, part=(index, 3))
        names.append({p.name for p in result.shards})
        assert leftover.exists() == (index != 3)
    assert [len(n) for n in names] == [2, 1, 1]
    assert not set.intersection(*names) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert set.union(*names) == set(finished_shards(reference))
    assert_same_shards(reference, out)
    assert read_report(out) == read_report(reference)  # every part's skips
    assert {s.id for s in read_report(out)} == {ids[4], ids[8]}
    summary, expected = (json.loads((d / "prepare.json").read_text()) for d in (out, reference))
    assert summary == expected
    assert inspect_shards(out).count == inspect_shards(reference).count == 7
    assert list(ShardSet(out).read(range(7), ["id"])["id"]) == sorted(set(ids) - {ids[4], ids[8]})

    # A part run again keeps its shards (resumable like any run).
    again = prepare(preparer(), out, shard_size=2, part=(3, 3))
    assert again.reused_shards == 1 and again.decoded == 0  # chunk 4 has no shard


def test_parts_of_the_synthetic_set_union_to_the_unsplit_set(tmp_path):
    from avloc.data.prepare_synthetic import prepare_synthetic
    from avloc.data.synthetic import SyntheticConfig

    config = SyntheticConfig(image_size=32, clip_seconds=0.5)
    options = dict(train=7, test=4, seed=2, config=config, shard_size=3)
    reference = prepare_synthetic(tmp_path / "reference", **options)
    first = prepare_synthetic(tmp_path / "out", part=(1, 2), **options)
    second = prepare_synthetic(tmp_path / "out", part=(2, 2), **options)
    for split in ("train", "test"):
        a, b = {p.name for p in first[split]}, {p.name for p in second[split]}
        assert a and b and not a & b
        assert a | b == {p.name for p in reference[split]}
        assert_same_shards(tmp_path / "reference" / split, tmp_path / "out" / split)


def test_prepare_synthetic_resumes_and_keeps_no_shard_of_another_fingerprint(tmp_path):
    """A re-run keeps the complete shards (the same files), writes again the ones an interrupted
    run lost or left broken, the same bytes, and never keeps a shard another setting made."""
    runner = CliRunner()

    def synthetic(out: Path, *more: str):
        args = ["prepare", "synthetic", "--out", str(out), "--train", "6", "--test", "2"]
        result = runner.invoke(app, args + ["--shard-size", "2", "--image-size", "32", *more])
        assert result.exit_code == 0, result.output
        return sorted(out.rglob("*.h5"))

    def stamps(paths):
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}

    out = tmp_path / "s"
    shards = synthetic(out)
    assert [p.name for p in shards] == ["synthetic-test-00000.h5"] + [
        f"synthetic-train-{i:05d}.h5" for i in range(3)
    ]
    reference = {p: p.read_bytes() for p in shards}
    before = stamps(shards)
    assert synthetic(out) == shards and stamps(shards) == before  # complete: kept as they are

    # Interrupted: a shard lost, one cut short, a dead writer's temporary file.
    lost, cut, kept = shards[1], shards[2], [shards[0], shards[3]]
    lost.unlink()
    cut.write_bytes(reference[cut][:1000])
    leftover = out / "train" / ".synthetic-train-00002.tmp-999999999.h5"
    leftover.write_bytes(b"half a shard")
    synthetic(out)
    assert {p: p.read_bytes() for p in shards} == reference
    assert stamps(kept) == {p: before[p] for p in kept} and not leftover.exists()

    # Another seed makes another fingerprint: a complete shard of the same size that it did not
    # make is not kept, whatever its name.
    other = synthetic(tmp_path / "other", "--seed", "1")
    foreign = out / "train" / "synthetic-train-00001.h5"
    foreign.write_bytes(other[2].read_bytes())
    assert read_info(foreign).count == 2 and read_info(foreign).attrs["seed"] == 1
    synthetic(out)
    assert foreign.read_bytes() == reference[foreign]
    rows = ShardSet(out / "train").read(range(6), ["id"])["id"]
    assert all(i.startswith("synthetic-train-0-") for i in rows)
    synthetic(out, "--seed", "1")  # the whole set follows the new settings
    assert {p.name: p.read_bytes() for p in shards} == {p.name: p.read_bytes() for p in other}


def test_cli_part_option_and_its_errors(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 4)
    args = ["prepare", "vggsound", "--root", str(root), "--out", str(tmp_path / "out")]
    args += ["--shard-size", "2", "--image-size", "32"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--part", "2/2"])
    assert result.exit_code == 0, result.output
    assert "part 2/2" in result.output and "2 of 2 samples in 1 shard(s)" in result.output
    assert finished_shards(tmp_path / "out") == ["vggsound-train-00001.h5"]
    for bad in ("3/2", "0/2", "two", "1/0"):
        result = runner.invoke(app, [*args, "--part", bad])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("avloc: error: --part"), result.output
    result = runner.invoke(
        app,
        ["prepare", "synthetic", "--out", str(tmp_path / "s"), "--train", "4", "--test", "0"]
        + ["--shard-size", "2", "--image-size", "32", "--part", "1/2"],
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in sorted((tmp_path / "s" / "train").glob("*.h5"))] == [
        "synthetic-train-00000.h5"
    ]
