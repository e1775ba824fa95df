"""The SSL-SaN paper's claims as tests on per-sample scores, each with its numbers and a verdict.

Inputs are :class:`~avloc.evaluation.scoring.Scores` per row and seed (``scores[row][seed]``),
computed at each model's own calibrated Uth. Per-sample arrays are fractions in [0, 1]
(``ciou/<family>``, ``pia/<condition>``); reported numbers are percentages, like the tables.

Differences between two models (or between a model and its shuffled-audio control) are
**paired**: the same test samples, seed by seed. Their uncertainty is a 95% percentile
two-level bootstrap interval ``[low, high]`` of the mean difference (``BOOTSTRAP`` resamples,
fixed seed): training seeds are resampled, then test samples within each seed, so a verdict
hinges neither on a difference smaller than its own noise nor on one lucky seed.

Each claim gets one of three verdicts, decided by its interval either way: ``"holds"`` (the
interval lies on the claim's side of its threshold), ``"fails"`` (it lies on the other side) or
``"too close to call"`` (it reaches both sides: more seeds or test samples could tip it). A claim
whose rows were not trained has the verdict ``None`` ("not run"). :attr:`Claim.holds`, and
``holds`` in the JSON beside ``verdict``, is true for "holds", false for "fails" and null
(None) for "too close to call" and for "not run".

The rules (thresholds are stated in the report next to each verdict):

1. *pIA far below EZ-VSL's* (``pia_far_below``). Per negative condition (silence, noise), with
   EZ-VSL's mean pIA ``a``, SSL-SaN's ``b`` and the interval of EZ - SaN: the condition holds
   when ``b <= FAR_BELOW * a`` and ``low > 0``; it fails when
   ``high < (1 - FAR_BELOW) * a`` (even the interval's most favourable end does not reach the
   drop that puts SaN at ``FAR_BELOW * a``) or ``high <= 0`` (the whole interval is at or below
   0); otherwise it is too close to call. The claim holds when both conditions hold, fails when
   either fails, and is too close to call otherwise.
2. *cIoU not worse than EZ-VSL's* (``ciou_not_worse``). The interval of SaN - EZ, mean cIoU at
   Uth (universal family): holds when ``low > -NOT_WORSE_POINTS``, fails when
   ``high < -NOT_WORSE_POINTS``, too close to call otherwise. When both means are below
   ``VACUOUS_POINTS`` the evidence starts with "Vacuously" (both localize almost nothing at
   Uth); the verdict stands.
3. *Separability and FLOC highest for the full row* (``full_row_best``), row 7 ("ablation-7")
   against every other ablation row that was trained. Sep (Q1 of positive map maxima - Q3 of
   negative ones) and FLOC (harmonic mean of cIoU at Uth and 100 - pIA) are statistics of a
   whole test set, not means of per-sample values, so their intervals recompute them: each
   resample draws the seeds, then the test samples within each drawn seed (the same draws for
   every row: paired), recomputes each row's Sep and FLOC from its per-sample arrays
   (``max/<condition>``, ``ciou/universal``, ``pia/<negative>``) and averages over the drawn
   seeds; the interval is that of full row - other row. Per metric: it holds when the full row
   has the highest mean over seeds and every interval of full - other is above 0 (``low >
   0``); it fails when some other row is better with an interval entirely above 0 (full - that
   row: ``high < 0``); otherwise too close to call. The claim holds when both metrics hold,
   fails when either fails, and is too close to call otherwise.
4. *The models listen* (``models_listen``). Per method, the interval of cIoU with its own
   audio - cIoU with another sample's audio, adaptive family (where the threshold does not
   depend on the map's scale; the Uth family is reported too): the claim holds when every
   method's ``low > 0``, fails when some method's ``high <= 0``, and is too close to call
   otherwise.
5. *The task is learned* (``task_learned``). The interval of EZ-VSL's cIoU@0.5 (adaptive
   family) - an audio-free centre prior's: holds when ``low > 0`` and the mean difference is at
   least ``LEARNED_POINTS``, fails when ``high < LEARNED_POINTS``, too close to call otherwise.
   The median family cannot show this on the synthetic scenes: an object covers at most 13% of
   the image, and half the pixels on bounds the median family's cIoU by about 0.26.
6. *pIA far below SSL-TIE's* (``pia_far_below_ssltie``): rule 1 with SSL-TIE (row ``ssltie``,
   the method SSL-SaN is built on) in place of EZ-VSL.
7. *cIoU not worse than SSL-TIE's* (``ciou_not_worse_ssltie``): rule 2 with SSL-TIE in place of
   EZ-VSL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from avloc.evaluation.scoring import Scores
from avloc.maps.records import POSITIVE

BOOTSTRAP = 2000
FAR_BELOW = 0.25
NOT_WORSE_POINTS = 1.0
LEARNED_POINTS = 10.0
VACUOUS_POINTS = 1.0  #: below this mean cIoU (%) on both sides, "not worse" says little

HOLDS, FAILS, TOO_CLOSE = "holds", "fails", "too close to call"
VERDICTS = (HOLDS, FAILS, TOO_CLOSE)

#: The rows SSL-SaN is compared with in claims 1-2 and 6-7: key -> (label, short label).
BASES = {"ezvsl": ("EZ-VSL", "EZ"), "ssltie": ("SSL-TIE", "TIE")}
#: The rows' labels in "needs the ... rows" notes.
LABELS = {"sslsan": "SSL-SaN", **{key: label for key, (label, _) in BASES.items()}}

ScoresBySeed = Mapping[int, Scores]


@dataclass
class Claim:
    key: str
    text: str  #: the claim as the issue states it
    verdict: str | None  #: one of VERDICTS; None when the rows it needs were not run
    evidence: str  #: one or two sentences with the numbers
    numbers: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS} or None; got {self.verdict!r}")

    @property
    def holds(self) -> bool | None:
        """True for "holds", False for "fails", None when too close to call or not run."""
        return {HOLDS: True, FAILS: False}.get(self.verdict)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "text": self.text,
            "verdict": self.verdict,
            "holds": self.holds,
            "evidence": self.evidence,
            "numbers": self.numbers,
        }


def verdict_of(holds: bool, fails: bool) -> str:
    """The verdict from the two one-sided tests; both at once (no rule allows it) is a tie."""
    if holds and not fails:
        return HOLDS
    if fails and not holds:
        return FAILS
    return TOO_CLOSE


def combined(verdicts) -> str:
    """A claim made of parts: holds if every part holds, fails if any part fails."""
    verdicts = list(verdicts)
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else TOO_CLOSE


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


SET_METRICS = ("sep", "floc")


def set_statistics(scores: Scores, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Sep (raw cosine) and FLOC (%) of one model on the test sets ``idx``: ``(m, n)`` sample
    indices -> two ``(m,)`` arrays; ``idx = arange(n)[None]`` gives the scorer's values."""
    p = scores.per_sample
    negatives = sorted(k.split("/", 1)[1] for k in p if k.startswith("pia/"))
    maxima = np.concatenate([p[f"max/{c}"][idx] for c in negatives], axis=1)
    sep = np.percentile(p[f"max/{POSITIVE}"][idx], 25, axis=1) - np.percentile(maxima, 75, axis=1)
    ciou = 100.0 * p["ciou/universal"][idx].mean(axis=1)
    quiet = 100.0 - 100.0 * np.mean([p[f"pia/{c}"][idx].mean(axis=1) for c in negatives], axis=0)
    total = ciou + quiet
    floc = np.divide(2.0 * ciou * quiet, total, out=np.zeros_like(total), where=total > 0)
    return {"sep": sep, "floc": floc}


def set_statistic_intervals(
    rows: Mapping[str, ScoresBySeed], reference: str, seed: int = 0
) -> dict[str, dict]:
    """Per metric of :data:`SET_METRICS`: each row's mean over seeds (``values``) and, per other
    row, ``{"diff", "low", "high"}`` of reference - row (``versus``), by the paired two-level
    bootstrap of rule 3 (the module's docstring)."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in rows.values())))
    n = len(rows[reference][seeds[0]].per_sample[f"max/{POSITIVE}"])
    k = len(seeds)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, k, (BOOTSTRAP, k)) if k > 1 else np.zeros((BOOTSTRAP, 1), np.int64)
    samples = rng.integers(0, n, (BOOTSTRAP, k, n))
    full = np.arange(n)[None]
    values: dict[str, dict[str, float]] = {m: {} for m in SET_METRICS}
    resampled: dict[str, dict[str, np.ndarray]] = {m: {} for m in SET_METRICS}
    for key, by_seed in rows.items():
        stats = {m: np.empty((BOOTSTRAP, k)) for m in SET_METRICS}
        points = {m: [] for m in SET_METRICS}
        for i, s in enumerate(seeds):
            chosen = drawn == i
            for metric, value in set_statistics(by_seed[s], samples[chosen]).items():
                stats[metric][chosen] = value
            for metric, value in set_statistics(by_seed[s], full).items():
                points[metric].append(float(value[0]))
        for metric in SET_METRICS:
            values[metric][key] = float(np.mean(points[metric]))
            resampled[metric][key] = stats[metric].mean(axis=1)
    out = {}
    for metric in SET_METRICS:
        versus = {}
        for key in rows:
            if key == reference:
                continue
            low, high = np.percentile(resampled[metric][reference] - resampled[metric][key],
                                      [2.5, 97.5])  # fmt: skip
            diff = values[metric][reference] - values[metric][key]
            versus[key] = {"diff": diff, "low": float(low), "high": float(high)}
        out[metric] = {"values": values[metric], "versus": versus}
    return out


def _interval(p: dict, digits: int = 2) -> str:
    return f"{p['diff']:+.{digits}f} [{p['low']:+.{digits}f}, {p['high']:+.{digits}f}]"


def _needs(scores: Mapping[str, ScoresBySeed], keys) -> str | None:
    """The note "needs the X row" (or "the X and Y rows") for the keys not in scores, else None."""
    missing = [LABELS[k] for k in keys if k not in scores]
    if not missing:
        return None
    return f"needs the {' and '.join(missing)} row{'s' if len(missing) > 1 else ''}"


def _against(base: str, name: str, claim: str) -> tuple[str, str, str, str]:
    """``(label, short, text, key)`` of a claim ``"SSL-SaN's <claim> <whose>"`` against ``base``;
    the EZ-VSL claims keep their plain keys, the others get the base's key appended."""
    label, short = BASES[base]
    whose = "EZ-VSL's" if base == "ezvsl" else f"its base {label}'s"
    key = name if base == "ezvsl" else f"{name}_{base}"
    return label, short, f"SSL-SaN's {claim} {whose}", key


def claim_pia(scores: Mapping[str, ScoresBySeed], base: str = "ezvsl") -> Claim:
    label, short, text, key = _against(
        base, "pia_far_below", "pIA under silence and under noise is far below"
    )
    if needs := _needs(scores, (base, "sslsan")):
        return Claim(key, text, None, needs)
    parts, verdicts, numbers = [], [], {}
    for condition in ("silence", "noise"):
        p = paired(scores[base], scores["sslsan"], f"pia/{condition}")
        needed = (1.0 - FAR_BELOW) * p["a"]  # the drop that puts SaN at FAR_BELOW x base
        verdict = verdict_of(
            holds=p["b"] <= FAR_BELOW * p["a"] and p["low"] > 0,
            fails=p["high"] < needed or p["high"] <= 0,
        )
        numbers[condition] = {**p, "needed": needed, "verdict": verdict}
        verdicts.append(verdict)
        parts.append(
            f"{condition}: {label} {p['a']:.2f} vs SSL-SaN {p['b']:.2f} ({short} - SaN "
            f"{_interval(p)}; far below needs at least {needed:+.2f}, {verdict})"
        )
    return Claim(key, text, combined(verdicts), "; ".join(parts) + ".", numbers)


def claim_ciou_not_worse(scores: Mapping[str, ScoresBySeed], base: str = "ezvsl") -> Claim:
    label, short, text, key = _against(
        base, "ciou_not_worse", "positive cIoU (Uth) is not worse than"
    )
    if needs := _needs(scores, (base, "sslsan")):
        return Claim(key, text, None, needs)
    p = paired(scores["sslsan"], scores[base], "ciou/universal")
    verdict = verdict_of(holds=p["low"] > -NOT_WORSE_POINTS, fails=p["high"] < -NOT_WORSE_POINTS)
    evidence = (
        f"cIoU_Uth SSL-SaN {p['a']:.2f} vs {label} {p['b']:.2f} (SaN - {short} {_interval(p)}; "
        f"not worse: above -{NOT_WORSE_POINTS:g})."
    )
    if max(p["a"], p["b"]) < VACUOUS_POINTS:
        evidence = f"Vacuously: both localize almost nothing at Uth. {evidence}"
    return Claim(key, text, verdict, evidence, p)


def claim_full_row_best(scores: Mapping[str, ScoresBySeed], ablation_keys: list[str]) -> Claim:
    text = "Separability and FLOC are highest for the full S+N+L_S+L_N row"
    full = "ablation-7"
    present = [k for k in ablation_keys if k in scores]
    if full not in present or len(present) < 2:
        return Claim("full_row_best", text, None, "needs the ablation rows")
    intervals = set_statistic_intervals({k: scores[k] for k in present}, full)
    numbers, parts, verdicts = {}, [], []
    for metric in SET_METRICS:
        values, versus = intervals[metric]["values"], intervals[metric]["versus"]
        order = sorted(present, key=lambda k: -values[k])
        rank = order.index(full) + 1
        other = next(k for k in order if k != full)  # the runner-up, or the best row
        verdict = verdict_of(
            holds=rank == 1 and all(v["low"] > 0 for v in versus.values()),
            fails=any(v["high"] < 0 for v in versus.values()),
        )
        verdicts.append(verdict)
        numbers[metric] = {"values": values, "rank_of_full_row": rank, "best": order[0],
                           "compared_with": other, "versus": versus,
                           "verdict": verdict}  # fmt: skip
        digits = 4 if metric == "sep" else 2
        best = "" if rank == 1 else f", best {other} {values[other]:.{digits}f}"
        parts.append(
            f"{metric.upper() if metric == 'floc' else 'Sep'}: full row {values[full]:.{digits}f}, "
            f"rank {rank} of {len(present)}{best} (full - {other} "
            f"{_interval(versus[other], digits)}, {verdict})"
        )
    return Claim("full_row_best", text, combined(verdicts), "; ".join(parts) + ".", numbers)


def claim_listening(scores: Mapping[str, ScoresBySeed], method_keys: list[str]) -> Claim:
    text = "the audio-shuffled control drops cIoU for every method (the models listen)"
    present = [k for k in method_keys if k in scores]
    if not present:
        return Claim("models_listen", text, None, "needs the method rows")
    numbers, parts, verdicts = {}, [], []
    for key in present:
        adaptive = paired(scores[key], scores[key], "ciou/adaptive", "ciou_shuffled/adaptive")
        universal = paired(scores[key], scores[key], "ciou/universal", "ciou_shuffled/universal")
        verdict = verdict_of(holds=adaptive["low"] > 0, fails=adaptive["high"] <= 0)
        numbers[key] = {"adaptive": adaptive, "universal": universal, "verdict": verdict}
        verdicts.append(verdict)
        parts.append(
            f"{key}: adaptive {adaptive['a']:.2f} -> {adaptive['b']:.2f} "
            f"({_interval(adaptive)}), Uth {universal['a']:.2f} -> {universal['b']:.2f}"
        )
    return Claim("models_listen", text, combined(verdicts), "; ".join(parts) + ".", numbers)


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
    verdict = verdict_of(
        holds=numbers["diff"] >= LEARNED_POINTS and low > 0, fails=high < LEARNED_POINTS
    )
    evidence = (
        f"adaptive cIoU@0.5: EZ-VSL {numbers['ezvsl']:.2f} vs centre prior "
        f"{numbers['centre_prior']:.2f} (difference {numbers['diff']:+.2f} [{low:+.2f}, "
        f"{high:+.2f}]; needed: at least +{LEARNED_POINTS:.0f})."
    )
    return Claim("task_learned", text, verdict, evidence, numbers)


def check_claims(
    scores: Mapping[str, ScoresBySeed],
    prior: ScoresBySeed,
    method_keys: list[str],
    ablation_keys: list[str],
) -> list[Claim]:
    """The seven claims, in the report's order (the rules: the module's docstring)."""
    return [
        claim_pia(scores),
        claim_ciou_not_worse(scores),
        claim_full_row_best(scores, ablation_keys),
        claim_listening(scores, method_keys),
        claim_task_learned(scores, prior),
        claim_pia(scores, "ssltie"),
        claim_ciou_not_worse(scores, "ssltie"),
    ]
