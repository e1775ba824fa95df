"""The report of skipped samples (``report.tsv``): write and read."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from avloc.data.prepare.plan import REPORT_NAME, Skip
from avloc.utils.files import atomic_write_bytes


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def write_report(path: Path, skipped: Iterable[Skip]) -> Path:
    """Write ``id<TAB>file<TAB>reason`` rows (header first, sorted by id) atomically."""
    buffer = io.StringIO()
    buffer.write("id\tfile\treason\n")
    for s in sorted(skipped, key=lambda s: (s.id, s.file, s.reason)):
        buffer.write(f"{_clean(s.id)}\t{_clean(s.file)}\t{_clean(s.reason)}\n")
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def read_report(path: str | Path) -> list[Skip]:
    """The rows of a ``report.tsv`` (empty when the file does not exist)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_NAME
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        return [Skip(*row[:3]) for row in reader if len(row) >= 3]
