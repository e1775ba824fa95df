"""A full disk is one line, exit status 2, and the state before it survives.

- injected: ``avloc prepare`` and ``avloc train`` whose writes fail with ENOSPC, as h5py and
  Python report it (in-process, always run);
- real: ``avloc train`` into a small tmpfs that fills up mid-run; after freeing space the same
  command resumes and finishes (needs permission to mount; skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from harness import QUICKSTART, ROOT, tiny_flags
from typer.testing import CliRunner

from avloc_cli.app import disk_full
from avloc_cli.main import app

runner = CliRunner()
#: This module's settings of a tiny quickstart run (harness.tiny_flags), beside data and epochs.
SETS = ["train.batch_size=8", "train.steps_per_epoch=2", "eval.calibration_samples=8"]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=16, test=4, seed=3)


def test_disk_full_is_recognised_in_each_form_it_takes():
    assert disk_full(OSError(errno.ENOSPC, "No space left on device", "/x/y.h5"))
    h5py_style = RuntimeError(
        "Can't write data (file write failed: filename = '/x/y.h5', errno = 28, "
        "error message = 'No space left on device')"
    )
    assert disk_full(h5py_style)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("closing failed") from None
    except RuntimeError as chained:
        assert disk_full(chained)  # raised while the first was handled
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(ValueError("errno = 280, something else"))


def test_prepare_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import avloc.data.prepare_synthetic as synthetic

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(synthetic, "write_shard", full)
    out = tmp_path / "data"
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), "--train", "8",
                                 "--test", "0", "--image-size", "32"])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("avloc: error: ") and "no space left on device" in lines[-1]
    assert "Traceback" not in result.output


# the job's backup bookkeeping is Python; every backend's save and resume is tests/test_resume.py's
@pytest.mark.once_per_suite
def test_train_on_a_full_disk_is_one_line_and_keeps_the_last_backup(shards, tmp_path, monkeypatch):
    import keras

    run_dir = tmp_path / "run"
    args = ["train", str(QUICKSTART), "--run-dir", str(run_dir)]
    result = runner.invoke(app, args + tiny_flags(*SETS, "train.epochs=1", shards=shards))
    assert result.exit_code == 0, result.output
    latest = (run_dir / "backup" / "LATEST").read_text()

    def full(self, path, *a, **k):
        raise RuntimeError(f"file write failed: filename = '{path}', errno = 28, error message = "
                           "'No space left on device'")  # fmt: skip

    monkeypatch.setattr(keras.Model, "save_weights", full)
    result = runner.invoke(
        app, args + tiny_flags(*SETS, "train.epochs=1", shards=shards) + ["--set", "seed=1"]
    )
    assert result.exit_code != 0  # another recipe: refused before any write
    result = runner.invoke(app, args[:2] + ["--run-dir", str(tmp_path / "run2")]
                           + tiny_flags(*SETS, "train.epochs=1", shards=shards))  # fmt: skip
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("avloc: error: ") and "no space left on device" in line, line
    assert "state.weights.h5" in line
    assert (run_dir / "backup" / "LATEST").read_text() == latest
    monkeypatch.undo()  # space again: the same command finishes, and the staging folder goes
    result = runner.invoke(app, args[:2] + ["--run-dir", str(tmp_path / "run2")]
                           + tiny_flags(*SETS, "train.epochs=1", shards=shards))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not list((tmp_path / "run2").rglob(".*.tmp-*"))


def test_too_little_free_space_is_refused_before_writing(shards, tmp_path, monkeypatch):
    from collections import namedtuple

    import avloc.utils.files as files

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**5))
    result = runner.invoke(app, ["train", str(QUICKSTART), "--run-dir", str(tmp_path / "run")]
                           + tiny_flags(*SETS, "train.epochs=1", shards=shards))  # fmt: skip
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "0.1 MiB free, an epoch checkpoint needs about" in line
    assert "no space left on device" in line
    assert not list((tmp_path / "run").rglob("*.h5"))


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


@pytest.mark.large  # mounts a tmpfs and trains in subprocesses
# the job's backup bookkeeping is Python; every backend's save and resume is tests/test_resume.py's
@pytest.mark.once_per_suite
def test_train_fills_a_real_disk_then_resumes_after_space_is_freed(shards, tmp_path):
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        filler = disk / "filler"
        filler.write_bytes(bytes(15 * 2**20 + 2**19))  # leaves about 0.5 MB
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "avloc_cli.main", "train", str(QUICKSTART), "--run-dir",
                   str(disk / "run"), *tiny_flags(*SETS, "train.epochs=6",
                                                  "train.backup_every_steps=1",
                                                  shards=shards)]  # fmt: skip
        full = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert full.returncode == 2, full.stderr[-2000:]
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on device" in lines[0], full.stderr[-2000:]
        filler.unlink()
        resumed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=600)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert (disk / "run" / "model.keras").is_file()
        assert not list((disk / "run").rglob(".*.tmp-*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def _env() -> dict:
    """The subprocess's environment: this checkout first (then any PYTHONPATH given)."""
    paths = [*filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), str(ROOT)]
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(paths))


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (skipped where it cannot be mounted), unmounted afterwards."""
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_prepare_onto_a_real_full_disk_is_one_line_and_status_2(small_disk):
    out = str(small_disk / "data")
    command = [sys.executable, "-m", "avloc_cli.main", "prepare", "synthetic", "--out", out,
               "--train", "200", "--test", "0", "--image-size", "64"]  # fmt: skip
    done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]  # was 139: a segmentation fault
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], done.stderr[-2000:]
    assert "synthetic-train-00000.h5 needs about" in lines[0]  # refused before its first byte
    assert not [p for p in small_disk.rglob("*") if p.is_file()]


def test_an_hdf5_write_that_fills_the_disk_ends_with_status_2_not_a_crash(small_disk):
    """The disk fills up during the write (after any free-space check): HDF5 leaves freed
    datasets behind, whose clean-up would crash; the process ends at once with status 2."""
    script = (
        "import sys, numpy as np\n"
        "from avloc_cli.app import user_errors\n"
        "from avloc.data.shards import write_shard\n"
        "n = 40\n"
        "arrays = {'id': [f's{i}' for i in range(n)],\n"
        "          'image': np.zeros((n, 64, 64, 3), np.uint8) + 7,\n"
        "          'audio': np.random.default_rng(0).random((n, 48000), np.float32) - 0.5}\n"
        "with user_errors():\n"
        "    write_shard(sys.argv[1], arrays, source='synthetic', split='train')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(small_disk / "x.h5")], env=_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("avloc: error: ") and "no space left on device" in last
    assert not [p for p in small_disk.rglob("*") if p.is_file()]
