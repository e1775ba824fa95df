"""The SSL-SaN paper's claims as tests on per-sample scores, each with its numbers and a verdict.

Inputs are :class:`~avloc.evaluation.scoring.Scores` per row and seed (``scores[row][seed]``),
computed at each model's own calibrated Uth. Per-sample arrays are fractions in [0, 1]
(``ciou/<family>``, ``pia/<condition>``); reported numbers are percentages, like the tables.

Differences between two models (or between a model and its shuffled-audio control) are
**paired**: the same test samples, seed by seed. Their uncertainty is a 95% percentile
two-level bootstrap interval of the mean difference (``BOOTSTRAP`` resamples, fixed seed):
training seeds are resampled, then test samples within each seed, so a verdict hinges neither
on a difference smaller than its own noise nor on one lucky seed.

The rules (thresholds are stated in the report next to each verdict):

1. *pIA far below*: SSL-SaN's pIA is at most ``FAR_BELOW`` times EZ-VSL's, under silence and
   under noise, and the paired difference is significant (interval above 0).
2. *cIoU not worse*: SSL-SaN's mean cIoU at Uth is not significantly below EZ-VSL's (the
   interval of SaN - EZ reaches 0 or above) and not lower by more than ``NOT_WORSE_POINTS``.
3. *Separability and FLOC highest for the full row*: row 7 ranks first among the ablation rows
   on both (means over seeds).
4. *The models listen*: for every method, mean cIoU with its own audio is significantly above
   that with another sample's audio (adaptive family, where the threshold does not depend on the
   map's scale; the Uth family is reported too).
5. *The task is learned*: EZ-VSL's cIoU@0.5 (adaptive family) is at least ``LEARNED_POINTS``
   above an audio-free centre prior's, significantly. The median family cannot show this on the
   synthetic scenes: an object covers at most 13% of the image, and half the pixels on bounds
   the median family's cIoU by about 0.26.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from avloc.evaluation.scoring import Scores

BOOTSTRAP = 2000
FAR_BELOW = 0.25
NOT_WORSE_POINTS = 1.0
LEARNED_POINTS = 10.0
VACUOUS_POINTS = 1.0  #: below this mean cIoU (%) on both sides, "not worse" says little

ScoresBySeed = Mapping[int, Scores]


@dataclass
class Claim:
    key: str
    text: str  #: the claim as the issue states it
    holds: bool | None  #: None when the rows it needs were not run
    evidence: str  #: one or two sentences with the numbers
    numbers: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.holds is not None:
            self.holds = bool(self.holds)  # not numpy's bool_, which JSON cannot write

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_interval(diff, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``diff`` (same units as ``diff``).

    ``diff`` is a 1-D array of per-sample differences (one seed), or a ``(seeds, samples)``
    matrix: then each resample draws the seeds with replacement and, within each drawn seed,
    the samples with replacement (a two-level bootstrap), so the interval carries the spread
    between training seeds as well as between test samples.
    """
    diff = np.asarray(diff, np.float64)
    if diff.size == 0:
        return float("nan"), float("nan")
    matrix = diff[None, :] if diff.ndim == 1 else diff
    n_seeds, n = matrix.shape
    rng = np.random.default_rng(seed)
    means = np.empty(BOOTSTRAP)
    for i in range(BOOTSTRAP):
        seeds = rng.integers(0, n_seeds, n_seeds) if n_seeds > 1 else np.zeros(1, np.int64)
        rows = rng.integers(0, n, (n_seeds, n))
        means[i] = matrix[seeds[:, None], rows].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _stack(by_seed: ScoresBySeed, key: str) -> np.ndarray:
    """``(seeds, samples)`` per-sample values, seeds in sorted order."""
    return np.stack([by_seed[s].per_sample[key] for s in sorted(by_seed)])


def paired(a: ScoresBySeed, b: ScoresBySeed, key_a: str, key_b: str | None = None) -> dict:
    """Mean of a, mean of b and the interval of a - b, all in percent."""
    seeds = sorted(set(a) & set(b))
    x = _stack({s: a[s] for s in seeds}, key_a)
    y = _stack({s: b[s] for s in seeds}, key_b or key_a)
    low, high = bootstrap_interval(100.0 * (x - y))
    return {"a": 100.0 * x.mean(), "b": 100.0 * y.mean(), "diff": 100.0 * (x - y).mean(),
            "low": low, "high": high}  # fmt: skip


def mean_metric(by_seed: ScoresBySeed, *path: str) -> float:
    values = []
    for scores in by_seed.values():
        value = scores.metrics
        for key in path:
            value = value[key]
        values.append(float(value))
    return float(np.mean(values))


def _interval(p: dict) -> str:
    return f"{p['diff']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]"


def claim_pia(scores: Mapping[str, ScoresBySeed]) -> Claim:
    text = "SSL-SaN's pIA under silence and under noise is far below EZ-VSL's"
    if "sslsan" not in scores or "ezvsl" not in scores:
        return Claim("pia_far_below", text, None, "needs the EZ-VSL and SSL-SaN rows")
    parts, ok, numbers = [], True, {}
    for condition in ("silence", "noise"):
        p = paired(scores["ezvsl"], scores["sslsan"], f"pia/{condition}")
        numbers[condition] = p
        far = p["b"] <= FAR_BELOW * p["a"] and p["low"] > 0
        ok = ok and far
        parts.append(
            f"{condition}: EZ-VSL {p['a']:.2f} vs SSL-SaN {p['b']:.2f} (EZ - SaN {_interval(p)})"
        )
    return Claim("pia_far_below", text, ok, "; ".join(parts) + ".", numbers)


def claim_ciou_not_worse(scores: Mapping[str, ScoresBySeed]) -> Claim:
    text = "SSL-SaN's positive cIoU (Uth) is not worse than EZ-VSL's"
    if "sslsan" not in scores or "ezvsl" not in scores:
        return Claim("ciou_not_worse", text, None, "needs the EZ-VSL and SSL-SaN rows")
    p = paired(scores["sslsan"], scores["ezvsl"], "ciou/universal")
    ok = p["high"] >= 0 and p["diff"] >= -NOT_WORSE_POINTS
    evidence = f"cIoU_Uth SSL-SaN {p['a']:.2f} vs EZ-VSL {p['b']:.2f} (SaN - EZ {_interval(p)})."
    if max(p["a"], p["b"]) < VACUOUS_POINTS:
        evidence = f"Vacuously: both localize almost nothing at Uth. {evidence}"
    return Claim("ciou_not_worse", text, ok, evidence, p)


def claim_full_row_best(scores: Mapping[str, ScoresBySeed], ablation_keys: list[str]) -> Claim:
    text = "Separability and FLOC are highest for the full S+N+L_S+L_N row"
    full = "ablation-7"
    present = [k for k in ablation_keys if k in scores]
    if full not in present or len(present) < 2:
        return Claim("full_row_best", text, None, "needs the ablation rows")
    numbers, parts, ok = {}, [], True
    for metric in ("sep", "floc"):
        values = {k: mean_metric(scores[k], "global", metric) for k in present}
        order = sorted(present, key=lambda k: -values[k])
        rank = order.index(full) + 1
        ok = ok and rank == 1
        numbers[metric] = {"values": values, "rank_of_full_row": rank, "best": order[0]}
        digits = 4 if metric == "sep" else 2
        best = "" if rank == 1 else f", best {order[0]} {values[order[0]]:.{digits}f}"
        parts.append(
            f"{metric.upper() if metric == 'floc' else 'Sep'}: full row {values[full]:.{digits}f}, "
            f"rank {rank} of {len(present)}{best}"
        )
    return Claim("full_row_best", text, ok, "; ".join(parts) + ".", numbers)


def claim_listening(scores: Mapping[str, ScoresBySeed], method_keys: list[str]) -> Claim:
    text = "the audio-shuffled control drops cIoU for every method (the models listen)"
    present = [k for k in method_keys if k in scores]
    if not present:
        return Claim("models_listen", text, None, "needs the method rows")
    numbers, parts, ok = {}, [], True
    for key in present:
        adaptive = paired(scores[key], scores[key], "ciou/adaptive", "ciou_shuffled/adaptive")
        universal = paired(scores[key], scores[key], "ciou/universal", "ciou_shuffled/universal")
        numbers[key] = {"adaptive": adaptive, "universal": universal}
        ok = ok and adaptive["low"] > 0
        parts.append(
            f"{key}: adaptive {adaptive['a']:.2f} -> {adaptive['b']:.2f} "
            f"({_interval(adaptive)}), Uth {universal['a']:.2f} -> {universal['b']:.2f}"
        )
    return Claim("models_listen", text, ok, "; ".join(parts) + ".", numbers)


def claim_task_learned(scores: Mapping[str, ScoresBySeed], prior: ScoresBySeed) -> Claim:
    text = "EZ-VSL on the synthetic set reaches a cIoU@0.5 that shows the task is learned"
    if "ezvsl" not in scores:
        return Claim("task_learned", text, None, "needs the EZ-VSL row")
    seeds = sorted(scores["ezvsl"])
    ez = _stack(scores["ezvsl"], "ciou/adaptive") >= 0.5
    centre = np.stack([prior[s].per_sample["ciou/adaptive"] for s in seeds]) >= 0.5
    diff = 100.0 * (ez.astype(float) - centre.astype(float))
    low, high = bootstrap_interval(diff)
    numbers = {"ezvsl": 100.0 * ez.mean(), "centre_prior": 100.0 * centre.mean(),
               "diff": float(diff.mean()), "low": low, "high": high}  # fmt: skip
    ok = numbers["diff"] >= LEARNED_POINTS and low > 0
    evidence = (
        f"adaptive cIoU@0.5: EZ-VSL {numbers['ezvsl']:.2f} vs centre prior "
        f"{numbers['centre_prior']:.2f} (difference {numbers['diff']:+.2f} [{low:+.2f}, "
        f"{high:+.2f}]; needed: at least +{LEARNED_POINTS:.0f})."
    )
    return Claim("task_learned", text, ok, evidence, numbers)


def check_claims(
    scores: Mapping[str, ScoresBySeed],
    prior: ScoresBySeed,
    method_keys: list[str],
    ablation_keys: list[str],
) -> list[Claim]:
    return [
        claim_pia(scores),
        claim_ciou_not_worse(scores),
        claim_full_row_best(scores, ablation_keys),
        claim_listening(scores, method_keys),
        claim_task_learned(scores, prior),
    ]
