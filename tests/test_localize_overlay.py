"""The overlays of ``avloc localize`` (avloc.media.overlay): the colormap blend and the outline of
the region above Uth (closed at the image border, of a chosen thickness), the fixed and min-max
value ranges, and the caption band."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from avloc.media.overlay import outline_mask, overlay_heatmap, stamp_caption

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# ------------------------------------------------------------------------------------------
# overlay


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.hypot(y - cy, x - cx) - r  # negative inside


def test_overlay_blends_colormap_and_outlines_region():
    h, w = 40, 70
    image = np.full((h, w, 3), 100, np.uint8)
    heat = np.clip(-_disc(h, w, 20, 30, 10) / 20, -1, 1).astype(np.float32)  # > 0 in the disc
    out = overlay_heatmap(image, heat, threshold=0.0, alpha=0.4, outline_color=(255, 0, 255))
    assert out.shape == image.shape and out.dtype == np.uint8
    # the outline is the set of region pixels with a 4-neighbour outside the region
    mask = heat > 0.0
    padded = np.pad(mask, 1)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~inside
    assert edge.sum() > 20
    np.testing.assert_array_equal(out[edge], np.tile([255, 0, 255], (edge.sum(), 1)))
    # elsewhere: (1 - alpha) * image + alpha * jet((heat + 1) / 2)
    jet = matplotlib.colormaps["jet"]
    expected = 0.6 * 100 + 0.4 * 255 * jet(np.round((heat + 1) / 2 * 255) / 255)[..., :3]
    assert np.max(np.abs(out[~edge].astype(float) - expected[~edge])) <= 1.0
    # no threshold: no outline, only the blend
    plain = overlay_heatmap(image, heat, threshold=None, alpha=0.4)
    assert np.max(np.abs(plain.astype(float) - expected)) <= 1.0
    # the input is not modified
    assert np.all(image == 100)


def test_overlay_region_touching_border_is_closed_and_thickness():
    heat = np.full((30, 30), -0.5, np.float32)
    heat[:, :10] = 0.5  # a band along the left border
    edge = outline_mask(heat > 0, thickness=2)
    assert edge[:, 8:10].all() and edge[:2, :10].all() and edge[-2:, :10].all()
    assert edge[:, 0:2].all()  # the image border closes the region
    assert not edge[2:-2, 2:8].any() and not edge[:, 10:].any()
    assert not outline_mask(np.zeros((5, 5), bool)).any()


def test_overlay_value_range_fixed_versus_minmax():
    image = np.zeros((8, 9, 3), np.uint8)
    heat = np.linspace(0.1, 0.2, 72, dtype=np.float32).reshape(8, 9)
    jet = (np.asarray(matplotlib.colormaps["jet"]([0.0, 1.0]))[:, :3] * 255).round()
    fixed = overlay_heatmap(image, heat, alpha=1.0)
    minmax = overlay_heatmap(image, heat, value_range="minmax", alpha=1.0)
    np.testing.assert_allclose(minmax[0, 0], jet[0], atol=1)  # own min -> bottom colour
    np.testing.assert_allclose(minmax[-1, -1], jet[1], atol=1)  # own max -> top colour
    # on the fixed [-1, 1] scale the whole map sits just above the middle of the colormap
    mid = (np.asarray(matplotlib.colormaps["jet"]([0.55, 0.6]))[:, :3] * 255).round()
    assert np.abs(fixed[0, 0] - mid[0]).max() <= 3 and np.abs(fixed[-1, -1] - mid[1]).max() <= 3
    with pytest.raises(ValueError):
        overlay_heatmap(image, heat[:4])
    with pytest.raises(ValueError):
        overlay_heatmap(image, heat, value_range=(1.0, -1.0))


@pytest.mark.parametrize("size", [(300, 400), (23, 31)])
def test_stamp_caption_changes_only_a_top_band(size):
    image = np.full((*size, 3), 200, np.uint8)
    out = stamp_caption(image, "no sounding object found (max 0.210 < Uth 0.350)")
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.flatnonzero(np.any(out != image, axis=(1, 2)))
    assert changed.size > 0 and changed[0] == 0
    band = changed[-1] + 1
    assert np.all(np.any(out[:band] != image[:band], axis=(1, 2)))  # one contiguous band
    assert band <= max(size[0] // 2 + 1, 14)  # at most half the picture (or one 8 px line)
    np.testing.assert_array_equal(out[band:], image[band:])
    darkened = np.median(out[:band])
    assert darkened < 120 and out[:band].max() > darkened + 100  # light text on a dark band
