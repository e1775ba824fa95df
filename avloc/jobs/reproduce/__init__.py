"""Miniature reproductions of the SSL-SaN paper's claims (``avloc reproduce synthetic``).

:func:`reproduce_synthetic` prepares synthetic scenes, trains the ``recipes/synthetic/`` twins of
EZ-VSL, marginNCE, FNAC, SSL-TIE, SSL-SaN (on SSL-TIE, and avloc's variant on EZ-VSL) and the
seven ablation rows with the same data, schedule and seeds and one model size per family
(:mod:`~avloc.jobs.reproduce.plan`), records every model's test maps under positive, silence,
noise, offscreen and shuffled audio (:mod:`~avloc.jobs.reproduce.runner`), scores them at each
model's calibrated Uth, tests the claims (:mod:`~avloc.jobs.reproduce.claims`) and writes the
report (:mod:`~avloc.jobs.reproduce.report`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avloc.config import Recipe
from avloc.jobs.reproduce.plan import ROWS, Budget, Job, plan_jobs

__all__ = ["Budget", "ReproduceResult", "reproduce_synthetic", "centre_prior_records"]

#: Uth calibrations of the sensitivity table (after the recipes' own): calibration audio x
#: statistic of the pooled map maxima on the calibration images (avloc.maps.calibration).
UTH_AUDIO = (("silence", "noise"), ("silence", "noise", "other"))
UTH_STATISTICS = ("q3", "p90", "p99", "max")


def calibration_label(audio, statistic: str) -> str:
    """E.g. ``"p90 of silence+noise+other"``."""
    return f"{statistic} of {'+'.join(audio)}"


def uth_from_maxima(maxima: dict, audio, statistic: str) -> float:
    """Uth from saved per-condition maxima, pooling only the calibration audio ``audio``."""
    from avloc.metrics import calibrate_uth

    return calibrate_uth({a: maxima[a] for a in audio}, statistic)


#: Hand-written notes on the full-budget report, linked from it when they exist.
NOTES_NAME = "synthetic-notes.md"


@dataclass
class ReproduceResult:
    files: dict[str, Path]
    claims: list
    jobs: list[Job]
    seconds: float


def centre_prior_records(records):
    """The same records with every map replaced by one audio-free centred Gaussian bump
    (:mod:`avloc.evaluation.floors`); adaptive thresholds keep its top-k pixels, a centred disc.
    """
    from avloc.evaluation.floors import floor_records

    return floor_records(records, "centre prior")


def _uth_line(jobs: list[Job]) -> str:
    """How each row's Uth is calibrated (its recipe's ``[eval]``), grouped by calibration."""
    groups: dict[str, list[str]] = {}
    for job in jobs:
        e = job.recipe.eval
        label = f"{e.uth_statistic} of {' + '.join(e.calibration_audio)}"
        for row in job.rows:
            name = row.label if row.methods else f"ablation row {row.key.rsplit('-', 1)[1]}"
            if name not in groups.setdefault(label, []):
                groups[label].append(name)
    samples = jobs[0].recipe.eval.calibration_samples
    where = f"map maxima on {samples} training images, per model"
    if len(groups) == 1:
        return f"Uth: {next(iter(groups))} {where}."
    parts = [f"{label} for {', '.join(rows)}" for label, rows in groups.items()]
    return f"Uth ({where}), as each row's recipe says: " + "; ".join(parts) + "."


def _settings(budget: Budget, jobs: list[Job], command: str, seconds: float, quick: bool):
    from avloc.jobs.reproduce.report import machine_info

    families: dict[str, Recipe] = {}  # the first recipe of each input pipeline
    for job in jobs:
        families.setdefault(job.recipe.data.audio_frontend, job.recipe)
    lines = [
        f"Data: {budget.train_samples} training and {budget.test_samples} test synthetic scenes "
        f"(seed {budget.data_seed}; 8 classes, 1-3 objects, each test scene with an offscreen "
        "clip), the same for every row.",
    ]
    for recipe in families.values():
        m, t, d = recipe.model, recipe.train, recipe.data
        family = "SSL-TIE's family" if d.audio_frontend == "mel_db" else "EZ-VSL's family"
        augment = d.image_augment + (", SpecAugment" if d.spec_augment > 0 else "")
        lines.append(
            f"Model and schedule ({family}): ResNet-18 pair at width {m.visual.width} (visual) / "
            f"{m.audio.width} (audio), D = {m.embed_dim}, {d.image_size} px images, last stride "
            f"{m.visual.last_stride}, {d.clip_seconds:g} s clips as {d.audio_frontend}, "
            f"{augment}; {t.epochs} epochs, batch {t.batch_size}, {t.optimizer} lr "
            f"{t.learning_rate:g}."
        )
    lines += [
        f"Training seeds {', '.join(str(s) for s in budget.seeds)}.",
        f"Overrides on every recipe: {', '.join(budget.overrides) or 'none'}.",
        _uth_line(jobs),
        "Visual trunk: pretrained once on synthetic single objects "
        "(`avloc pretrain recipes/synthetic/visual_trunk.toml`), loaded by every row; the "
        "audio encoder starts from scratch.",
        f"{len(jobs)} trainings for {len(ROWS)} rows (ablation row 1 is SSL-TIE and row 7 is "
        "SSL-SaN: same recipe, trained once).",
    ]
    return {
        "title": "quick structural check" if quick else "synthetic scenes",
        "command": command,
        "quick": quick,
        "seconds": seconds,
        "machine": machine_info(),
        "budget": {
            "train_samples": budget.train_samples,
            "test_samples": budget.test_samples,
            "data_seed": budget.data_seed,
            "seeds": list(budget.seeds),
            "overrides": list(budget.overrides),
        },
        "jobs": [j.to_dict() for j in jobs],
        "lines": lines,
    }


def reproduce_synthetic(
    out_dir: str | Path,
    work: str | Path,
    budget: Budget,
    *,
    name: str = "synthetic",
    workers: int = 1,
    threads: int | None = None,
    command: str = "avloc reproduce synthetic",
    quick: bool = False,
    log: Callable[[str], None] = print,
    on_job: Callable[[Job, float], None] | None = None,
) -> ReproduceResult:
    from avloc.evaluation import report as eval_report
    from avloc.evaluation.scoring import score_records
    from avloc.jobs.reproduce import claims as claim_rules
    from avloc.jobs.reproduce import report
    from avloc.jobs.reproduce.runner import prepare_data, pretrain_trunk, run_jobs
    from avloc.maps.records import load_records

    out_dir, work = Path(out_dir), Path(work)
    started = time.perf_counter()
    data_dir = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    log(f"Preparing {budget.train_samples} + {budget.test_samples} synthetic scenes in {data_dir}")
    prepare_data(data_dir, budget)
    log(f"Pretraining the visual trunk on synthetic objects ({data_dir / 'pretrain.log'})")
    pretrain_trunk(data_dir, budget)
    jobs = plan_jobs(budget, data_dir)
    log(f"{len(jobs)} trainings for {len(ROWS)} rows x {len(budget.seeds)} seed(s), "
        f"{workers} at a time")  # fmt: skip
    seconds = run_jobs(jobs, work, workers=workers, threads=threads, on_done=on_job)

    from avloc.jobs.reproduce.runner import load_maxima

    scores: dict[str, dict[int, object]] = {}
    #: {calibration label: {row key: {seed: Scores}}} for the Uth sensitivity table (methods)
    own_eval = jobs[0].recipe.eval
    own = (tuple(own_eval.calibration_audio), own_eval.uth_statistic)
    settings_grid = list(
        dict.fromkeys([own, *((a, st) for a in UTH_AUDIO for st in UTH_STATISTICS)])
    )
    by_statistic: dict[str, dict[str, dict[int, object]]] = {
        calibration_label(*c): {} for c in settings_grid
    }
    metrics: dict[str, list[dict]] = {}
    per_seed: dict[str, dict[int, dict]] = {}
    prior: dict[int, object] = {}
    figures_dir = out_dir / name
    figures: dict[str, Path] = {}
    for job in jobs:
        samples_path = work / "samples" / f"{job.key}.npz"
        records = load_records(samples_path)
        maxima = load_maxima(samples_path)
        recipe_eval = job.recipe.eval
        job_own = (tuple(recipe_eval.calibration_audio), recipe_eval.uth_statistic)
        uth = uth_from_maxima(maxima, *job_own)  # == the stored Uth
        job_scores = score_records(records, uth)
        if any(r.methods for r in job.rows):
            for setting in settings_grid:
                other = (
                    job_scores
                    if setting == job_own
                    else score_records(records, uth_from_maxima(maxima, *setting))
                )
                for row in job.rows:
                    by_statistic[calibration_label(*setting)].setdefault(row.key, {})[job.seed] = (
                        other
                    )
        if job.seed not in prior:
            prior[job.seed] = score_records(centre_prior_records(records), uth)
        for row in job.rows:
            scores.setdefault(row.key, {})[job.seed] = job_scores
            metrics.setdefault(row.key, []).append(job_scores.metrics)
            per_seed.setdefault(row.key, {})[job.seed] = report.seed_summary(
                job_scores.per_sample, job_scores.metrics
            )
        if job.seed == budget.seeds[0]:
            label = job.rows[0].key
            path = eval_report.plot_score_distributions(
                job.rows[0].label,
                job_scores.per_sample,
                job_scores.metrics,
                figures_dir / f"scores_{label}.png",
            )
            if path and label in ("ezvsl", "ssltie", "sslsan"):
                figures[f"scores {job.rows[0].label}"] = path
            if label in ("ezvsl", "ssltie", "sslsan"):
                figures[f"heatmaps {job.rows[0].label}"] = _overlays(records, uth, job, figures_dir)

    method_keys = [r.key for r in ROWS if r.methods]
    ablation_keys = [r.key for r in ROWS if r.ablation is not None]
    claims = claim_rules.check_claims(scores, prior, method_keys, ablation_keys)
    sensitivity = {
        statistic: {
            "metrics": {k: [v.metrics for v in by_seed.values()] for k, by_seed in rows.items()},
            "claims": [
                claim_rules.claim_pia(rows),
                claim_rules.claim_ciou_not_worse(rows),
            ],
        }
        for statistic, rows in by_statistic.items()
    }
    figures["negative pIA"] = report.plot_negative_pia(
        [r for r in ROWS if r.methods], metrics, figures_dir / "negative_pia.png"
    )
    figures["ablation"] = report.plot_ablation(ROWS, metrics, figures_dir / "ablation.png")
    total = time.perf_counter() - started
    settings = _settings(budget, jobs, command, total, quick)
    settings["job_seconds"] = seconds
    settings["trained_seconds"] = float(sum(seconds.get(j.key, 0.0) for j in jobs))
    settings["workers"] = workers
    settings["wall_seconds"] = wall_seconds(work, total)
    notes = ""
    if (out_dir / NOTES_NAME).is_file() and not quick:
        notes = f"What was investigated and changed to get here: [{NOTES_NAME}]({NOTES_NAME})."
    files = report.write_report(
        out_dir,
        name,
        rows=ROWS,
        metrics=metrics,
        claims=claims,
        settings=settings,
        figures=figures,
        notes=notes,
        sensitivity=sensitivity,
        per_seed=per_seed,
    )
    return ReproduceResult(files={**files, **figures}, claims=claims, jobs=jobs, seconds=total)


def wall_seconds(work: Path, this_call: float) -> float:
    """Wall time of every call on this work folder so far (interruptions resume; pauses not)."""
    import json

    from avloc.utils.files import atomic_write_json

    ledger = work / "calls.json"
    calls = json.loads(ledger.read_text()) if ledger.is_file() else []
    calls.append(this_call)
    atomic_write_json(ledger, calls)
    return float(sum(calls))


def _overlays(records, uth: float, job: Job, figures_dir: Path) -> Path:
    from avloc.data.shards import ShardSet
    from avloc.evaluation import report as eval_report
    from avloc.inputs.images import resize_uint8
    from avloc.utils.interpolation import upsample

    k = min(4, len(records))
    images = ShardSet(job.recipe.data.test).read(np.arange(k), ["image"])["image"]
    images = np.stack([resize_uint8(img, records.map_size) for img in images])
    maps = {c: upsample(m[:k], records.map_size) for c, m in records.maps.items()}
    return eval_report.overlay_grid(
        job.rows[0].label,
        images,
        maps,
        uth,
        records.ids[:k],
        figures_dir / f"heatmaps_{job.rows[0].key}.png",
    )
