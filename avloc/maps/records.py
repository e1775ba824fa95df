"""Per-sample evaluation records: everything the metrics need, without the model.

:func:`collect_records` runs a network over test shards through the maps stage
(:class:`avloc.maps.engine.MapsEngine`): the positive map and one map per negative condition
(:mod:`avloc.maps.conditions`) for every sample, plus the retrieval embeddings.

A :class:`SampleRecords` holds, for N test samples of one model:

- ``maps[condition]``: float32 ``(N, h, w)`` raw cosine-similarity maps at the network's output
  resolution (7x7 for the EZ-VSL family at 224 input), for ``positive`` and each negative
  condition (``silence``, ``noise``, ``offscreen``) and the ``shuffled`` control when run. The
  metrics upsample them to ``map_size`` x ``map_size`` (bilinear, aligned corners, exactly as
  :func:`avloc.models.similarity.upsample_maps`), so tables can be recomputed bit for bit;
- ``image_emb`` / ``audio_emb``: float32 ``(N, D)`` retrieval embeddings (docs/protocol.md);
- ``labels``: int32 ``(N,)`` class indices (-1 unknown) or None;
- ground truth inputs, as the shards store them (:mod:`avloc.metrics.ground_truth` has the
  rules and turns them into maps): ``gt_rule`` (``"boxes"``, ``"consensus"``, ``"mask"`` or
  ``""`` when the data set has none), ``boxes`` float32 ``(N, K, 4)`` normalised and
  NaN-padded, ``box_group`` int32 ``(N, K)``, ``mask`` uint8 ``(N, S, S)``;
- ``groups``: str ``(N,)`` samples sharing one image (interactive sets) or None;
- ``meta``: a JSON-able dict (model name, checkpoint, data set, Uth and its source ...);
  ``meta["absent"]``: ``{condition: why}`` for a negative condition asked for but not computed
  (offscreen audio when the shards hold none), which the evaluation report prints.

Saved as one ``.npz`` file (no pickles: loading never runs code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import DataError
from avloc.maps.conditions import NOISE, OFFSCREEN, POSITIVE, SHUFFLED, SILENCE
from avloc.metrics.ground_truth import GT_FIELDS, gt_rule_of, stored_boxes
from avloc.utils.files import atomic_path

FORMAT_VERSION = 1
NEGATIVE_CONDITIONS = (SILENCE, NOISE, OFFSCREEN)
CONTROL_CONDITIONS = (SHUFFLED,)


@dataclass
class SampleRecords:
    ids: np.ndarray
    maps: dict[str, np.ndarray]
    image_emb: np.ndarray
    audio_emb: np.ndarray
    map_size: int
    labels: np.ndarray | None = None
    gt_rule: str = ""
    boxes: np.ndarray | None = None
    box_group: np.ndarray | None = None
    mask: np.ndarray | None = None
    groups: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def negative_conditions(self) -> tuple[str, ...]:
        return tuple(c for c in NEGATIVE_CONDITIONS if c in self.maps)


_OPTIONAL = ("labels", "boxes", "box_group", "mask", "groups")


def save_records(records: SampleRecords, path: str | Path) -> Path:
    """Write ``records`` atomically as a compressed ``.npz``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "ids": np.asarray(records.ids, dtype=str),
        "image_emb": np.asarray(records.image_emb, np.float32),
        "audio_emb": np.asarray(records.audio_emb, np.float32),
        "map_size": np.array(records.map_size),
        "gt_rule": np.array(records.gt_rule),
        "class_names": np.asarray(records.class_names, dtype=str),
        "meta": np.array(json.dumps(records.meta)),
    }
    for condition, maps in records.maps.items():
        arrays[f"maps_{condition}"] = np.asarray(maps, np.float32)
    for name in _OPTIONAL:
        value = getattr(records, name)
        if value is not None:
            arrays[name] = np.asarray(value, dtype=str) if name == "groups" else value
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def load_records(path: str | Path) -> SampleRecords:
    """Read a file written by :func:`save_records`; one-line DataError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such per-sample results file")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:  # zipfile/ValueError/OSError for foreign files
        raise DataError(
            f"{path}: not an avloc per-sample results file ({type(exc).__name__})"
        ) from None
    if int(data.get("format_version", -1)) != FORMAT_VERSION:
        raise DataError(f"{path}: not an avloc per-sample results file (format version)")
    maps = {k[len("maps_") :]: v for k, v in data.items() if k.startswith("maps_")}
    if POSITIVE not in maps:
        raise DataError(f"{path}: holds no positive-audio maps")
    return SampleRecords(
        ids=data["ids"],
        maps=maps,
        image_emb=data["image_emb"],
        audio_emb=data["audio_emb"],
        map_size=int(data["map_size"]),
        gt_rule=str(data["gt_rule"]),
        class_names=[str(c) for c in data["class_names"]],
        meta=json.loads(str(data["meta"])),
        **{name: data.get(name) for name in _OPTIONAL},
    )


def collect_records(
    net,
    shards,
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 32,
    seed: int = 0,
    negatives: tuple[str, ...] = NEGATIVE_CONDITIONS,
    control: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> SampleRecords:
    """Maps and embeddings of ``net`` on ``shards`` (all samples, or ``indices``).

    ``negatives``: any of silence, noise, offscreen; ``control``: ``"shuffled"`` or None. Noise
    and the shuffled partner follow :mod:`avloc.maps.conditions` with ``seed``. Offscreen is
    left out when the shards hold no offscreen audio, and the records say so, naming the shards:
    ``meta["absent"]["offscreen"]`` (which ``avloc eval`` warns about and reports).
    """
    from avloc.maps.engine import MapsEngine

    indices = np.arange(len(shards)) if indices is None else np.asarray(indices, np.int64)
    absent = {}
    if OFFSCREEN in negatives and "offscreen_audio" not in shards.fields:
        negatives = tuple(c for c in negatives if c != OFFSCREEN)
        absent[OFFSCREEN] = (
            f"{shards.location}: the shards hold no offscreen audio (prepared without an "
            "offscreen clip per sample), so the offscreen rows are absent, not scored"
        )
    conditions = (POSITIVE, *negatives, *([control] if control else []))
    fields = ["id", *(f for f in ("label", "group", *GT_FIELDS) if f in shards.fields)]
    maps: dict[str, list[np.ndarray]] = {c: [] for c in conditions}
    columns: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    image_emb, audio_emb = [], []
    engine = MapsEngine(net)
    for part in engine.condition_batches(
        shards,
        indices,
        conditions,
        seed=seed,
        batch_size=batch_size,
        fields=fields,
        progress=progress,
    ):
        for name in conditions:
            maps[name].append(part.maps[name])
        mean = part.v.mean(axis=(1, 2))
        image_emb.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
        audio_emb.append(part.positive_audio)
        for f in fields:
            columns[f].append(part.rows[f])

    cat = {f: np.concatenate(v) for f, v in columns.items()}
    return SampleRecords(
        ids=cat["id"],
        maps={c: np.concatenate(m).astype(np.float32) for c, m in maps.items()},
        image_emb=np.concatenate(image_emb).astype(np.float32),
        audio_emb=np.concatenate(audio_emb).astype(np.float32),
        map_size=int(net.inputs["image_size"]),
        labels=cat.get("label"),
        gt_rule=gt_rule_of(shards),
        boxes=stored_boxes(cat),
        box_group=cat.get("box_group"),
        mask=cat.get("mask"),
        groups=cat.get("group"),
        class_names=list(shards.class_names),
        meta={"absent": absent} if absent else {},
    )
