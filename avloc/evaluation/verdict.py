"""Did a run learn to localize and to abstain? A short verdict from an evaluation's metrics.

Input: one model's ``metrics`` entry of ``results.json`` (see :mod:`avloc.evaluation.report`):
percentages for cIoU@0.5 and pIA, cosine units for Sep. Each :class:`Check` reads one number,
compares it with a target and says in one line what the number means. Checks marked
``required=False`` are goals: reported, never a failure.

The targets are the quickstart's (a width-8 network on the built-in synthetic scenes, see the
README); an audio-free centre prior scores adaptive cIoU@0.5 = 1.5 on the quickstart's 200 test
scenes (the table's ``floor: centre prior`` row; 2.67 on the reproduction's 300).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str  #: what is tested, e.g. "localizes"
    metric: str  #: how the number is shown
    read: Callable[[dict[str, Any]], float]  #: metrics -> the number
    target: Callable[[dict[str, Any]], float]  #: metrics -> the bound
    higher_is_better: bool
    meaning: str  #: one line on what the number means
    unit: str = ""
    required: bool = True


def _get(metrics: dict[str, Any], *path: str) -> float:
    node: Any = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return math.nan
        node = node[key]
    try:
        return float(node)
    except (TypeError, ValueError):
        return math.nan


QUICKSTART_CHECKS: tuple[Check, ...] = (
    Check(
        "localizes",
        "adaptive cIoU@0.5",
        lambda m: _get(m, "positive", "adaptive", "ciou_at_05"),
        lambda m: 40.0,
        True,
        "% of test scenes where the map's top pixels (as many as the object has) overlap the "
        "sounding object with IoU >= 0.5; a map that ignores the audio gets the floor rows' "
        "(centre prior: 1.5 on the quickstart's scenes)",
        " %",
    ),
    Check(
        "listens",
        "same, with another scene's audio",
        lambda m: _get(m, "shuffled", "adaptive", "ciou_at_05"),
        lambda m: 0.5 * _get(m, "positive", "adaptive", "ciou_at_05"),
        False,
        "the shuffled-audio control: must fall to at most half, or the map ignores the sound",
        " %",
    ),
    Check(
        "abstains on silence",
        "silence pIA",
        lambda m: _get(m, "silence", "pia"),
        lambda m: 1.0,
        False,
        "% of the image above Uth when the audio is silence (0 = says nothing is sounding)",
        " %",
    ),
    Check(
        "abstains on noise",
        "noise pIA",
        lambda m: _get(m, "noise", "pia"),
        lambda m: 1.0,
        False,
        "% of the image above Uth when the audio is white noise",
        " %",
    ),
    Check(
        "separates",
        "Sep",
        lambda m: _get(m, "global", "sep"),
        lambda m: 0.3,
        True,
        "Q1 of the sounding pairs' map maxima minus Q3 of the silent/noise/offscreen ones "
        "(cosine; > 0: one threshold tells them apart)",
    ),
    Check(
        "abstains offscreen",
        "offscreen pIA",
        lambda m: _get(m, "offscreen", "pia"),
        lambda m: 10.0,
        False,
        "% of the image above Uth when the sound comes from an object not in the picture",
        " %",
        required=False,
    ),
)


@dataclass(frozen=True)
class Outcome:
    check: Check
    value: float
    bound: float

    @property
    def passed(self) -> bool:
        if math.isnan(self.value) or math.isnan(self.bound):
            return False
        if self.check.higher_is_better:
            return self.value >= self.bound
        return self.value <= self.bound


def judge(metrics: dict[str, Any], checks: tuple[Check, ...] = QUICKSTART_CHECKS) -> list[Outcome]:
    return [Outcome(c, c.read(metrics), c.target(metrics)) for c in checks]


def learned(outcomes: list[Outcome]) -> bool:
    """True when every required check passed."""
    return all(o.passed for o in outcomes if o.check.required)


def _fmt(x: float, unit: str) -> str:
    return "n/a" if math.isnan(x) else (f"{x:.2f}{unit}" if unit else f"{x:.3f}")


def verdict_lines(name: str, outcomes: list[Outcome]) -> list[str]:
    """The printed block: one line per check, its meaning, and a last line with the verdict."""
    lines = [f"Verdict for {name}:"]
    width = max(len(o.check.metric) for o in outcomes)
    for o in outcomes:
        c = o.check
        sign = ">=" if c.higher_is_better else "<="
        mark = "PASS" if o.passed else ("FAIL" if c.required else "MISS")
        goal = "" if c.required else " (goal)"
        lines.append(
            f"  {mark}  {c.metric:<{width}}  {_fmt(o.value, c.unit):>9}  "
            f"(target {sign} {_fmt(o.bound, c.unit)}{goal})"
        )
        lines.append(f"        {c.meaning}")
    if learned(outcomes):
        lines.append(
            f"  => {name} localizes the sounding object and abstains on silence and noise."
        )
    else:
        failed = ", ".join(o.check.name for o in outcomes if o.check.required and not o.passed)
        lines.append(f"  => {name} did NOT learn what the quickstart expects ({failed}).")
    return lines


def verdict_json(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "learned": learned(outcomes),
        "checks": [
            {
                "name": o.check.name,
                "metric": o.check.metric,
                "value": None if math.isnan(o.value) else o.value,
                "target": None if math.isnan(o.bound) else o.bound,
                "higher_is_better": o.check.higher_is_better,
                "required": o.check.required,
                "passed": o.passed,
            }
            for o in outcomes
        ],
    }
