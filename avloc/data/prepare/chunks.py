"""Chunks of the plan: fingerprints, state files, atomic shard writes, leftovers, parts.

What every writer of shards in chunks shares (this engine and :mod:`avloc.data.prepare_synthetic`):
how samples are cut into chunks (:func:`chunk_ranges`), which chunks a part works on and the
leftovers it removes (:func:`part_chunks`), what a fingerprint is (:func:`digest`) and when a
shard is complete (:func:`shard_holds`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avloc.data.prepare.plan import STATE_DIR, Plan, SampleSpec, Skip
from avloc.data.shards import PCM_FIELDS, SCHEMA_VERSION, read_info, write_shard
from avloc.errors import AvlocError, DataError
from avloc.utils.files import (
    TEMPORARY_NAME,
    atomic_write_json,
    check_free_space,
    process_alive,
)


def digest(payload: dict[str, Any]) -> str:
    """A fingerprint: the SHA-256 (hex) of ``payload`` as JSON with sorted keys."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(plan: Plan, chunk: Sequence[SampleSpec]) -> str:
    payload = {
        "schema": SCHEMA_VERSION,
        "source": plan.source,
        "split": plan.split,
        "class_names": plan.class_names,
        "ground_truth": plan.ground_truth,
        "attrs": plan.attrs,
        "settings": dataclasses.asdict(plan.settings),
        "samples": [dataclasses.asdict(s) for s in chunk],
    }
    return digest(payload)


def chunk_ranges(count: int, size: int) -> list[range]:
    """Samples ``0 <= j < count`` cut into chunks of ``size`` (the last may be shorter)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def shard_holds(shard: Path, count: int, fingerprint: str, key: str = "plan_fingerprint") -> bool:
    """Whether ``shard`` is a readable shard of ``count`` rows whose attribute ``key`` is
    ``fingerprint`` (a missing, partial, foreign or differently made file is not)."""
    try:
        info = read_info(shard)
    except DataError:
        return False
    return info.count == count and str(info.attrs.get(key, "")) == fingerprint


def state_path(out: Path, shard: Path) -> Path:
    return out / STATE_DIR / f"{shard.stem}.json"


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def chunk_complete(shard: Path, state: dict | None, fingerprint: str) -> bool:
    if not state or state.get("fingerprint") != fingerprint:
        return False
    if int(state.get("written", -1)) == 0:
        return not shard.exists()
    return shard_holds(shard, int(state["written"]), fingerprint)


def _stack(rows: list[dict], name: str) -> Any:
    values = [r[name] for r in rows]
    if name in ("id", "group"):
        return values
    return np.stack(values)


def write_chunk(
    plan: Plan, path: Path, state_path: Path, index: int, fingerprint: str, rows, skips
) -> None:
    state = {
        "fingerprint": fingerprint,
        "planned": len(rows) + len(skips),
        "written": len(rows),
        "skipped": [[s.id, s.file, s.reason] for s in skips],
    }
    atomic_write_json(state_path, state)  # first: a shard never exists without its state
    if not rows:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    names = ["id", "image", "audio", *plan.settings.fields]
    if "offscreen_audio" in names:
        names.append("offscreen_label")
    arrays = {name: _stack(rows, name) for name in dict.fromkeys(names)}
    attrs = {"plan_fingerprint": fingerprint, "chunk": index, "chunk_planned": state["planned"]}
    if plan.ground_truth:
        attrs["ground_truth"] = plan.ground_truth
    attrs.update(plan.attrs)
    check_room_for_shard(path, arrays)
    write_shard(
        path,
        arrays,
        source=plan.source,
        split=plan.split,
        class_names=plan.class_names,
        sample_rate=plan.settings.sample_rate,
        clip_seconds=plan.settings.clip_seconds,
        extra_attrs=attrs,
    )


def shard_bytes(arrays: dict[str, Any]) -> int:
    """About how many bytes a shard of ``arrays`` takes on disk (its data, uncompressed; float
    waveforms as the int16 :func:`~avloc.data.shards.write_shard` stores)."""
    total = 0
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == object or value.dtype.kind in "US":
            total += sum(len(str(v).encode()) + 16 for v in value.ravel())
        elif name in PCM_FIELDS:
            total += value.size * 2
        else:
            total += value.nbytes
    return total


def check_room_for_shard(path: Path, arrays: dict[str, Any]) -> None:
    """One line (AvlocError) when the disk cannot hold the shard, before its first byte.

    Not only courtesy: HDF5 1.14 frees a dataset whose closing flush fails (a full disk) but
    keeps its id, so the next close of that id (h5py's, or HDF5's own at exit) crashes the
    process (:func:`avloc_cli.app.user_errors` ends such a process itself when the disk fills up
    after this check anyway).
    """
    check_free_space(path.parent, shard_bytes(arrays), f"shard {path.name}")


def tidy(out: Path, prefix: str, count: int, owned: range | None = None) -> None:
    """Remove temporary files of dead writers and shards/states beyond the plan's chunks.

    With ``owned`` (a part's chunks), only the temporary files of those chunks are removed: the
    other parts may be writing theirs on other machines, where their pids mean nothing here.
    """
    own = re.compile(rf"^{re.escape(prefix)}-(\d{{5}})$")
    for directory in (out, out / STATE_DIR):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            tmp = TEMPORARY_NAME.match(path.name)
            if tmp and not process_alive(int(tmp["pid"])):
                chunk = own.match(tmp["stem"])
                if owned is None or (chunk and int(chunk.group(1)) in owned):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                continue
            stem = path.name.rsplit(".", 1)[0]
            match = own.match(stem)
            if match and int(match.group(1)) >= count and path.suffix in (".h5", ".json"):
                path.unlink()


def check_out(out: Path, prefix: str) -> None:
    own = re.compile(rf"^{re.escape(prefix)}-\d{{5}}\.h5$")
    foreign = sorted(
        p.name for p in out.glob("*.h5") if not p.name.startswith(".") and not own.match(p.name)
    )
    if foreign:
        raise DataError(
            f"{out}: holds other shards ({', '.join(foreign[:3])}); prepare each data set "
            "into a directory of its own"
        )


def part_chunks(out: Path, prefix: str, count: int, part: tuple[int, int]) -> range:
    """The chunks of ``count`` that part ``part = (I, N)`` works on, once ``out`` is tidied for
    it (:func:`tidy`: a part removes only its own chunks' temporary files)."""
    owned = part_range(count, part)
    tidy(out, prefix, count, owned if part[1] > 1 else None)
    return owned


def parse_part(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``1 <= I <= N``; an :class:`AvlocError` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise AvlocError(f"--part {text}: expected I/N with 1 <= I <= N, e.g. --part 2/8")
    return int(match.group(1)), int(match.group(2))


def part_range(count: int, part: tuple[int, int]) -> range:
    """The chunks ``0 <= j < count`` of part ``part = (I, N)``: the I-th of N contiguous runs."""
    index, parts = part
    if not 1 <= index <= parts:
        raise ValueError(f"part {index}/{parts}: expected 1 <= I <= N")
    return range((index - 1) * count // parts, index * count // parts)


def finished_chunks(out: Path, paths: Sequence[Path], prints: Sequence[str]):
    """Over every chunk whose shard and state are complete: (chunks, rows, skips, shards)."""
    finished, written, skipped, shards = [], 0, [], []
    for index, (path, fp) in enumerate(zip(paths, prints, strict=True)):
        state = read_state(state_path(out, path))
        if chunk_complete(path, state, fp):
            finished.append(index)
            written += int(state["written"])
            skipped += [Skip(*row) for row in state["skipped"]]
            if path.exists():
                shards.append(path)
    return finished, written, skipped, shards
