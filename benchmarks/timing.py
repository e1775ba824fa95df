"""Interleaved timing: the compared variants take turns, so a drifting machine hits them alike.

- :func:`alternate`: run the variants in interleaved rounds (A B C A B C ...);
- :func:`summarize`: median, min, max and count of a variant's rounds;
- :func:`paired_ratio`: the median of the per-round ratios to a reference variant;
- :func:`one_line`: an exception (or text) as one short line, for tables and reports.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def alternate(
    runners: dict[str, Callable[[], float]],
    repeats: int,
    *,
    gap: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[float | None]], dict[str, str]]:
    """Call every runner once per round, in order, for ``repeats`` rounds (A B A B ...).

    Each runner returns one measurement (e.g. samples/s). A runner that raises is reported in
    the second dict (name -> message) and skipped in later rounds; its missing rounds hold
    ``None`` so the rounds of all variants stay aligned. ``gap`` seconds of sleep separate two
    runners (lets the previous one's spinning threads go idle).
    """
    values: dict[str, list[float | None]] = {name: [] for name in runners}
    failed: dict[str, str] = {}
    for round_index in range(repeats):
        for name, runner in runners.items():
            if name in failed:
                values[name].append(None)
                continue
            if gap:
                time.sleep(gap)
            try:
                value = float(runner())
            except Exception as exc:  # reported in the table
                failed[name] = one_line(exc)
                values[name].append(None)
                continue
            values[name].append(value)
            if progress:
                progress(f"round {round_index + 1}/{repeats} {name}: {value:.4g}")
    return values, failed


def summarize(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median, min, max and count of the non-missing values."""
    clean = [v for v in values if v is not None]
    if not clean:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
    }


def paired_ratio(values: Sequence[float | None], reference: Sequence[float | None]):
    """Median over rounds of ``value / reference`` measured in the same round (None if none)."""
    ratios = [
        v / r for v, r in zip(values, reference, strict=False) if v is not None and r and r > 0
    ]
    return statistics.median(ratios) if ratios else None


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
