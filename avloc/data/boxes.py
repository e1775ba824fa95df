"""Ground-truth boxes as stored in shards: normalised float32 that round-trips to exact pixels.

A box is ``(x1, y1, x2, y2)``. Annotations give it either normalised to ``[0, 1]`` (VGG-SS) or in
pixels of some frame (Flickr-SoundNet: a 256 x 256 frame; IS3: 224 x 224; a manifest: the
image's own size or a stated size). Shards store every box normalised, ``v / frame_side``, as
float32, and evaluation turns it back into pixels with ``int(v * S)`` (docs/protocol.md,
:mod:`avloc.metrics.ground_truth`). :func:`normalise_boxes` chooses the float32 value so that
``int(S * float32)`` equals ``int(S * v / side)`` computed exactly, for the shard's image side
``S``:

- normalised input (side 1): ``int(S * v)``, e.g. VGG-SS ``0.403125 -> int(90.3) = 90``;
- 224 px boxes in a 224 px shard (IS3): ``int(v)``, the pixel itself;
- 256 px boxes (Flickr): ``v / 256`` is exact in float32, so ``int(224 * v / 256)`` comes back
  bit for bit.

Boxes slightly outside the frame (within ``tolerance`` of its side) are clipped to it; a box
with non-finite coordinates, ``x2 < x1`` or ``y2 < y1``, or coordinates further outside is a
:class:`BoxError` (the sample is reported and left out). Zero-area boxes are kept (they paint
nothing, as in the reference evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BoxError", "normalise_boxes", "pad_boxes"]


class BoxError(ValueError):
    """A box that cannot be placed in its image (one-line reason)."""


def _exact_float32(value: float, target: int, size: int) -> np.float32:
    """The float32 nearest ``value`` in [0, 1] with ``int(size * float64(f)) == target``."""
    f = np.float32(min(max(value, 0.0), 1.0))
    for _ in range(64):
        got = int(np.floor(size * np.float64(f)))
        if got == target:
            return f
        f = np.nextafter(f, np.float32(np.inf if got < target else -np.inf), dtype=np.float32)
    return np.float32(min(max(value, 0.0), 1.0))  # unreachable for target in [0, size]


def normalise_boxes(
    boxes: Sequence[Sequence[float]],
    frame: tuple[float, float] = (1.0, 1.0),
    size: int = 224,
    tolerance: float = 0.02,
) -> np.ndarray:
    """Boxes in a ``frame = (width, height)`` coordinate system -> float32 ``(K, 4)`` in [0, 1].

    ``frame = (1, 1)`` means the boxes are already normalised. ``size`` is the stored image side
    whose pixel grid must be recovered exactly (see the module docstring). Raises
    :class:`BoxError` for unusable boxes.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise BoxError(f"a box needs 4 coordinates (x1, y1, x2, y2), got shape {arr.shape[1:]}")
    width, height = float(frame[0]), float(frame[1])
    if not (width > 0 and height > 0):
        raise BoxError(f"box frame {width} x {height} is empty")
    sides = np.array([width, height, width, height])
    unit = "normalised" if (width, height) == (1.0, 1.0) else f"{width:g}x{height:g} px"
    out = np.empty(arr.shape, np.float32)
    for k, box in enumerate(arr):
        text = ", ".join(f"{v:g}" for v in box)
        if not np.isfinite(box).all():
            raise BoxError(f"box {k} ({text}) has non-numeric coordinates")
        if box[2] < box[0] or box[3] < box[1]:
            raise BoxError(f"box {k} ({text}) is inverted (x2 < x1 or y2 < y1)")
        if (box < -tolerance * sides).any() or (box > (1.0 + tolerance) * sides).any():
            raise BoxError(f"box {k} ({text}) lies outside the image ({unit} frame)")
        clipped = np.clip(box, 0.0, sides)
        for j in range(4):
            # int(size * v / side) with one rounding: exact for integer pixel coordinates.
            target = int(np.floor((size * clipped[j]) / sides[j]))
            out[k, j] = _exact_float32(clipped[j] / sides[j], min(target, size), size)
    return out


def pad_boxes(
    boxes: np.ndarray, groups: Sequence[int] | None, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(k, 4)`` boxes -> ``(count, 4)`` NaN-padded and ``(count,)`` int32 groups, -1 padded."""
    k = len(boxes)
    if k > count:
        raise ValueError(f"{k} boxes do not fit {count} slots")
    padded = np.full((count, 4), np.nan, np.float32)
    padded[:k] = boxes
    owner = np.full((count,), -1, np.int32)
    owner[:k] = np.arange(k) if groups is None or len(groups) == 0 else np.asarray(groups)[:k]
    return padded, owner
