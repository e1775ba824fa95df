"""Atomic writes replace only regular files, leave nothing behind, and fail in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avloc.errors import AvlocError
from avloc.utils.files import atomic_path, atomic_write_bytes

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


def test_a_regular_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["out.json"]
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["out.json"]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_what_is_not_a_regular_file_is_never_replaced(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "out.png"
    if kind == "symlink":
        target.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(
        AvlocError, match=r"out\.png: exists and is .*only replaces regular"
    ) as info:
        atomic_write_bytes(target, b"png")
    assert "\n" not in str(info.value)
    assert victim.read_text() == "keep me"
    assert (target.is_symlink(), target.is_dir()) == (kind == "symlink", kind == "directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "victim.txt"]


def test_an_output_folder_that_cannot_be_made_is_one_line():
    with pytest.raises(AvlocError, match="cannot create the output folder") as info:
        atomic_write_bytes(Path("/proc/avloc-test/out.json"), b"{}")
    assert "\n" not in str(info.value)
