"""``prepare(preparer, out)``: the whole run (see :mod:`avloc.data.prepare`)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

from avloc.data.prepare.chunks import (
    check_out,
    chunk_complete,
    chunk_ranges,
    fingerprint,
    finished_chunks,
    part_chunks,
    read_state,
    state_path,
    write_chunk,
)
from avloc.data.prepare.plan import (
    MISSING_IDS_NAME,
    PAUSE_ENV,
    REPORT_NAME,
    SUMMARY_NAME,
    Plan,
    Preparer,
    PrepareResult,
    Skip,
)
from avloc.data.prepare.report import write_report
from avloc.data.prepare.samples import results
from avloc.data.shards import shard_name
from avloc.errors import DataError
from avloc.utils.files import atomic_write_bytes, atomic_write_json


def prepare(
    preparer: Preparer | Plan,
    out: str | Path,
    *,
    workers: int = 1,
    shard_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    part: tuple[int, int] = (1, 1),
) -> PrepareResult:
    """Prepare ``preparer``'s corpus (or an already made plan) into ``out``; resumable.

    ``progress(done, total)`` is called as samples are finished (kept shards count at once).
    ``part = (I, N)`` prepares only the I-th of N parts (the result then counts that part; the
    plan-time skips count in part 1). See the module docstring for the steps.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    started = time.monotonic()
    plan = preparer if isinstance(preparer, Plan) else preparer.plan()
    out = Path(out)
    samples = sorted(plan.samples, key=lambda s: s.id)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{plan.source}: the plan holds duplicate ids")
    if not samples:  # nothing is touched: an unmounted corpus must not erase earlier shards
        first = f"; first: {plan.skipped[0].id}: {plan.skipped[0].reason}" if plan.skipped else ""
        raise DataError(
            f"{plan.source}: no samples found ({len(plan.skipped)} annotated entries unusable"
            f"{first})"
        )
    out.mkdir(parents=True, exist_ok=True)
    check_out(out, plan.prefix)

    chunks = [samples[r.start : r.stop] for r in chunk_ranges(len(samples), shard_size)]
    split = part[1] > 1
    owned = part_chunks(out, plan.prefix, len(chunks), part)
    paths = [out / shard_name(plan.prefix, i) for i in range(len(chunks))]
    prints = [fingerprint(plan, c) for c in chunks]

    skipped: list[Skip] = list(plan.skipped) if part[0] == 1 else []
    written = 0
    todo: list[int] = []
    done = 0
    for i in owned:
        path, fp = paths[i], prints[i]
        state = read_state(state_path(out, path))
        if chunk_complete(path, state, fp):
            written += int(state["written"])
            skipped += [Skip(*row) for row in state["skipped"]]
            done += len(chunks[i])
        else:
            todo.append(i)
    total = sum(len(chunks[i]) for i in owned)
    if progress:
        progress(done, total)

    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    decoded = 0
    stream = results([s for i in todo for s in chunks[i]], plan.settings, workers)
    try:
        for i in todo:
            rows, skips = [], []
            for _ in chunks[i]:
                result = next(stream)
                (skips if isinstance(result, Skip) else rows).append(result)
                done += 1
                decoded += 1
                if progress:
                    progress(done, total)
            write_chunk(plan, paths[i], state_path(out, paths[i]), i, prints[i], rows, skips)
            written += len(rows)
            skipped += skips
            if pause > 0:
                time.sleep(pause)
    finally:
        stream.close()

    shards = [paths[i] for i in owned if paths[i].exists()]
    kept = set(owned) - set(todo)
    if plan.missing_ids is not None:
        text = "".join(f"{i}\n" for i in plan.missing_ids)
        atomic_write_bytes(out / MISSING_IDS_NAME, text.encode())
    if split:
        report = _write_combined(out, plan, paths, prints)
    else:
        report = write_report(out / REPORT_NAME, skipped)
        _write_summary(out, plan, len(samples), written, skipped, shards)
    return PrepareResult(
        out=out,
        source=plan.source,
        split=plan.split,
        planned=total,
        written=written,
        shards=shards,
        new_shards=sum(1 for i in todo if paths[i].exists()),
        reused_shards=sum(1 for i in kept if paths[i].exists()),
        decoded=decoded,
        skipped=sorted(skipped, key=lambda s: (s.id, s.file)),
        report=report,
        seconds=time.monotonic() - started,
        notes=list(plan.notes),
        class_names=list(plan.class_names),
    )


def _write_summary(
    out: Path, plan: Plan, planned: int, written: int, skipped: list[Skip], shards: list[Path]
) -> None:
    atomic_write_json(
        out / SUMMARY_NAME,
        {
            "source": plan.source,
            "split": plan.split,
            "planned": planned,
            "written": written,
            "skipped": len(skipped),
            "shards": [p.name for p in shards],
            "class_names": plan.class_names,
            "ground_truth": plan.ground_truth,
            "settings": dataclasses.asdict(plan.settings),
            "notes": plan.notes,
        },
    )


def _write_combined(out: Path, plan: Plan, paths: list[Path], prints: list[str]) -> Path:
    """report.tsv and prepare.json over every finished chunk of every part.

    Written, then the state files are read again and everything rewritten if another part
    finished meanwhile: the part that finishes last always leaves the complete files.
    """
    seen = None
    while True:
        finished, written, skipped, shards = finished_chunks(out, paths, prints)
        if finished == seen:
            return out / REPORT_NAME
        report = list(plan.skipped) + skipped
        write_report(out / REPORT_NAME, report)
        _write_summary(out, plan, len(plan.samples), written, report, shards)
        seen = finished
