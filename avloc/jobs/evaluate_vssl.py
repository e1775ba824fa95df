"""``avloc eval --protocol vssl_eval``: models scored by vssl_eval's rules, one row per model.

The rules are :mod:`avloc.evaluation.vssl_eval`'s. Output directory::

    results.json   {"dataset", "protocol": "vssl_eval", "models": [{"name", "source", "family",
                    "uth", "uth_source", "samples", "metrics"}]}
    table.txt      the table as printed

``metrics`` holds one section per threshold (``"0.5"``, ``"uth"``, ``"median"``,
``"adaptive"``) with ``CIoU``, ``AUC``, ``pIA_<negative>`` and ``AUC_N_<negative>``, then
``F`` (the F-scores at ``uth``) and ``extremes`` (raw map maxima and minima).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avloc.data.shards import ShardSet
from avloc.errors import DataError
from avloc.evaluation import report
from avloc.evaluation import vssl_eval as rules
from avloc.evaluation import vssl_scoring as scoring
from avloc.evaluation.floors import FLOOR_UTH, FLOORS
from avloc.jobs.evaluate import (
    EvalOutputs,
    EvalResult,
    ModelSource,
    resolve_dataset,
    run_recipe,
)
from avloc.maps.calibration import choose_uth
from avloc.runs import calibrate_command
from avloc.utils.files import atomic_write_bytes, atomic_write_json


def protocol_uth(
    uth: float | None,
    net,
    family: rules.Family,
    source: str = "the network",
    calibrate: str | None = None,
) -> tuple[float, str]:
    """The fixed threshold of a model, on vssl_eval's map scale: ``--uth``; else vssl_eval's own
    ``th_maxq3`` for an imported published model that vssl_eval scores
    (:data:`~avloc.evaluation.vssl_eval.SCORED_BY_VSSL_EVAL`: not SSL-SaN, which it has no
    constant for); else the network's calibrated Uth, as
    ``(Uth + 1) / 2`` for a family whose maps are ``(cos + 1) / 2``. ``--uth`` and the
    calibration are chosen, checked and refused by the rule every job shares,
    :func:`avloc.maps.calibration.choose_uth` (``source`` and ``calibrate`` word its errors)."""
    if uth is None and net.inputs.get("published_as") in rules.SCORED_BY_VSSL_EVAL:
        return rules.PUBLISHED_UTH[family.name], "vssl_eval th_maxq3"
    calibrated = (net.calibration or {}).get("uth")
    value, where = choose_uth(uth, calibrated, source=source, calibrate=calibrate)
    if where == "calibration" and family.half_cosine:
        return (value + 1.0) / 2.0, "calibration, as (Uth + 1) / 2"
    return value, where


def evaluate_vssl(
    sources: Sequence[ModelSource],
    dataset: str | Path,
    out_dir: str | Path,
    *,
    uth: float | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    seed: int = 0,
    data_root_dir: str | Path | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    floors: bool = True,
    seeds: Sequence[int] = rules.SEEDS,
) -> EvalResult:
    """Every checkpoint of ``sources`` on ``dataset`` by vssl_eval's rules, plus floor rows."""
    from avloc.models.io import load_network

    saved = [s for s in sources if s.checkpoint is None]
    if saved:
        raise DataError(
            f"{saved[0].records}: --protocol vssl_eval needs checkpoints (its audio differs from "
            "the saved records')"
        )
    out_dir = Path(out_dir)
    outputs = EvalOutputs(out_dir)
    outputs.check(sources, "vssl_eval")
    name, location = resolve_dataset(str(dataset), data_root_dir)
    shards = ShardSet(location)
    indices = np.arange(len(shards) if limit is None else min(limit, len(shards)))
    rows: list[dict[str, Any]] = []
    first = None
    for source in sources:
        net = load_network(source.checkpoint)
        run_arch = None
        if not net.arch and "published_as" not in net.inputs:  # saved before it was recorded:
            recipe = run_recipe(source)  # the recipe of the run that trained it says
            run_arch = recipe.model.arch if recipe is not None else None
        try:
            family = rules.family_of(net, run_arch)
        except DataError as exc:
            raise DataError(f"{source.checkpoint}: {exc}") from None
        chosen, uth_source = protocol_uth(
            uth,
            net,
            family,
            source=str(source.checkpoint),
            calibrate=calibrate_command(checkpoint=source.checkpoint),
        )
        advance = progress(source.name, len(indices)) if progress else None
        records = rules.collect(
            net, shards, indices, dataset=name, seeds=seeds, batch_size=batch_size,
            progress=advance, family=family,
        )  # fmt: skip
        first = records if first is None else first
        rows.append(
            {
                "name": source.name,
                "source": source.source,
                "family": family.name,
                "uth": chosen,
                "uth_source": uth_source,
                "samples": len(indices),
                "metrics": scoring.score(records, chosen),
            }
        )
    if floors and first is not None:
        for kind in FLOORS:
            rows.append(
                {
                    "name": f"floor: {kind}",
                    "source": "audio-free",
                    "family": "floor",
                    "uth": FLOOR_UTH,
                    "uth_source": "floor",
                    "samples": len(indices),
                    "metrics": scoring.score(scoring.with_floor(first, kind, seed), FLOOR_UTH),
                    "floor": True,
                }
            )
    title = f"{name}: vssl_eval protocol ({len(seeds)} seeds pooled)"
    text = report.render_text([report.vssl_table(rows, title)])
    atomic_write_bytes(outputs.table, text.encode())
    summary = {
        "dataset": {"name": name, "shards": str(shards.location)},
        "protocol": "vssl_eval",
        "seeds": list(seeds),
        "models": rows,
    }
    atomic_write_json(outputs.results, summary)
    return EvalResult(out_dir, rows, text, [outputs.table, outputs.results])
