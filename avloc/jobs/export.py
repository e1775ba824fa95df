"""``avloc export RUN --out DIR``: a run's network as a preset folder (:mod:`avloc.presets`).

Reads from the run directory (:mod:`avloc.runs`): ``model.keras`` (copied byte for byte, so the
preset computes the run's maps exactly), ``recipe.toml``, and every ``results.json`` of ``avloc
eval`` at ``RUN/results.json`` or ``RUN/*/results.json`` whose rows score this ``model.keras``
(the evaluation summary; "not evaluated" without one). Writes ``DIR/model.keras``,
``DIR/MODEL_CARD.md`` (:mod:`avloc.model_card`) and ``DIR/metadata.json`` (the layout and
fields in :mod:`avloc.presets`).

The network must carry a calibrated Uth: a preset ships its abstention threshold. ``DIR`` may
be missing, empty or an earlier preset (replaced); any other non-empty ``DIR`` is refused and
left as it is. The folder is written as ``.DIR.tmp-PID`` next to ``DIR`` and renamed into place
at the end, so an interrupted export leaves no half-written preset.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from avloc import __version__
from avloc.config import read_toml
from avloc.errors import DataError
from avloc.model_card import render
from avloc.presets import CARD, FORMAT, FORMAT_VERSION, METADATA, MODEL, is_preset
from avloc.runs import RunDir, calibrate_command
from avloc.utils.files import atomic_write_json, file_sha256


def _same_file(source: str, model: Path, run: Path) -> bool:
    """Whether a results row's ``source`` (a path as typed when evaluating) is ``model``."""
    path = Path(source)
    found = [c.resolve() for c in (path, run / path, run.parent / path) if c.is_file()]
    if found:
        return model.resolve() in found
    return path.name == MODEL and path.parent.name == run.name  # evaluated from elsewhere


def evaluations(run: RunDir, model: Path) -> list[dict[str, Any]]:
    """The rows of the run's ``results.json`` files that score ``model`` (no floors)."""
    found = []
    for file in [run.root / "results.json", *sorted(run.root.glob("*/results.json"))]:
        try:
            results = json.loads(file.read_text(encoding="utf-8"))
            rows = results["models"]
            dataset = (results.get("dataset") or {}).get("name")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not an evaluation's results
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or row.get("floor"):
                continue
            if not _same_file(str(row.get("source", "")), model, run.root):
                continue
            keep = ("name", "samples", "uth", "uth_source", "calibration", "metrics", "absent")
            entry = {k: row[k] for k in keep if k in row}
            entry["results"] = file.relative_to(run.root).as_posix()
            entry["dataset"] = dataset
            found.append(entry)
    return found


def check_target(out: Path) -> None:
    """``out`` can take a preset: missing, an empty folder or a preset (one-line DataError)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_preset(out):
        raise DataError(
            f"{out}: not empty and not an avloc preset; refusing to write into it (choose a new "
            "or empty folder)"
        )


def metadata(run: RunDir, net, model: Path) -> dict[str, Any]:
    """The preset's metadata (without ``files``) for the run's network ``net``."""
    calibration = dict(net.calibration or {})
    if not isinstance(calibration.get("uth"), int | float):
        raise DataError(
            f"{model}: has no calibrated Uth, and a preset ships one; run "
            f"`{calibrate_command(run.root)}` first"
        )
    recipe_toml = run.recipe.read_text(encoding="utf-8")
    evaluated = evaluations(run, model)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "avloc_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": run.root.resolve().name,
        "model": MODEL,
        "inputs": dict(net.inputs),
        "uth": float(calibration["uth"]),
        "calibration": calibration,
        "recipe": read_toml(run.recipe),
        "recipe_toml": recipe_toml,
        "evaluation": evaluated or "not evaluated",
    }


def export_preset(run_dir: str | Path, out: str | Path) -> Path:
    """Write the preset of the run at ``run_dir`` into the folder ``out``; returns ``out``."""
    from avloc.models.io import load_network

    run, out = RunDir(run_dir), Path(out)
    model = run.finished_model()
    if is_preset(run.root) or not run.recipe.is_file():
        raise DataError(f"{run.root}: no recipe.toml (not a run directory of avloc train)")
    check_target(out)
    meta = metadata(run, load_network(model), model)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        shutil.copyfile(model, staging / MODEL)
        model_sha = file_sha256(staging / MODEL)
        (staging / CARD).write_text(render(meta, model_sha), encoding="utf-8")
        meta["files"] = {MODEL: model_sha, CARD: file_sha256(staging / CARD)}
        atomic_write_json(staging / METADATA, meta)
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _swap_in(staging: Path, out: Path) -> None:
    """Put the finished ``staging`` folder at ``out`` (an empty folder or an old preset there
    is replaced; checked again now, in case it changed while the preset was written)."""
    check_target(out)
    old = out.parent / f".{out.name}.old.tmp-{os.getpid()}"
    if out.is_dir():
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
