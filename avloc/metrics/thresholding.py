"""Binarising localisation heatmaps: the three threshold families of docs/protocol.md.

A heatmap is a float map of raw audio-visual cosine similarity in ``[-1, 1]`` (224x224 in the
benchmarks, any ``H x W`` here). Every function takes one map ``(H, W)`` or a batch
``(..., H, W)`` (any float dtype, computed in float64) and returns a boolean mask of the same
shape:

* **median**: ``pred = minmax(map)``; ``thr = np.sort(pred.ravel())[int(H * W / 2)]``;
  ``pred >= thr`` (the sorted-index median of the reference code, so at least half the pixels
  are on).
* **adaptive**: the ``k`` largest raw values, ``k = sum(gt > 0)`` (``int(H * W / 2)`` when the
  ground truth is empty); ties broken by a stable argsort of the negated map, so exactly ``k``
  pixels are on and, among equal values, the lower row-major index wins.
* **universal**: ``map > uth`` (strict), one fixed threshold for every image and audio.
"""

from __future__ import annotations

import numpy as np

from ._common import as_map_batch, per_map_thresholds

__all__ = [
    "THRESHOLD_METHODS",
    "binarize",
    "binarize_adaptive",
    "binarize_median",
    "binarize_universal",
    "minmax_normalize",
    "topk_mask",
]

#: Names accepted by :func:`binarize`.
THRESHOLD_METHODS = ("median", "adaptive", "universal")

_TOPK_CHUNK_ELEMS = 1 << 23  # pixels ranked at once by topk_mask (~64 MiB per temporary)


def minmax_normalize(maps) -> np.ndarray:
    """Min-max normalise each map to ``[0, 1]``: ``(m - min(m)) / (max(m) - min(m))``.

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` array, any real dtype (raw cosine similarity).

    Returns:
        float64 array of the input shape with values in ``[0, 1]``; min and max are taken per
        ``(H, W)`` map. A constant map (``max == min``) becomes all zeros instead of NaN.
    """
    batch, lead = as_map_batch(maps)
    lo = batch.min(axis=(1, 2), keepdims=True)
    span = batch.max(axis=(1, 2), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    out = np.where(span > 0, (batch - lo) / safe, 0.0)
    return out.reshape(lead + batch.shape[1:])


def binarize_median(maps) -> np.ndarray:
    """Median threshold: ``pred = minmax(map)``; ``pred >= np.sort(pred.ravel())[int(H*W/2)]``.

    This is the sorted-index definition of the reference code (not ``np.median``): for an even
    pixel count the threshold is the upper of the two middle values, and ties at the threshold
    are all on, so at least ``H*W - int(H*W/2)`` pixels are on.

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps (any real dtype).

    Returns:
        bool array of the input shape.
    """
    pred = minmax_normalize(maps)
    batch, lead = as_map_batch(pred)
    flat = batch.reshape(batch.shape[0], -1)
    kth = int(flat.shape[1] / 2)
    thr = np.partition(flat, kth, axis=1)[:, kth : kth + 1]  # == np.sort(flat)[:, kth]
    return (flat >= thr).reshape(lead + batch.shape[1:])


def topk_mask(maps, k) -> np.ndarray:
    """Keep exactly the ``k`` largest pixels of each map (stable tie-break, lower index first).

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps.
        k: int, or integer array broadcastable to the leading shape ``(...)``; ``0 <= k <= H*W``.

    Returns:
        bool array of the input shape with exactly ``k`` pixels on per map. Ranks come from
        ``np.argsort(-map.ravel(), kind="stable")``: among equal values the lower row-major
        index ranks first.
    """
    batch, lead = as_map_batch(maps)
    m, h, w = batch.shape
    n = h * w
    k_arr = np.broadcast_to(np.asarray(k), lead).reshape(-1)
    if k_arr.size != m:
        raise ValueError(f"k must broadcast to the leading shape {lead}; got {np.shape(k)}")
    k_arr = k_arr.astype(np.int64)
    if np.any(k_arr < 0) or np.any(k_arr > n):
        raise ValueError(f"k must be in [0, {n}]; got {k_arr.min()}..{k_arr.max()}")
    flat = batch.reshape(m, n)
    out = np.empty((m, n), dtype=bool)
    chunk = max(1, _TOPK_CHUNK_ELEMS // n)  # bounds the argsort temporaries, same result
    for s in range(0, m, chunk):
        block = flat[s : s + chunk]
        order = np.argsort(-block, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n), block.shape), axis=1)
        out[s : s + chunk] = ranks < k_arr[s : s + chunk, None]
    return out.reshape(lead + (h, w))


def binarize_adaptive(maps, gt) -> np.ndarray:
    """Adaptive threshold: top-``k`` raw pixels with ``k = sum(gt > 0)`` per map.

    ``k`` is the ground-truth area in pixels; when the ground truth is empty,
    ``k = int(H * W / 2)`` (half the image). Ties: see :func:`topk_mask` (exactly ``k`` on).

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps.
        gt: ground truth of the same shape (binary or soft, e.g. Flickr ``{0, 0.5, 1}``).

    Returns:
        bool array of the input shape.
    """
    batch, lead = as_map_batch(maps)
    gtb, _ = as_map_batch(gt, "gt")
    if gtb.shape != batch.shape:
        raise ValueError(f"gt shape {np.shape(gt)} does not match maps shape {np.shape(maps)}")
    n = batch.shape[1] * batch.shape[2]
    k = np.count_nonzero(gtb.reshape(gtb.shape[0], -1) > 0, axis=1)
    k = np.where(k == 0, int(n / 2), k)
    return topk_mask(batch, k).reshape(lead + batch.shape[1:])


def binarize_universal(maps, uth) -> np.ndarray:
    """Universal threshold: ``map > uth`` (strict) on the raw map, same ``uth`` for all maps.

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps (cosine similarity).
        uth: float threshold in raw cosine units (see :func:`avloc.metrics.calibrate_uth`); or
            one fixed threshold per map, an array broadcastable to the leading shape ``(...)``
            (avloc's protocol always passes one float; vssl_eval's median and adaptive rows
            compare each map with its own, :mod:`avloc.evaluation.vssl_eval`).

    Returns:
        bool array of the input shape.
    """
    batch, lead = as_map_batch(maps)
    return (batch > per_map_thresholds(uth, lead)).reshape(lead + batch.shape[1:])


def binarize(maps, method: str, gt=None, uth: float | None = None) -> np.ndarray:
    """Dispatch to :func:`binarize_median`, :func:`binarize_adaptive` or :func:`binarize_universal`.

    Args:
        maps: ``(H, W)`` or ``(..., H, W)`` raw heatmaps.
        method: ``"median"``, ``"adaptive"`` (needs ``gt``) or ``"universal"`` (needs ``uth``).
        gt: ground truth, same shape as ``maps`` (adaptive only).
        uth: universal threshold, raw cosine units (universal only).

    Returns:
        bool array of the input shape.
    """
    if method == "median":
        return binarize_median(maps)
    if method == "adaptive":
        if gt is None:
            raise ValueError("the adaptive threshold needs the ground truth (gt=...)")
        return binarize_adaptive(maps, gt)
    if method == "universal":
        if uth is None:
            raise ValueError("the universal threshold needs uth=...")
        return binarize_universal(maps, uth)
    raise ValueError(f"unknown threshold method {method!r}; expected one of {THRESHOLD_METHODS}")
