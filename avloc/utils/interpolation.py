"""Bilinear resizing with aligned corners: two 1-D interpolation matrices (docs/protocol.md).

``half_pixel=True`` gives the other convention, OpenCV's ``cv2.resize(..., INTER_LINEAR)``
(equal to ``torch.nn.functional.interpolate(..., align_corners=False)`` when enlarging): output
pixel ``i`` samples the input at ``(i + 0.5) * n_in / n_out - 0.5``, clamped to the edges.

``interpolation_matrix(n_in, n_out)`` is ``(n_out, n_in)`` float32; a ``(h, w)`` map ``m``
resized to ``(H, W)`` is ``R @ m @ C.T`` with ``R = interpolation_matrix(h, H)`` and
``C = interpolation_matrix(w, W)``. :func:`avloc.models.similarity.upsample_maps` does the same with
Keras ops; :func:`upsample` here does it in numpy (no framework needed).
"""

from __future__ import annotations

import numpy as np


def interpolation_matrix(n_in: int, n_out: int, half_pixel: bool = False):
    """``(n_out, n_in)`` float32 weights of 1-D linear interpolation with aligned corners
    (``half_pixel``: pixel centres at half-integers, as OpenCV)."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    if n_in == 1:
        m[:, 0] = 1.0
        return m
    if half_pixel:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    else:
        pos = np.arange(n_out) * (n_in - 1) / max(n_out - 1, 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = (pos - lo).astype(np.float32)
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m


def upsample(maps: np.ndarray, size: int | tuple[int, int], half_pixel: bool = False) -> np.ndarray:
    """``(N, h, w)`` maps -> ``(N, H, W)`` float32 for ``size = (H, W)`` (an int: square)."""
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    maps = np.asarray(maps, np.float32)
    rows = interpolation_matrix(maps.shape[1], int(size[0]), half_pixel)
    cols = interpolation_matrix(maps.shape[2], int(size[1]), half_pixel)
    return np.einsum("yh,nhw,xw->nyx", rows, maps, cols, optimize=True).astype(np.float32)
