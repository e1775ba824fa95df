"""Localise the sounding object in a user's own image + audio or video, or abstain.

Data contract:

* Inputs: an image as ``uint8`` RGB ``(H, W, 3)`` (any size; see
  :func:`avloc.media.image.load_image`) and a mono ``float32`` waveform in [-1, 1] at the
  network's sample rate (any length: it is cut to the network's clip length around its middle,
  short audio tiled; see :func:`avloc.media.audio.clip_centered`). The network's preprocessing
  comes from ``net.inputs`` (``image_size``, ``sample_rate``, ``clip_seconds``) and is applied by
  the maps stage (:mod:`avloc.inputs.contract`).
* Map: the ``h x w`` cosine map ``S(v, a)`` upsampled bilinearly with aligned corners
  (docs/protocol.md)
  straight to the **original** image size ``(H, W)``, ``float32``, values in [-1, 1]. For an
  image of the model's input size this is exactly the network's localisation map; for other sizes
  it samples the same bilinear surface at the image's own pixels (one interpolation, no
  second resize).
* Decision (abstention): the universal threshold ``Uth`` (docs/protocol.md), in cosine units, from
  the network's ``calibration`` or an explicit override. ``max_score`` is the maximum of the
  map, ``peak`` its first arg-max as ``(x, y)`` pixels of the original image, ``area_above_uth``
  the fraction of pixels with ``map > Uth``; the pair is ``sounding`` iff ``max_score > Uth``,
  i.e. iff that area is not empty. Every number is computed from the map that ``--raw`` saves.
* There is no default threshold: a network without calibration and no override raises an
  :class:`~avloc.errors.AvlocError` that says how to calibrate.

Batch mode (:func:`run_batch`) takes :class:`Item` lists from a directory (pairs matched by
file stem, or videos) or a JSON Lines manifest, skips and reports bad items, and writes
``NAME.png`` (+ ``NAME.json``, ``NAME.npy``) per item and ``results.jsonl`` for all; every file
is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import AvlocError
from avloc.maps.calibration import choose_uth
from avloc.maps.engine import MapsEngine
from avloc.media.items import (
    Item,
    LoadedItem,
    item_from_paths,
    items_from_directory,
    items_from_manifest,
    load_item,
)
from avloc.runs import model_file
from avloc.utils.files import atomic_path, atomic_write_json, check_folder, check_outputs
from avloc.utils.interpolation import upsample

__all__ = [
    "BatchSummary",
    "Item",
    "LoadedItem",
    "Localization",
    "item_from_paths",
    "items_from_directory",
    "items_from_manifest",
    "load_item",
    "load_cached_model",
    "load_model",
    "model_file",
    "localize_many",
    "localize_pair",
    "render",
    "resolve_uth",
    "run_batch",
    "write_outputs",
]


# --------------------------------------------------------------------------------------------
# Model and threshold


def load_model(run_dir: str | Path | None = None, checkpoint: str | Path | None = None):
    """The Keras network of a run directory or a ``.keras`` checkpoint (see :func:`model_file`).

    On torch it also stores the network for :func:`load_cached_model` (the Keras-free path of
    :mod:`avloc.maps.torch_engine`), so the next process can skip importing Keras.
    """
    from avloc.maps import torch_engine
    from avloc.models.io import load_network

    path = model_file(run_dir, checkpoint)
    net = load_network(path)
    if torch_engine.enabled():
        try:
            torch_engine.write_cache(path, net)
        except OSError:
            pass  # an unwritable cache only costs the next start its speed
    return net


def load_cached_model(run_dir: str | Path | None = None, checkpoint: str | Path | None = None):
    """The network as a plain-torch :class:`~avloc.maps.torch_engine.TorchNet`, without Keras.

    ``None`` when the backend is not torch, or the file has no cache entry yet (a first
    :func:`load_model` of it writes one) or is not of the EZ-VSL family.
    """
    from avloc.maps import torch_engine

    path = model_file(run_dir, checkpoint)
    return torch_engine.load_cached(path) if torch_engine.enabled() else None


def resolve_uth(
    net,
    override: float | None = None,
    source: str = "the network",
    calibrate: str = "avloc eval --calibrate --checkpoint FILE",
) -> float:
    """The universal threshold to use: ``override`` if given, else the network's calibration
    (:func:`avloc.maps.calibration.choose_uth`, the rule every job shares).

    ``source`` (the network's file) and ``calibrate`` (the command that would store Uth,
    :func:`avloc.runs.calibrate_command`) word the errors.
    """
    return choose_uth(override, getattr(net, "uth", None), source=source, calibrate=calibrate)[0]


# --------------------------------------------------------------------------------------------
# Localising pairs


def _distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with 3 decimals, or as many more (up to 8) as it takes to tell them apart,
    so that a caption never reads ``0.034 < 0.034``."""
    for digits in range(3, 9):
        shown = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if shown[0] != shown[1] or a == b:
            return shown
    return shown


@dataclass(frozen=True, eq=False)
class Localization:
    """The map of one (image, audio) pair at the original image size and what it says."""

    heatmap: np.ndarray  # (H, W) float32 raw cosine similarity
    uth: float  # threshold used, raw cosine units
    max_score: float  # heatmap.max()
    peak: tuple[int, int]  # (x, y) of the first arg-max, original pixels
    pixels_above_uth: int  # count of heatmap > uth
    area_above_uth: float  # pixels_above_uth / (H * W)
    sounding: bool  # max_score > uth

    @classmethod
    def from_map(cls, heatmap: np.ndarray, uth: float) -> Localization:
        heat = np.asarray(heatmap, dtype=np.float32)
        if heat.ndim != 2 or heat.size == 0:
            raise ValueError(f"expected a 2-D map, got shape {heat.shape}")
        flat = int(np.argmax(heat))
        y, x = np.unravel_index(flat, heat.shape)
        above = int(np.count_nonzero(heat > uth))
        max_score = float(heat.flat[flat])
        return cls(
            heatmap=heat,
            uth=float(uth),
            max_score=max_score,
            peak=(int(x), int(y)),
            pixels_above_uth=above,
            area_above_uth=above / heat.size,
            sounding=bool(max_score > uth),
        )

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the map (= the original image)."""
        return int(self.heatmap.shape[1]), int(self.heatmap.shape[0])

    def caption(self) -> str:
        """One line saying what was found (stamped on the PNG when nothing is sounding)."""
        score, uth = _distinct(self.max_score, self.uth)
        if self.sounding:
            return (
                f"sounding object at (x={self.peak[0]}, y={self.peak[1]}): max "
                f"{score} > Uth {uth}, "
                f"{100 * self.area_above_uth:.1f}% of the image above Uth"
            )
        relation = "<" if self.max_score < self.uth else "<="
        return f"no sounding object found (max {score} {relation} Uth {uth})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields: peak, max score, area above Uth, sounding flag, Uth, image size."""
        return {
            "sounding": self.sounding,
            "max_score": self.max_score,
            "uth": self.uth,
            "peak_xy": list(self.peak),
            "area_above_uth": self.area_above_uth,
            "pixels_above_uth": self.pixels_above_uth,
            "image_size": list(self.size),
        }


def localize_many(
    net,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    uth: float | None = None,
    batch_size: int = 16,
) -> Iterator[Localization]:
    """Localise ``(image_uint8, waveform)`` pairs, ``batch_size`` at a time, in input order.

    ``uth`` overrides the network's calibrated threshold (see :func:`resolve_uth`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    threshold = resolve_uth(net, uth)
    batch: list[tuple[np.ndarray, np.ndarray]] = []

    engine = MapsEngine(net)

    def flush() -> Iterator[Localization]:
        maps = engine.pair_maps([p[0] for p in batch], [p[1] for p in batch])
        for (image, _), small in zip(batch, maps, strict=True):
            heat = upsample(small[None], image.shape[:2])[0]
            yield Localization.from_map(heat, threshold)
        batch.clear()

    for pair in pairs:
        batch.append(pair)
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()


def localize_pair(
    net, image: np.ndarray, waveform: np.ndarray, uth: float | None = None
) -> Localization:
    """Localise one pair: ``image`` uint8 ``(H, W, 3)``, ``waveform`` mono at the net's rate."""
    return next(localize_many(net, [(image, waveform)], uth=uth, batch_size=1))


# --------------------------------------------------------------------------------------------
# Rendering and writing


def render(
    image: np.ndarray,
    loc: Localization,
    value_range: tuple[float, float] | str = (-1.0, 1.0),
) -> np.ndarray:
    """The PNG content: heatmap blended over the image, the above-Uth region outlined; when
    nothing is sounding, a caption saying so (see :mod:`avloc.media.overlay`). Images larger than
    :data:`~avloc.media.overlay.MAX_OVERLAY_SIDE` on a side are rendered scaled down to it."""
    from avloc.media.overlay import fit_overlay, overlay_heatmap, stamp_caption

    image, heat = fit_overlay(image, loc.heatmap)
    out = overlay_heatmap(image, heat, loc.uth, value_range=value_range)
    if not loc.sounding:
        out = stamp_caption(out, loc.caption())
    return out


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        # zlib level 1: about 4x faster than the default 6 for about 30 % larger files
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", compress_level=1)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_outputs(
    loc: Localization,
    image: np.ndarray,
    png: str | Path,
    raw: str | Path | None = None,
    json_path: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    value_range: tuple[float, float] | str = (-1.0, 1.0),
) -> dict[str, Any]:
    """Write the overlay PNG (and the raw ``.npy`` map, and a JSON file) atomically, every path
    checked (:func:`avloc.utils.files.check_outputs`) before the first is written.

    Returns the JSON record: ``extra`` (inputs), :meth:`Localization.to_dict` and the paths.
    """
    check_outputs(png, raw, json_path)
    record: dict[str, Any] = dict(extra or {})
    record.update(loc.to_dict())
    record["output"] = os.fspath(png)
    if raw is not None:
        record["raw"] = os.fspath(raw)
    _save_png(Path(png), render(image, loc, value_range))
    if raw is not None:
        _save_npy(Path(raw), loc.heatmap)
    if json_path is not None:
        atomic_write_json(json_path, record)
    return record


# --------------------------------------------------------------------------------------------
# Batch mode


@dataclass
class BatchSummary:
    total: int = 0
    ok: int = 0
    sounding: int = 0
    failed: list[str] = field(default_factory=list)  # one message per failed item
    results: Path | None = None


def run_batch(
    net,
    items: Sequence[Item],
    out_dir: str | Path,
    uth: float | None = None,
    batch_size: int = 8,
    write_json: bool = False,
    write_raw: bool = False,
    value_range: tuple[float, float] | str = (-1.0, 1.0),
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Localise ``items`` into ``out_dir``; bad items are reported through ``on_error`` and
    skipped. Writes ``NAME.png`` (+ ``NAME.json`` / ``NAME.npy``) per item and
    ``results.jsonl`` (one record per item, ``"status": "ok"|"error"``) at the end."""
    threshold = resolve_uth(net, uth)
    out_dir = check_folder(out_dir)
    summary = BatchSummary(total=len(items), results=out_dir / "results.jsonl")
    check_outputs(summary.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []

    def fail(item: Item, message: str) -> None:
        summary.failed.append(message)
        records.append({**item.describe(), "status": "error", "error": message})
        if on_error is not None:
            on_error(message)

    for start in range(0, len(items), max(1, batch_size)):
        chunk = items[start : start + max(1, batch_size)]
        loaded: list[LoadedItem] = []
        for item in chunk:
            try:
                loaded.append(load_item(item, net.inputs))
            except AvlocError as exc:
                fail(item, " ".join(str(exc).split()))
                if on_progress is not None:
                    on_progress(1)
        pairs = [(x.image, x.wave) for x in loaded]
        for x, loc in zip(
            loaded, localize_many(net, pairs, threshold, len(pairs) or 1), strict=True
        ):
            stem = out_dir / x.item.name
            extra = x.item.describe()
            if x.time is not None:
                extra["time"] = x.time
            try:
                record = write_outputs(
                    loc,
                    x.image,
                    stem.with_suffix(".png"),
                    raw=stem.with_suffix(".npy") if write_raw else None,
                    json_path=stem.with_suffix(".json") if write_json else None,
                    extra=extra,
                    value_range=value_range,
                )
            except AvlocError as exc:  # an output path taken by a link or a folder
                fail(x.item, str(exc))
            except OSError as exc:
                fail(x.item, f"{stem.with_suffix('.png')}: cannot write ({exc.strerror or exc})")
            else:
                records.append({**record, "status": "ok"})
                summary.ok += 1
                summary.sounding += int(loc.sounding)
            if on_progress is not None:
                on_progress(1)
    order = {item.name: i for i, item in enumerate(items)}
    records.sort(key=lambda r: order.get(r["name"], len(order)))
    with atomic_path(summary.results) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, sort_keys=True) + "\n")
    return summary
