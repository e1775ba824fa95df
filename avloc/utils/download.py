"""Resumable HTTP(S) downloads with the standard library (``urllib.request``).

:func:`download` writes ``TARGET.part`` and renames it to ``TARGET`` once it is complete (and its
SHA-256 matches, when one is given). A download that breaks off keeps ``TARGET.part``; the next
call asks for the rest with an HTTP ``Range: bytes=N-`` request and appends it (a server that
answers 200 instead of 206 sends the whole file again, which replaces the part). A checksum
mismatch removes the part. Every failure is one :class:`~avloc.errors.DataError` line.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from avloc.errors import DataError
from avloc.utils.files import file_sha256

CHUNK = 1 << 16
#: ``progress(done, total)``: bytes on disk so far and the file's size (None when unknown).
Progress = Callable[[int, int | None], None]


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _total(response, offset: int) -> int | None:
    """The whole file's size from a 206's ``Content-Range`` or a 200's ``Content-Length``."""
    found = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range") or "")
    if found:
        return int(found.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "avloc"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the table's URL)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None  # nothing after offset: the part is already whole
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url} ({reason})") from None


def _receive(url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    """Fetch what ``part`` lacks; a broken transfer keeps what arrived and says so."""
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout)
    if response is None:
        return
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range: it sends the whole file
        total = _total(response, offset)
        done = offset
        try:
            with open(part, "ab" if offset else "wb") as f:
                if progress:
                    progress(done, total)
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (http.client.HTTPException, OSError) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise  # the local disk, not the connection
            broken = True
        else:
            broken = total is not None and done < total
        if broken:
            of = "" if total is None else f" of {total}"
            raise DataError(
                f"download of {url} broke off at {done}{of} bytes (kept in {part}); run the "
                "same command again to resume it"
            )


def download(
    url: str,
    target: str | Path,
    sha256: str | None = None,
    *,
    progress: Progress | None = None,
    timeout: float = 30,
) -> Path:
    """``target``, downloaded from ``url`` first unless it is there (see the module)."""
    target = Path(target)
    part = part_path(target)
    if target.is_file():
        if sha256 and file_sha256(target) != sha256.lower():
            raise DataError(
                f"{target}: does not match its published SHA-256 {sha256}; delete it to "
                "download again"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _receive(url, part, timeout, progress)
    if sha256:
        got = file_sha256(part)
        if got != sha256.lower():
            part.unlink(missing_ok=True)
            raise DataError(
                f"download of {url} has SHA-256 {got}, not the published {sha256}; removed it "
                "(run the same command again to download it afresh)"
            )
    os.replace(part, target)
    return target
