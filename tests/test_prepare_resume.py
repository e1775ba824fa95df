"""``avloc prepare`` runs interrupted and run again: ``kill -9`` during a multi-shard run, then a
resume equal to an uninterrupted run; no worker outlives a killed run; a re-run keeps its shards
and a changed plan rewrites them; the synthetic set resumes and keeps no shard another setting
made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prepare_harness import assert_same_shards, extracted_corpus, finished_shards
from typer.testing import CliRunner

from avloc.data.prepare import PAUSE_ENV, prepare
from avloc.data.shards import ShardSet, read_info
from avloc.data.sources import build_preparer
from avloc_cli.main import app

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

REPO = Path(__file__).resolve().parents[1]


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
# The synthetic set
# --------------------------------------------------------------------------------------------


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
