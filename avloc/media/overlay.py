"""Heatmap overlays: a similarity map blended over its image, the above-threshold region outlined.

Data contract (pure numpy + Pillow + matplotlib colormaps, no Keras):

* ``image``: ``uint8`` RGB ``(H, W, 3)``.
* ``heat``: ``float`` ``(H, W)`` raw similarity map at the image's size: cosine similarity, so
  values lie in ``[-1, 1]`` (NaN is treated as the bottom of the colour scale).
* Colour scaling (``value_range``): ``(lo, hi)`` maps ``lo`` to the bottom of the colormap and
  ``hi`` to the top, clipping outside; the default ``(-1.0, 1.0)`` is the full cosine range, so
  maps of different audios (a positive clip, silence, noise) share one scale and an empty map
  looks empty. ``"minmax"`` stretches each map to its own minimum and maximum instead (the
  classic per-image visualisation; it makes every map look "hot" somewhere).
* ``threshold``: a value in the same raw units (e.g. the universal threshold Uth); pixels with
  ``heat > threshold`` form the region whose boundary is drawn. ``None`` draws no outline.

Results are new ``uint8`` ``(H, W, 3)`` arrays of the input's size; inputs are never modified.
:func:`fit_overlay` first scales an image and its map down to :data:`MAX_OVERLAY_SIDE` pixels
on the longer side, the size overlays are rendered at (``avloc localize``'s PNG, the demo).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["MAX_OVERLAY_SIDE", "fit_overlay", "outline_mask", "overlay_heatmap", "stamp_caption"]

#: The longest side, pixels, of a rendered overlay: larger images (and their maps) are scaled
#: down to it first, so rendering costs at most about 50 MB whatever the image's size.
MAX_OVERLAY_SIDE = 4096


def fit_overlay(
    image: np.ndarray, heat: np.ndarray, max_side: int = MAX_OVERLAY_SIDE
) -> tuple[np.ndarray, np.ndarray]:
    """``(image, heat)`` scaled down (bilinear, aspect kept) so that the longer side is at most
    ``max_side`` pixels; returned as they are when they already fit."""
    from PIL import Image

    height, width = np.asarray(image).shape[:2]
    if max(height, width) <= max_side:
        return image, heat
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.BILINEAR))
    heat = Image.fromarray(np.asarray(heat, np.float32), mode="F").resize(size, Image.BILINEAR)
    return small, np.asarray(heat, np.float32)


@functools.lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """256-entry uint8 RGB lookup table of a matplotlib colormap (read-only)."""
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}") from None
    rgb = colormap(np.linspace(0.0, 1.0, 256))[:, :3]
    lut = np.round(rgb * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _check_inputs(image: np.ndarray, heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    heat = np.asarray(heat, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} differs from the image's {image.shape[:2]}")
    return image, heat


def _value_range(heat: np.ndarray, value_range: tuple[float, float] | str) -> tuple[float, float]:
    """``(lo, hi)`` of the colour scale (see the module docstring)."""
    if isinstance(value_range, str):
        if value_range != "minmax":
            raise ValueError(f"value_range must be (lo, hi) or 'minmax', got {value_range!r}")
        finite = heat[np.isfinite(heat)]
        return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range needs lo < hi, got {value_range}")
    return lo, hi


def outline_mask(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` pixels of its boundary (4-connected erosion).

    Outside the image counts as outside the region, so a region touching the border is closed
    by the border. Returns a bool array of the mask's shape; empty where the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    inner = mask
    for _ in range(max(1, int(thickness))):
        padded = np.pad(inner, 1, constant_values=False)
        inner = (
            padded[1:-1, 1:-1]
            & padded[:-2, 1:-1]
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
        if not inner.any():
            break
    return mask & ~inner


def overlay_heatmap(
    image: np.ndarray,
    heat: np.ndarray,
    threshold: float | None = None,
    *,
    value_range: tuple[float, float] | str = (-1.0, 1.0),
    alpha: float = 0.5,
    cmap: str = "jet",
    outline_color: tuple[int, int, int] = (255, 255, 255),
    outline_thickness: int | None = None,
) -> np.ndarray:
    """Blend a colour-mapped ``heat`` over ``image`` and outline the region ``heat > threshold``.

    ``image`` uint8 ``(H, W, 3)``; ``heat`` ``(H, W)`` raw cosine similarity in ``[-1, 1]``.
    Each pixel becomes ``(1 - alpha) * image + alpha * cmap(scaled heat)`` with the colour scale
    set by ``value_range`` (default fixed ``(-1, 1)``; ``"minmax"`` per map). When ``threshold``
    is given, the boundary of ``heat > threshold`` is painted ``outline_color``,
    ``outline_thickness`` pixels wide (default: about 1/200 of the shorter side, at least 1).
    Returns uint8 ``(H, W, 3)``.
    """
    image, heat = _check_inputs(image, heat)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lut = _lut(cmap).astype(np.float32)
    lo, hi = _value_range(heat, value_range)
    span = hi - lo if hi > lo else 1.0
    out = np.empty_like(image)
    rows = max(1, (1 << 20) // max(1, image.shape[1]))  # about 1 M pixels per block
    for top in range(0, image.shape[0], rows):
        block = slice(top, top + rows)
        unit = np.clip(np.nan_to_num((heat[block] - lo) / span, nan=0.0), 0.0, 1.0)
        index = np.round(unit * 255.0).astype(np.intp)
        mixed = (1.0 - alpha) * image[block].astype(np.float32) + alpha * lut[index]
        out[block] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    if threshold is not None:
        if outline_thickness is None:
            outline_thickness = max(1, round(min(heat.shape) / 200))
        edge = outline_mask(heat > float(threshold), outline_thickness)
        out[edge] = np.asarray(outline_color, dtype=np.uint8)
    return out


@functools.lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines no wider than ``width`` pixels (where possible)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and _text_width(draw, trial, font) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines or [""]


def stamp_caption(
    image: np.ndarray,
    text: str,
    *,
    color: tuple[int, int, int] = (255, 255, 255),
    background: tuple[int, int, int] = (0, 0, 0),
    opacity: float = 0.65,
) -> np.ndarray:
    """Write ``text`` on a translucent band across the top of ``image``; same size, uint8.

    The font size follows the image (about 1/16 of its height, 8 to 48 px) and shrinks, then
    wraps onto more lines, until the text fits the width; lines that would take the band past
    half the image height are dropped (``...``). Only the band's rows change.
    """
    from PIL import Image, ImageDraw

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    margin = max(2, min(h, w) // 50)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    size = int(np.clip(h // 16, 8, 48))
    font = _font(size)
    while size > 8 and _text_width(probe, text, font) > w - 2 * margin:
        size -= 1
        font = _font(size)
    lines = _wrap(probe, text, font, w - 2 * margin)
    line_h = size + max(1, size // 4)
    max_lines = max(1, (h // 2 - 2 * margin) // line_h)  # the band covers at most half
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " ..."
    band_h = min(h, len(lines) * line_h + 2 * margin)
    out = image.copy()
    band = out[:band_h].astype(np.float32)
    band = (1.0 - opacity) * band + opacity * np.asarray(background, np.float32)
    out[:band_h] = np.clip(np.round(band), 0, 255).astype(np.uint8)
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * line_h), line, fill=tuple(color), font=font)
    result = np.asarray(pil, dtype=np.uint8).copy()
    result[band_h:] = image[band_h:]  # text never spills below the band
    return result
