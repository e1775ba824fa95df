"""Atomic file writes: nothing half-written is ever left under the final name.

Every writer writes to ``<name>.tmp-<pid>`` in the same directory and renames it into place with
``os.replace`` (atomic on POSIX); on an exception the temporary file is removed. Only a regular
file (or nothing) at the final name is ever replaced: a directory, a symlink, a FIFO or a
device there is refused with one line (:func:`check_replaceable`), and a folder that cannot be
written is one line too, both :class:`~avloc.errors.AvlocError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from avloc.errors import AvlocError


def check_replaceable(path: str | Path) -> Path:
    """``path`` if nothing or a regular file is there; AvlocError naming it otherwise."""
    from avloc.errors import AvlocError

    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = (
            "a symbolic link"
            if path.is_symlink()
            else "a directory"
            if path.is_dir()
            else "not a regular file"
        )
        raise AvlocError(f"{path}: exists and is {kind}; avloc only replaces regular files")
    return path


def check_folder(folder: str | Path) -> Path:
    """``folder`` if it is a directory or can become one; AvlocError naming the nearest of it and
    its parents that exists and is not a directory."""
    folder = Path(folder)
    for probe in (folder, *folder.parents):
        if probe.is_dir():
            return folder
        if probe.exists() or probe.is_symlink():
            raise AvlocError(f"{probe}: exists and is not a directory")
    return folder


def check_outputs(*paths: str | Path | None) -> None:
    """Before the first byte of a job is written: every path of ``paths`` (``None`` skipped) is
    one :func:`atomic_path` may write, its folder a directory or absent and nothing but a
    regular file at the name (:func:`check_replaceable`)."""
    for path in paths:
        if path is not None:
            check_folder(Path(path).parent)
            check_replaceable(path)


def make_parent(path: str | Path) -> None:
    """Create the folder of ``path``; one-line AvlocError when that is not possible."""
    from avloc.errors import AvlocError

    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AvlocError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AvlocError(f"{folder}: cannot write there (permission denied)")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    path = check_replaceable(path)
    make_parent(path)
    suffix = "".join(path.suffixes) or ""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        check_replaceable(path)  # not swapped for something else meanwhile
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


#: The name of a temporary file or staging folder (:func:`atomic_path`): ``.STEM.tmp-PID[.EXT]``.
TEMPORARY_NAME = re.compile(r"^\.(?P<stem>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\..*)?$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove ``folder``'s temporary files and staging folders whose process has ended.

    Those are what a killed writer leaves (``.NAME.tmp-PID[.EXT]``, see :func:`atomic_path`);
    ones of a process still alive are kept. Returns what was removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = TEMPORARY_NAME.match(entry.name)
        if not match or process_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


#: Room kept beyond a file's own size when checking free space, bytes (h5 and zip overheads).
SPACE_MARGIN = 2**20


def check_free_space(folder: str | Path, needed: int, what: str) -> None:
    """AvlocError (one line) when ``folder``'s file system has less than ``needed`` bytes free
    (plus :data:`SPACE_MARGIN` and 10 %). ``what`` names the file in the message."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    want = int(needed * 1.1) + SPACE_MARGIN
    if free < want:
        raise AvlocError(
            f"{folder}: {free / 2**20:.1f} MiB free, {what} needs about {want / 2**20:.1f} MiB: "
            "no space left on device (finished outputs and backups are kept; free space and run "
            "the same command again)"
        )


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def cache_dir() -> Path:
    """avloc's cache (downloads, Keras-free copies of networks): ``$AVLOC_CACHE`` or
    ``~/.cache/avloc``."""
    return Path(os.environ.get("AVLOC_CACHE") or Path.home() / ".cache" / "avloc").expanduser()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
