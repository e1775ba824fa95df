"""SSL-TIE's moco_v2 augmentation (avloc.inputs.moco) against references written out here:
torchvision's RandomResizedCrop rule, Pillow's blend / luma / HSV / extended box blur in numpy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from avloc.inputs import moco
from avloc.inputs.images import normalize


def _image(seed: int, height: int = 32, width: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _smooth(seed: int, n: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / n
    phase = np.random.default_rng(seed).random(3) * 6.0
    chans = [128 + 100 * np.sin(3 * x + 2 * y + p) for p in phase]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


# ---- references (Pillow's C code and torchvision's rules, written out) ----------------------


def ref_luma(img):  # Convert.c: L24
    r, g, b = (img[..., k].astype(np.int64) for k in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16).astype(np.uint8)


def ref_blend(a, b, alpha):  # Blend.c: trunc(a + alpha (b - a)) in float32, clamped
    a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
    value = a + np.float32(alpha) * (b - a)
    return np.trunc(np.clip(value, 0, 255)).astype(np.uint8)


def ref_brightness(img, f):
    return ref_blend(0, img, f)


def ref_contrast(img, f):
    return ref_blend(int(ref_luma(img).mean() + 0.5), img, f)


def ref_saturation(img, f):
    return ref_blend(np.repeat(ref_luma(img)[..., None], 3, -1), img, f)


def ref_hue(img, f):  # Convert.c rgb2hsv / hsv2rgb, per pixel; H + int(f * 255) mod 256
    f32 = np.float32
    out = np.empty_like(img)
    for idx in np.ndindex(img.shape[:2]):
        r, g, b = (int(v) for v in img[idx])
        mx, mn = max(r, g, b), min(r, g, b)
        if mx == mn:
            out[idx] = mx
            continue
        cr = f32(mx - mn)
        s = cr / f32(mx)
        rc, gc, bc = (float(f32(mx - c) / cr) for c in (r, g, b))  # C: floats, double constants
        if r == mx:
            h = f32(f32(bc) - f32(gc))
        else:
            h = f32(2.0 + rc - bc) if g == mx else f32(4.0 + gc - rc)
        h = f32(math.fmod(float(h) / 6.0 + 1.0, 1.0))
        hh = (min(max(int(float(h) * 255.0), 0), 255) + int(f * 255) % 256) % 256
        ss = min(max(int(float(s) * 255.0), 0), 255)
        if ss == 0:
            out[idx] = mx
            continue
        i = math.floor(hh * 6.0 / 255.0)
        fr = f32(hh * 6.0 / 255.0 - i)
        fs = f32(ss / 255.0)
        p, q, t = (
            min(max(int(math.floor(mx * v + 0.5)), 0), 255)
            for v in (1.0 - float(fs), 1.0 - float(fs * fr), 1.0 - float(fs) * (1.0 - float(fr)))
        )
        out[idx] = [(mx, t, p), (q, mx, p), (p, mx, t), (p, q, mx), (t, p, mx), (mx, p, q)][i % 6]
    return out


def ref_box_line(x, radius):  # BoxBlur.c: one extended box pass, edges replicated, 24-bit fixed
    n, ri = len(x), int(radius)
    ww = int(np.float32(1 << 24) / (np.float32(radius) * np.float32(2) + np.float32(1)))
    fw = ((1 << 24) - (2 * ri + 1) * ww) // 2
    x = x.astype(np.int64)
    out = np.empty(n, np.int64)
    for i in range(n):
        acc = sum(int(x[min(max(i + k, 0), n - 1)]) for k in range(-ri, ri + 1))
        far = int(x[max(i - ri - 1, 0)]) + int(x[min(i + ri + 1, n - 1)])
        out[i] = (acc * ww + far * fw + (1 << 23)) >> 24
    return out


def ref_pillow_blur(img, sigma):  # _gaussian_blur_radius + 3 horizontal then 3 vertical passes
    f32 = np.float32
    sigma2 = f32(sigma) * f32(sigma) / f32(3)
    big_l = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    small_l = f32(math.floor((float(big_l) - 1.0) / 2.0))
    a = (2 * small_l + 1) * (small_l * (small_l + 1) - 3 * sigma2)
    radius = small_l + a / (6 * (sigma2 - (small_l + 1) * (small_l + 1)))
    out = img.astype(np.int64)
    for axis in (1, 0):
        for _ in range(3):
            out = np.apply_along_axis(ref_box_line, axis, out, radius)
    return out.astype(np.uint8)


def ref_gaussian(img, sigma):  # a true sampled Gaussian, separable, edges replicated
    radius = int(math.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        out = sum(
            w * np.take(padded, np.arange(j, j + img.shape[axis]), axis=axis)
            for j, w in enumerate(k)
        )
    return out


def ref_crop(u, corner, height, width):  # torchvision RandomResizedCrop.get_params
    area = height * width
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    for ua, ur in u:
        target = area * (0.3 + 0.7 * ua)
        aspect = math.exp(lo + (hi - lo) * ur)
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(corner[0] * (height - h + 1)), int(corner[1] * (width - w + 1)), h, w
    ratio = width / height
    if ratio < 3 / 4:
        w, h = width, int(round(width / (3 / 4)))
    elif ratio > 4 / 3:
        h, w = height, int(round(height * (4 / 3)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _draw(**kw) -> moco.MocoDraw:
    base = dict(top=0, left=0, height=32, width=32, jitter=False, order=(0, 1, 2, 3))
    base |= dict(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0, grayscale=False)
    base |= dict(blur=False, sigma=1.0, flip=False)
    return moco.MocoDraw(**(base | kw))


# ---- the crop --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (80, 48), (33, 57)])
def test_crop_boxes_follow_torchvision(shape):
    rng = np.random.default_rng(7)
    height, width = shape
    for _ in range(400):
        u, corner = rng.random((10, 2)), rng.random(2)
        top, left, h, w = moco.crop_box(u, corner, height, width)
        assert (top, left, h, w) == ref_crop(u, corner, height, width)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        # rounding of w and h moves area and aspect by at most half a pixel on each side
        slack = 1.0 / h + 1.0 / w + 0.5 / (h * w)
        assert 0.3 * (1 - slack) <= h * w / (height * width) <= 1.0
        assert 3 / 4 * (1 - slack) <= w / h <= 4 / 3 * (1 + slack)


@pytest.mark.parametrize(
    ("shape", "box"), [((10, 100), (0, 43, 10, 13)), ((100, 10), (43, 0, 13, 10))]
)
def test_crop_falls_back_to_the_central_crop(shape, box):
    rng = np.random.default_rng(0)
    for _ in range(50):  # no attempt fits a 1:10 image: every draw is the central crop
        draw = moco.draw_moco(rng, *shape, size=16)
        assert (draw.top, draw.left, draw.height, draw.width) == box
    square = moco.crop_box(np.full((10, 2), 0.999), [0.5, 0.5], 20, 20)  # all rejected
    assert square == (0, 0, 20, 20)


# ---- the draws -------------------------------------------------------------------------------


def test_draw_ranges_and_frequencies():
    rng = np.random.default_rng(123)
    n = 4000
    draws = [moco.draw_moco(rng, 48, 64, 32) for _ in range(n)]
    for name, p in [("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.5), ("flip", 0.5)]:
        rate = np.mean([getattr(d, name) for d in draws])
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n), (name, rate)
    for name, lo, hi in [("brightness", 0.6, 1.4), ("contrast", 0.6, 1.4)]:
        values = np.array([getattr(d, name) for d in draws])
        assert lo <= values.min() and values.max() < hi and abs(values.mean() - 1.0) < 0.02
    assert all(0.6 <= d.saturation < 1.4 and -0.1 <= d.hue < 0.1 for d in draws)
    assert all(0.1 <= d.sigma < 2.0 for d in draws)
    assert len({d.order for d in draws}) == 24  # every order of the four jitter operations


def test_draws_are_replayable_and_a_fixed_number():
    a = moco.draw_moco(np.random.default_rng([1, 2, 3]), 48, 64)
    assert a == moco.draw_moco(np.random.default_rng([1, 2, 3]), 48, 64)
    assert a != moco.draw_moco(np.random.default_rng([1, 2, 4]), 48, 64)
    after = []
    for shape in [(10, 100), (64, 64), (48, 80)]:  # fallback or not: the same draws consumed
        rng = np.random.default_rng(5)
        moco.draw_moco(rng, *shape)
        after.append(rng.random())
    assert after[0] == after[1] == after[2]


def test_moco_v2_is_deterministic_per_seed():
    img = _image(1, 40, 48)
    out = moco.moco_v2(np.random.default_rng([0, 1, 2]), img, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, moco.moco_v2(np.random.default_rng([0, 1, 2]), img, 32))
    assert not np.array_equal(out, moco.moco_v2(np.random.default_rng([0, 1, 3]), img, 32))


# ---- the operations ----------------------------------------------------------------------------


def test_unit_factors_leave_the_image_unchanged():
    img = _image(2)
    for op in (moco.adjust_brightness, moco.adjust_contrast, moco.adjust_saturation):
        np.testing.assert_array_equal(op(img, 1.0), img)
    gray = np.repeat(_image(3)[..., :1], 3, -1)  # no hue to shift: any factor is the identity
    np.testing.assert_array_equal(moco.adjust_hue(gray, 0.37), gray)
    # hue 0 goes through Pillow's uint8 HSV: H is kept to 1/255 of a turn, (max - min) * 6 / 255
    spread = img.max(-1, keepdims=True).astype(int) - img.min(-1, keepdims=True)
    assert np.all(np.abs(moco.adjust_hue(img, 0.0).astype(int) - img) <= spread * 6 / 255 + 1)


@pytest.mark.parametrize("factor", [0.6, 0.93, 1.17, 1.4])
def test_blend_operations_match_pillow_arithmetic(factor):
    img = _image(4)
    np.testing.assert_array_equal(moco.adjust_brightness(img, factor), ref_brightness(img, factor))
    np.testing.assert_array_equal(moco.adjust_contrast(img, factor), ref_contrast(img, factor))
    np.testing.assert_array_equal(moco.adjust_saturation(img, factor), ref_saturation(img, factor))


@pytest.mark.parametrize("factor", [-0.1, -0.037, 0.052, 0.1, 0.5])
def test_hue_matches_the_hsv_reference(factor):
    img = _image(5, 24, 24)
    np.testing.assert_array_equal(moco.adjust_hue(img, factor), ref_hue(img, factor))


def test_hue_half_turn_twice_is_nearly_the_identity():
    img = _smooth(6, 24)
    twice = moco.adjust_hue(moco.adjust_hue(img, 0.5), 0.5)  # H + 2 * 127 = H - 2 (mod 256)
    assert np.abs(twice.astype(int) - img).mean() < 3.0
    assert np.abs(moco.adjust_hue(img, 0.5).astype(int) - img).mean() > 30.0


def test_grayscale_is_the_601_luma_on_three_channels():
    img = _image(7)
    gray = moco.grayscale(img)
    assert gray.dtype == np.uint8 and gray.shape == img.shape
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    np.testing.assert_array_equal(gray[..., 0], ref_luma(img))
    luma = img.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(gray[..., 0] - luma).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("sigma", [0.1, 0.7, 1.3, 2.0])
def test_blur_is_pillows_extended_box_blur(sigma):
    img = _image(8, 20, 24)
    np.testing.assert_array_equal(moco.gaussian_blur(img, sigma), ref_pillow_blur(img, sigma))
    const = np.full((20, 24, 3), 173, np.uint8)
    np.testing.assert_array_equal(moco.gaussian_blur(const, sigma), const)


@pytest.mark.parametrize("sigma", [0.8, 1.5, 2.0])
def test_blur_approximates_a_gaussian(sigma):
    img = _smooth(9)
    diff = moco.gaussian_blur(img, sigma) - ref_gaussian(img, sigma)
    assert np.abs(diff).max() <= 4.0 and np.abs(diff).mean() < 1.0  # 3 boxes, 6 roundings
    line = np.zeros((9, 48, 3), np.uint8)  # a bright column: its spread is sigma
    line[:, 24] = 255
    profile = moco.gaussian_blur(line, sigma)[4, :, 0].astype(float)
    offsets = np.arange(48) - 24
    assert abs(profile.sum() - 255) < 10
    spread = math.sqrt((profile * offsets**2).sum() / profile.sum())
    assert abs(spread - sigma) < 0.1 * sigma


# ---- the whole transform ------------------------------------------------------------------------


def test_apply_follows_the_draw_in_torchvisions_order():
    img = _image(10, 32, 32)
    np.testing.assert_array_equal(moco.apply_moco(img, _draw(), 32), normalize(img))
    flipped = moco.apply_moco(img, _draw(flip=True), 32)
    np.testing.assert_array_equal(flipped, normalize(img[:, ::-1]))
    refs = {0: ref_brightness, 1: ref_contrast, 2: ref_saturation, 3: moco.adjust_hue}
    factors = dict(brightness=1.3, contrast=0.7, saturation=1.25, hue=0.08)
    names = ["brightness", "contrast", "saturation", "hue"]
    outputs = []
    for order in [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)]:
        draw = _draw(jitter=True, order=order, grayscale=True, blur=True, sigma=1.1, flip=True)
        draw = dataclasses.replace(draw, **factors)
        want = img
        for k in order:
            want = refs[k](want, factors[names[k]])
        want = ref_pillow_blur(np.repeat(ref_luma(want)[..., None], 3, -1), 1.1)[:, ::-1]
        outputs.append(moco.apply_moco(img, draw, 32))
        np.testing.assert_array_equal(outputs[-1], normalize(want))
    assert not np.array_equal(outputs[0], outputs[1])  # the order matters


def test_apply_crops_then_resizes_bilinear():
    img = np.zeros((40, 48, 3), np.uint8)
    img[10:30, 8:28] = 200  # the crop box exactly: a uniform 200 image after any resize
    out = moco.apply_moco(img, _draw(top=10, left=8, height=20, width=20), 16)
    np.testing.assert_allclose(out, normalize(np.full((16, 16, 3), 200, np.uint8)))
    with pytest.raises(ValueError, match="does not fit"):
        moco.apply_moco(img, _draw(top=30, left=8, height=20, width=20), 16)
    with pytest.raises(ValueError, match="uint8"):
        moco.apply_moco(img.astype(np.float32), _draw(), 16)
