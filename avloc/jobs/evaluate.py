"""``evaluate(...)``: several models on one data set -> tables, JSON, plots, per-sample files.

Output directory::

    results.json            {"dataset", "models": [{"name", "source", "uth", "uth_source",
                             "calibration", "samples", "metrics"[, "absent"]}]}
    table.txt               the tables as printed
    samples/<model>.npz     per-sample records (recompute with ``avloc eval --samples FILE``)
    plots/scores_<model>.png, plots/overlays_<model>.png, plots/success_curves.png
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avloc.config import Recipe, load_recipe
from avloc.data.shards import ShardSet
from avloc.data.sources import preparer_names
from avloc.errors import DataError, RecipeError
from avloc.evaluation import report
from avloc.evaluation.floors import FLOOR_UTH, FLOORS, floor_records
from avloc.evaluation.scoring import score_records
from avloc.inputs.images import resize_uint8
from avloc.maps.calibration import choose_uth
from avloc.maps.conditions import POSITIVE
from avloc.maps.records import SampleRecords, collect_records, load_records, save_records
from avloc.metrics import ground_truth_maps
from avloc.presets import is_preset
from avloc.runs import RunDir, calibrate_command, model_file, run_of_checkpoint
from avloc.utils.files import atomic_write_bytes, atomic_write_json, check_outputs
from avloc.utils.interpolation import upsample

METRIC_GROUPS = ("localization", "negatives", "retrieval", "s4", "interactive")
CONTROLS = ("shuffled",)


@dataclass
class ModelSource:
    """One row of the table: a checkpoint (run directory or .keras file) or saved records."""

    name: str
    checkpoint: Path | None = None
    records: Path | None = None
    run_dir: Path | None = None

    @property
    def source(self) -> str:
        return str(self.records or self.checkpoint)


@dataclass
class EvalResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    text: str
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class EvalOutputs:
    """The files an evaluation writes under ``root`` (the layout above)."""

    root: Path

    @property
    def table(self) -> Path:
        return self.root / "table.txt"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def curves(self) -> Path:
        return self.root / "plots" / "success_curves.png"

    def samples(self, model: str) -> Path:
        return self.root / "samples" / f"{model}.npz"

    def scores(self, model: str) -> Path:
        return self.root / "plots" / f"scores_{model}.png"

    def overlays(self, model: str) -> Path:
        return self.root / "plots" / f"overlays_{model}.png"

    def check(self, sources: Sequence[ModelSource], protocol: str = "avloc") -> None:
        """Every file the evaluation of ``sources`` will write can be written
        (:func:`avloc.utils.files.check_outputs`): run before the first byte, and before the
        evaluation's work. ``protocol`` "vssl_eval" writes the table and the results only."""
        files = [self.table, self.results]
        if protocol != "vssl_eval":
            files.append(self.curves)
            for source in sources:
                files += [self.scores(source.name), self.overlays(source.name)]
                files += [self.samples(source.name)] if source.records is None else []
        check_outputs(*files)


def data_root(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("AVLOC_DATA", "data"))


def resolve_dataset(name_or_path: str, root: str | Path | None = None) -> tuple[str, Path]:
    """``(name, shard location)`` for a prepared data set name or a shard path."""
    path = Path(name_or_path)
    if path.exists():
        name = path.parent.name if path.name in ("test", "train") else path.stem
        return name, path
    root = data_root(root)
    candidates = [root / name_or_path / "test", root / name_or_path]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.h5")):
            return name_or_path, candidate
    looked = " or ".join(str(c) for c in candidates)
    if re.fullmatch(r"[a-z0-9][a-z0-9_+-]*", name_or_path):
        raise DataError(
            f"data set {name_or_path!r} is not prepared: no shards in {looked}; "
            f"prepare it with {_how_to_prepare(name_or_path, root)} or pass a shard directory"
        )
    raise DataError(f"{name_or_path}: no such data set name or shard directory")


def _how_to_prepare(name: str, root: Path) -> str:
    """The ``avloc prepare`` command that writes data set ``name`` under ``root``, quoted."""
    sources = preparer_names()  # the registry: one name per data source
    if name == "synthetic":
        return f"`avloc prepare synthetic --out {root / name}`"
    if name in sources:
        return f"`avloc prepare {name} --out {root / name} ...`"
    choices = ", ".join([*sources, "synthetic"])
    return f"`avloc prepare SOURCE --out {root / name} ...` (SOURCE: {choices})"


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}-{k}", k + 1
    taken.add(candidate)
    return candidate


def resolve_models(
    runs: Sequence[Path] = (), checkpoints: Sequence[Path] = (), samples: Sequence[Path] = ()
) -> list[ModelSource]:
    """Sources in the order given; names from run directories / file names, made unique."""
    taken: set[str] = set()
    out = []
    for run in runs:
        run = Path(run)
        model = RunDir(run).finished_model()
        out.append(ModelSource(_unique(run.name, taken), checkpoint=model, run_dir=run))
    for ckpt in checkpoints:
        ckpt = Path(ckpt)
        if ckpt.is_dir():  # a preset folder (verified) or a run directory
            ckpt = model_file(checkpoint=ckpt)
        stem = ckpt.parent.name if ckpt.stem == "model" and ckpt.parent.name else ckpt.stem
        run = run_of_checkpoint(ckpt)
        run_dir = None if run is None else run.root
        out.append(ModelSource(_unique(stem, taken), checkpoint=ckpt, run_dir=run_dir))
    for path in samples:
        path = Path(path)
        out.append(ModelSource(_unique(path.stem, taken), records=path))
    if not out:
        raise DataError("nothing to evaluate: give --run, --checkpoint or --samples")
    return out


def run_recipe(source: ModelSource) -> Recipe | None:
    """The recipe of the run that made ``source`` (its ``recipe.toml``), or None."""
    if source.run_dir is None or not RunDir(source.run_dir).recipe.is_file():
        return None
    return load_recipe(RunDir(source.run_dir).recipe)


def calibrate_checkpoint(
    source: ModelSource,
    *,
    data: str | Path | None = None,
    samples: int | None = None,
    statistic: str | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    audio: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """``avloc eval --calibrate``: Uth for a checkpoint, saved into it
    (:func:`avloc.maps.calibration.calibrate_checkpoint`).

    Settings left ``None`` come from the run's recipe (its ``[eval]`` and seed), so that
    ``avloc eval --calibrate --run R`` repeats what training did.
    """
    from avloc.maps.calibration import calibrate_checkpoint as calibrate

    if source.checkpoint is None:
        raise DataError(f"{source.records}: per-sample results cannot be calibrated")
    if is_preset(source.checkpoint.parent):
        raise DataError(
            f"{source.checkpoint.parent}: a preset is read-only (its checksums cover its Uth); "
            "calibrate the run it came from and export it again, or pass --uth"
        )
    return calibrate(
        source.checkpoint,
        run_recipe(source),
        data=data,
        samples=samples,
        statistic=statistic,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        audio=audio,
    )


def floor_rows(
    records: SampleRecords, metric_groups: Sequence[str] | None, seed: int
) -> list[dict[str, Any]]:
    """One table row per audio-free floor, on ``records``' samples (no retrieval)."""
    rows = []
    for kind in FLOORS:
        scores = score_records(floor_records(records, kind, seed), FLOOR_UTH)
        metrics = _filter_metrics(scores.metrics, metric_groups)
        metrics.pop("retrieval", None)
        rows.append(
            {
                "name": f"floor: {kind}",
                "source": "audio-free",
                "uth": FLOOR_UTH,
                "uth_source": "floor",
                "calibration": None,
                "samples": len(records),
                "metrics": metrics,
                "floor": True,
            }
        )
    return rows


def _class_names(records: SampleRecords, k: int) -> list[str] | None:
    """The sounding class of the first ``k`` samples, or None without labels."""
    if records.labels is None or not records.class_names:
        return None
    names = list(records.class_names)
    return [names[int(i)] if 0 <= int(i) < len(names) else "" for i in records.labels[:k]]


def _two_sound_images(groups) -> int:
    """How many groups hold exactly two samples (IS3's images with two sounding objects)."""
    if groups is None:
        return 0
    return int(np.sum(np.unique(groups, return_counts=True)[1] == 2))


def _check_metric_groups(groups: Sequence[str] | None, records: SampleRecords, where: str):
    if not groups:
        return
    unknown = [g for g in groups if g not in METRIC_GROUPS]
    if unknown:
        raise RecipeError(f"--metrics: unknown group(s) {unknown}; expected {METRIC_GROUPS}")
    needs = {
        "localization": (bool(records.gt_rule), "ground-truth boxes or masks"),
        "negatives": (bool(records.negative_conditions), "negative audio"),
        "retrieval": (len(records) >= 2, "at least two samples"),
        "s4": (records.gt_rule == "mask", "ground-truth masks"),
        "interactive": (
            _two_sound_images(records.groups) > 0,
            "images with two sounds (a `group` shared by exactly two samples)",
        ),
    }
    for group in groups:
        ok, what = needs[group]
        if not ok:
            raise DataError(f"{where}: the shards lack {what}, needed for the {group} metrics")


def _absent(records: SampleRecords, groups: Sequence[str] | None) -> dict[str, str]:
    """The negative conditions the table would show but the records lack, and why (naming the
    shards); each is also a one-line warning on stderr, so no column goes missing unsaid."""
    if groups and "negatives" not in groups:
        return {}
    absent = dict(records.meta.get("absent") or {})
    for why in absent.values():
        print(f"warning: {why}", file=sys.stderr, flush=True)
    return absent


def _filter_metrics(metrics: dict, groups: Sequence[str] | None) -> dict:
    if not groups:
        return metrics
    keep = {"uth"}
    if "localization" in groups:
        keep |= {POSITIVE, "shuffled"}
    if "negatives" in groups:
        keep |= {"silence", "noise", "offscreen"}
    if "localization" in groups and "negatives" in groups:
        keep.add("global")
    keep |= {g for g in ("retrieval", "s4", "interactive") if g in groups}
    return {k: v for k, v in metrics.items() if k in keep}


def evaluate(
    sources: Sequence[ModelSource],
    dataset: str | Path | None,
    out_dir: str | Path,
    *,
    uth: float | None = None,
    control: str | None = None,
    metric_groups: Sequence[str] | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    seed: int = 0,
    overlays: int = 4,
    data_root_dir: str | Path | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    floors: bool = True,
) -> EvalResult:
    """Evaluate every source on ``dataset``; ``progress(label, total)`` returns an advance fn.

    A negative condition the shards cannot give (offscreen audio in shards prepared without it)
    is a warning on stderr, a row's ``"absent"`` (``{condition: why}``) and a line below the
    tables, so that its missing column is never silent.

    With ``floors`` (and ground truth), the audio-free rows of :mod:`avloc.evaluation.floors`
    follow the models, scored on the first model's samples and marked ``"floor": true``.
    """
    from avloc.models.io import load_network

    if control is not None and control not in CONTROLS:
        raise RecipeError(f"--control {control!r}: expected one of {CONTROLS}")
    out_dir = Path(out_dir)
    outputs = EvalOutputs(out_dir)
    outputs.check(sources)
    shards = name = None
    if dataset is not None:
        name, location = resolve_dataset(str(dataset), data_root_dir)
        shards = ShardSet(location)
    elif any(s.records is None for s in sources):
        raise DataError("--dataset is required to evaluate a checkpoint")

    rows: list[dict[str, Any]] = []
    first_records: SampleRecords | None = None
    curves: list[tuple[str, dict[str, np.ndarray]]] = []
    files: list[Path] = []
    for source in sources:
        if source.records is not None:
            records = load_records(source.records)
            calibration = records.meta.get("calibration")
            if uth is None and "uth" in records.meta:
                calibration = {"uth": records.meta["uth"], **(calibration or {})}
            net = None
        else:
            net = load_network(source.checkpoint)
            calibration = net.calibration
        chosen, uth_source = choose_uth(
            uth,
            (calibration or {}).get("uth"),
            source=source.source,
            calibrate=None if net is None else calibrate_command(checkpoint=source.checkpoint),
        )
        if net is not None:
            indices = np.arange(len(shards) if limit is None else min(limit, len(shards)))
            advance = progress(source.name, len(indices)) if progress else None
            records = collect_records(
                net,
                shards,
                indices=indices,
                batch_size=batch_size,
                seed=seed,
                control=control,
                progress=advance,
            )
            records.meta = {
                **records.meta,  # what was asked for but not computed ("absent")
                "model": source.name,
                "checkpoint": str(source.checkpoint),
                "dataset": name,
                "shards": str(shards.location),
                "uth": chosen,
                "calibration": calibration,
                "seed": seed,
            }
            files.append(save_records(records, outputs.samples(source.name)))
        _check_metric_groups(metric_groups, records, source.source)
        first_records = records if first_records is None else first_records
        scores = score_records(records, chosen)
        metrics = _filter_metrics(scores.metrics, metric_groups)
        absent = _absent(records, metric_groups)
        rows.append(
            {
                "name": source.name,
                "source": source.source,
                "uth": chosen,
                "uth_source": uth_source,
                "calibration": calibration,
                "samples": len(records),
                "metrics": metrics,
                **({"absent": absent} if absent else {}),
            }
        )
        curves.append((source.name, scores.per_sample))
        plot = report.plot_score_distributions(
            source.name, scores.per_sample, scores.metrics, outputs.scores(source.name)
        )
        files += [plot] if plot else []
        if net is not None and overlays > 0 and shards is not None:
            k = min(overlays, len(records))
            images = shards.read(np.arange(k), ["image"])["image"]
            images = np.stack([resize_uint8(img, records.map_size) for img in images])
            maps = {c: upsample(m[:k], records.map_size) for c, m in records.maps.items()}
            gt = (
                ground_truth_maps(records, np.arange(k), records.map_size)
                if records.gt_rule
                else None
            )
            files.append(
                report.overlay_grid(
                    source.name,
                    images,
                    maps,
                    chosen,
                    records.ids[:k],
                    outputs.overlays(source.name),
                    ground_truth=gt,
                    classes=_class_names(records, k),
                )
            )
    if floors and first_records is not None and first_records.gt_rule:
        rows += floor_rows(first_records, metric_groups, seed)
    plot = report.plot_success_curves(curves, outputs.curves)
    files += [plot] if plot else []
    title = name or "saved results"
    text = report.render_text(report.build_tables(rows, title), report.absent_notes(rows))
    atomic_write_bytes(outputs.table, text.encode())
    summary = {"dataset": {"name": name, "shards": str(shards.location) if shards else None}}
    summary["models"] = rows
    atomic_write_json(outputs.results, summary)
    files += [outputs.table, outputs.results]
    return EvalResult(out_dir, rows, text, files)
