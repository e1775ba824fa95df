"""Adaptive cIoU@0.5 of saved per-sample records under two upsampling rules (no retraining).

avloc's protocol (and the published evaluators) upsample the h x w map with bilinear
interpolation and aligned corners: cell i is drawn at pixel i (S - 1) / (h - 1). The half-pixel
rule (``align_corners=False``) draws it at (i + 0.5) S / h - 0.5, the centre of the image region
the cell covers. Rescoring the same maps both ways isolates what the drawing alone costs.

Usage: python3 scripts/rescore_upsampling.py RECORDS.npz [...]   (``avloc eval`` samples/ files,
or runs/reproduce-synthetic/samples/*.npz); prints one row per file and a mean per method.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from avloc.maps.records import load_records
from avloc.metrics import ground_truth_maps
from avloc.metrics.localization import map_cious
from avloc.utils.interpolation import upsample


def half_pixel_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of linear interpolation with half-pixel centres (clamped)."""
    m = np.zeros((n_out, n_in), np.float32)
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, max(n_in - 2, 0))
    frac = (pos - lo).astype(np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), np.minimum(lo + 1, n_in - 1)] += frac
    return m


def upsample_half_pixel(maps: np.ndarray, size: int) -> np.ndarray:
    rows, cols = half_pixel_matrix(maps.shape[1], size), half_pixel_matrix(maps.shape[2], size)
    return np.einsum("yh,nhw,xw->nyx", rows, maps, cols).astype(np.float32)


def rescore(path: Path) -> tuple[float, float]:
    records = load_records(path)
    size = records.map_size
    gts = ground_truth_maps(records, np.arange(len(records)), size)
    maps = records.maps["positive"]
    aligned = map_cious(upsample(maps, size), gts, "adaptive")
    half = map_cious(upsample_half_pixel(maps, size), gts, "adaptive")
    return 100 * float(np.mean(aligned >= 0.5)), 100 * float(np.mean(half >= 0.5))


def main(paths: list[str]) -> None:
    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    print(f"{'records':28s} {'aligned corners':>16s} {'half-pixel':>11s}")
    for name in paths:
        path = Path(name)
        aligned, half = rescore(path)
        by_method[path.stem.rsplit("-s", 1)[0]].append((aligned, half))
        print(f"{path.name:28s} {aligned:16.1f} {half:11.1f}")
    print()
    for method, rows in by_method.items():
        a, h = np.mean(rows, axis=0)
        print(f"{method + ' (mean of ' + str(len(rows)) + ')':28s} {a:16.1f} {h:11.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
