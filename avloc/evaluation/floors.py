"""Audio-free reference rows ("floors"), scored by the same protocol as the models.

A floor replaces every map of a model's records by one that ignores the audio, so the table
shows what a score is worth when nothing listens (on VGG-SS-style data the whole-image map alone
reaches a cIoU at Uth of about 20):

- ``whole image``: 1 everywhere ("the whole picture sounds");
- ``centre prior``: a centred Gaussian bump, ``exp(-r^2 / (2 sigma^2))`` with ``sigma`` a quarter
  of the map side;
- ``random map``: uniform noise in [0, 1), drawn per sample from ``default_rng([seed, i])``.

Maps keep the records' resolution (``(n, h, w)`` float32, upsampled by the scorer like any map),
and one map stands for every audio condition of a sample: a floor cannot tell sounding pairs
from silent ones, so its pIA and Sep show what no listening gives. Floors are scored at their
own Uth, :data:`FLOOR_UTH` = 0.5 (whole image: every pixel above; centre prior: a centred disc
of radius about 0.29 of the side; random map: about half the pixels). Retrieval is left out:
the embeddings are still the model's.
"""

from __future__ import annotations

import copy

import numpy as np

from avloc.maps.records import SampleRecords

FLOORS = ("whole image", "centre prior", "random map")
FLOOR_UTH = 0.5


def centre_bump(size: int) -> np.ndarray:
    """``(size, size)`` float32 Gaussian bump with its peak (1) at the centre."""
    grid = (np.arange(size) + 0.5) / size - 0.5
    r2 = grid[:, None] ** 2 + grid[None, :] ** 2
    return np.exp(-r2 / (2 * 0.25**2)).astype(np.float32)


def floor_maps(kind: str, n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(n, height, width)`` float32 maps of floor ``kind`` (one of :data:`FLOORS`)."""
    if kind == "whole image":
        return np.ones((n, height, width), np.float32)
    if kind == "centre prior":
        if height != width:
            raise ValueError(f"the centre prior needs square maps, got {height}x{width}")
        return np.broadcast_to(centre_bump(height), (n, height, width)).copy()
    if kind == "random map":
        return np.stack(
            [np.random.default_rng([seed, i]).random((height, width)) for i in range(n)]
        ).astype(np.float32)
    raise ValueError(f"unknown floor {kind!r}; expected one of {FLOORS}")


def floor_records(records: SampleRecords, kind: str, seed: int = 0) -> SampleRecords:
    """``records`` with every condition's maps replaced by floor ``kind``'s (same per sample)."""
    n, height, width = next(iter(records.maps.values())).shape
    maps = floor_maps(kind, n, height, width, seed)
    floor = copy.copy(records)
    floor.maps = {condition: maps.copy() for condition in records.maps}
    return floor
