"""Pictures of the classes: shapes, textures, backgrounds, placement and drawing (uint8 RGB)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from avloc.data.synthetic.classes import CLASSES, TAU


def _floor_mod(x: np.ndarray, p: float) -> np.ndarray:
    return x - np.floor(x * (1.0 / p)) * p


def _polygon(n: int, vertex_angle: float):
    """Regular n-gon with circumradius 1 and a vertex at ``vertex_angle`` (radians)."""
    mid = vertex_angle + math.pi / n  # direction of an edge midpoint
    apothem = math.cos(math.pi / n)
    sector = TAU / n

    def inside(u, v):
        phi = _floor_mod(np.arctan2(v, u) - (mid - 0.5 * sector), sector) - 0.5 * sector
        return np.hypot(u, v) * np.cos(phi) <= apothem

    return inside


def _star(u, v, points=5, inner=0.45):
    # Fold every point into the half-sector [0, pi/points] next to the outer vertex that points
    # up (image y grows downwards, so "up" is angle -pi/2), then test it against the edge from
    # that vertex (1, 0) to the inner vertex at angle pi/points.
    r = np.hypot(u, v)
    sector = TAU / points
    a = np.abs(_floor_mod(np.arctan2(v, u) + 0.5 * math.pi + 0.5 * sector, sector) - 0.5 * sector)
    qx, qy = r * np.cos(a), r * np.sin(a)
    px, py = inner * math.cos(math.pi / points), inner * math.sin(math.pi / points)
    return (qx - 1.0) * py - qy * (px - 1.0) >= 0.0  # same side of the edge as the centre


def _heart(u, v):
    x, y = 1.35 * u, 0.15 - 1.35 * v
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _crescent(u, v):
    return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + (v + 0.15) ** 2 >= 0.8**2)


# Shapes on the unit disc (u right, v down, both in [-1, 1] across the object's square window):
# every shape lies within radius 1, so a rotated shape stays inside its window.
_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.7071,
    "triangle": _polygon(3, -0.5 * math.pi),
    "diamond": lambda u, v: np.abs(u) * (1.0 / 0.62) + np.abs(v) <= 1.0,
    "cross": _cross,
    "ring": _ring,
    "star": _star,
    "hexagon": _polygon(6, 0.0),
    "ellipse": lambda u, v: u * u + (v * (1.0 / 0.55)) ** 2 <= 1.0,
    "crescent": _crescent,
    "pentagon": _polygon(5, -0.5 * math.pi),
    "heart": _heart,
}


def _texture(kind: str, pu: np.ndarray, pv: np.ndarray, period: float, rng) -> np.ndarray:
    """Boolean pattern (True = secondary tone) in the object's pixel frame ``(pu, pv)``."""
    ou, ov = rng.uniform(0.0, period, 2)
    half = 0.5 * period
    if kind == "solid":
        return np.zeros(np.broadcast_shapes(pu.shape, pv.shape), dtype=bool)
    if kind == "stripes":  # diagonal, in the object's frame
        return (np.floor((pu + pv + ou) * (1.0 / (half * math.sqrt(2.0)))) % 2) == 1
    if kind == "checker":
        return ((np.floor((pu + ou) * (1.0 / half)) + np.floor((pv + ov) * (1.0 / half))) % 2) == 1
    if kind == "dots":
        du = _floor_mod(pu + ou, period) - half
        dv = _floor_mod(pv + ov, period) - half
        return du * du + dv * dv <= (0.32 * period) ** 2
    raise ValueError(f"unknown texture {kind!r}")


def _secondary(colour: np.ndarray) -> np.ndarray:
    """The texture's second tone: darker for light colours, lighter for dark ones."""
    luma = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return colour * np.float32(0.55) if luma > 100 else colour + (255.0 - colour) * np.float32(0.45)


def background(rng: np.random.Generator, s: int) -> np.ndarray:
    """Float32 (s, s, 3) cluttered background: colour gradient + soft blobs + thin lines.

    (Speckle is added by :func:`make_scene` over the whole image, objects included.)
    """
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s
    # img[y, x, c] = sum_j rows[j, y] * cols[j, x, c]: one matmul for the bilinear gradient
    # between four random, mostly grey corner colours (j = 0, 1) and for soft axis-aligned
    # elliptical blobs (j >= 2, a separable Gaussian each with its own colour offset)
    corners = (rng.uniform(70.0, 185.0) + rng.uniform(-45.0, 45.0, (2, 2, 3))).astype(np.float32)
    n = int(rng.integers(3, 8))
    cx, cy = rng.uniform(0.0, 1.0, (2, n, 1))
    sx, sy = rng.uniform(0.03, 0.15, (2, n, 1))
    amp = rng.uniform(-28.0, 28.0, (n, 1)) + rng.uniform(-8.0, 8.0, (n, 3))
    rows = np.empty((n + 2, s), dtype=np.float32)
    cols = np.empty((n + 2, s, 3), dtype=np.float32)
    rows[0], rows[1] = 1.0 - grid, grid
    cols[0] = corners[0, 0] + grid[:, None] * (corners[0, 1] - corners[0, 0])
    cols[1] = corners[1, 0] + grid[:, None] * (corners[1, 1] - corners[1, 0])
    rows[2:] = np.exp(-0.5 * ((grid - cy) / sy) ** 2)
    cols[2:] = np.exp(-0.5 * ((grid - cx) / sx) ** 2)[:, :, None] * amp[:, None, :]
    img = np.empty((s, s * 3), dtype=np.float32)
    rows_t, cols = np.ascontiguousarray(rows.T), cols.reshape(n + 2, s * 3)
    step = max(1, 65536 // (3 * s))  # small blocks: multi-threaded BLAS only slows this down
    for y in range(0, s, step):
        np.matmul(rows_t[y : y + step], cols, out=img[y : y + step])
    img = img.reshape(s, s, 3)

    # thin low-contrast line segments, drawn by PIL as offsets around 128
    n = int(rng.integers(2, 7))
    p0 = rng.uniform(-0.1, 1.1, (n, 2)) * s
    p1 = p0 + rng.uniform(-0.8, 0.8, (n, 2)) * s
    width = rng.integers(1, 3, n)
    offset = rng.uniform(-25.0, 25.0, (n, 1)) + rng.uniform(-6.0, 6.0, (n, 3))
    layer = Image.new("RGB", (s, s), (128, 128, 128))
    draw = ImageDraw.Draw(layer)
    for i in range(n):
        fill = tuple(int(round(128 + o)) for o in offset[i])
        draw.line([tuple(p0[i]), tuple(p1[i])], fill=fill, width=int(width[i]))
    img += np.asarray(layer, dtype=np.float32) - np.float32(128.0)
    return img


def place(
    rng: np.random.Generator, n: int, s: int, scale: tuple[float, float] = (0.19, 0.36)
) -> list[tuple[int, int, int]]:
    """Up to ``n`` square windows ``(x0, y0, side)`` inside the image, at least 1 px apart; a
    window's side is uniform in ``scale`` times ``s``.

    A window that does not fit among the others after 32 random tries is shrunk (x0.8) and
    tried again, up to 4 times, then dropped (the first one always fits).
    """
    placed: list[tuple[int, int, int]] = []
    for _ in range(n):
        side = max(6, int(round(rng.uniform(*scale) * s)))
        for _shrink in range(4):
            xs = rng.integers(0, s - side + 1, 32)
            ys = rng.integers(0, s - side + 1, 32)
            ok = np.ones(32, dtype=bool)
            for x0, y0, w in placed:
                ok &= (
                    (xs >= x0 + w + 1)
                    | (xs + side + 1 <= x0)
                    | (ys >= y0 + w + 1)
                    | (ys + side + 1 <= y0)
                )
            hit = np.flatnonzero(ok)
            if hit.size:
                placed.append((int(xs[hit[0]]), int(ys[hit[0]]), side))
                break
            side = max(6, int(side * 0.8))
    return placed


def draw_object(
    img: np.ndarray, label: int, window: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """Paint object ``label`` into its window of ``img`` (in place); return its (S, S) mask."""
    spec = CLASSES[label]
    x0, y0, side = window
    half = 0.5 * side
    # unit disc -> 96% of the window, so that round shapes do not get flat sides at its edges
    c = (np.arange(side, dtype=np.float32) + np.float32(0.5 - half)) * np.float32(
        1.0 / (0.96 * half)
    )
    u, v = c[None, :], c[:, None]
    a = math.radians(rng.uniform(-15.0, 15.0))
    ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
    ur, vr = ca * u + sa * v, ca * v - sa * u  # (side, side) each
    local = np.asarray(_SHAPES[spec.shape](ur, vr), dtype=bool)
    if not local.any():  # cannot happen for side >= 6; keeps the mask non-empty regardless
        local[side // 2, side // 2] = True
    colour = np.asarray(spec.colour, dtype=np.float32) * np.float32(rng.uniform(0.92, 1.08))
    colour = np.clip(colour, 0.0, 255.0)
    period = max(4.0, side / rng.uniform(4.0, 6.0))
    scale = np.float32(0.96 * half)  # back to pixels
    alt = _texture(spec.texture, ur * scale, vr * scale, period, rng)
    tile = np.where(alt[:, :, None], _secondary(colour), colour)
    view = img[y0 : y0 + side, x0 : x0 + side]
    view[local] = tile[local]
    mask = np.zeros(img.shape[:2], dtype=np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = local
    return mask


def tight_box(mask: np.ndarray) -> np.ndarray:
    """Normalised ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of the non-zero pixels of ``mask``."""
    s = mask.shape[0]
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    box = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
    return np.asarray(box, dtype=np.float32) / np.float32(s)
