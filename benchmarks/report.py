"""What a benchmark prints and writes: plain-text tables, failures, progress lines and the JSON
of its numbers."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits (no exponent below 1e6), '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if value == 0 or abs(value) >= 10 ** (digits - 1):
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 else f"{value:.2e}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned first column, right-aligned others, a rule under the headers."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(items):
        first = f"{items[0]:<{widths[0]}}"
        rest = [f"{c:>{w}}" for c, w in zip(items[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print(line(list(headers)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in cells:
        print(line(row))


def print_failures(entries: Mapping[str, Mapping[str, Any]]) -> None:
    """``NAME: failed: ERROR`` under a table, for each entry whose ``error`` is set."""
    for name, entry in entries.items():
        if entry.get("error"):
            print(f"{name}: failed: {entry['error']}")


def print_progress(message: str) -> None:
    """A progress line on stderr (the ``progress`` of :func:`benchmarks.timing.alternate`)."""
    print(message, file=sys.stderr, flush=True)


def settings(args: Any, *internal: str) -> dict[str, Any]:
    """The command's options for the ``--json`` file, less ``--json`` and ``internal`` ones."""
    return {k: v for k, v in vars(args).items() if k not in ("json", *internal)}


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results: {path}")
