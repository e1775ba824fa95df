"""SSL-TIE's ``moco_v2`` image augmentation: the draws (numpy) and the transform (Pillow + numpy).

SSL-TIE (jinxiang-liu/SSL-TIE, ``datasets/dataloader.py``, ``_init_transform`` with
``args.img_aug == 'moco_v2'``) trains on the MoCo v2 paper's augmentation, in torchvision::

    transforms.RandomResizedCrop(224, scale=(0.3, 1.)),
    transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
    transforms.RandomGrayscale(p=0.2),
    transforms.RandomApply([GaussianBlur([.1, 2.])], p=0.5),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    normalize                      # ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)

applied to the PIL image of the frame (``Image.open(path).convert('RGB')``), where its
``GaussianBlur`` is ``x.filter(ImageFilter.GaussianBlur(radius=random.uniform(.1, 2.)))``: Pillow's
blur with standard deviation sigma, in pixels of the 224 px crop, and no kernel size (Pillow
approximates the Gaussian with three extended box blurs; MoCo v2's own code does the same, the
"23 px kernel" is the SimCLR paper's description). The scale range is 0.3, not MoCo v2's 0.2.

Every step here is the Pillow operation torchvision runs on a PIL image, so given the same draws
the result equals SSL-TIE's to the bit:

1. **crop** (``RandomResizedCrop.get_params``, ratio (3/4, 4/3)): up to 10 attempts, each an
   area fraction uniform in [0.3, 1] of ``H * W`` and an aspect ``w / h`` log-uniform in
   [3/4, 4/3]; ``w = int(round(sqrt(area * aspect)))``, ``h = int(round(sqrt(area / aspect)))``
   (Python's half-to-even ``round``); the first attempt with ``0 < w <= W`` and ``0 < h <= H``
   is kept with its corner uniform over the positions that fit; otherwise the central crop of
   the whole image clamped to the ratio range. The crop is resized to ``size x size`` with
   Pillow's bilinear filter (``Image.resize(..., BILINEAR)``, antialiased when shrinking);
2. **colour jitter** (p 0.8; ``ColorJitter(0.4, 0.4, 0.4, 0.1)``): brightness, contrast and
   saturation factors uniform in [0.6, 1.4], a hue factor uniform in [-0.1, 0.1], applied in a
   random order (a permutation per image). Each is ``ImageEnhance`` on uint8: brightness blends
   with black, contrast with the uniform grey of the image's mean luma
   (``int(mean(L) + 0.5)``), saturation with the image's luma; Pillow's blend is
   ``trunc(a + f (b - a))`` in float32, clamped to [0, 255]. Hue converts to Pillow's uint8
   HSV, adds ``int(hue * 255)`` to H modulo 256, converts back (torchvision's ``adjust_hue``);
3. **grayscale** (p 0.2): Pillow's ``convert("L")``, ITU-R 601-2 luma
   ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` (0.299 R + 0.587 G + 0.114 B, rounded),
   replicated to three channels;
4. **blur** (p 0.5): ``ImageFilter.GaussianBlur(radius=sigma)``, sigma uniform in [0.1, 2.0]
   pixels of the output (not rescaled when ``size != 224``);
5. **flip** (p 0.5): left-right;
6. **normalise**: :func:`avloc.inputs.images.normalize` (``x / 255``, ImageNet statistics).

The randomness is the caller's numpy ``Generator`` (torchvision's comes from torch's and
Python's global generators), drawn by :func:`draw_moco` in a fixed order and a fixed number of
draws whatever the image (see there), so a batch replays from ``default_rng([seed, epoch,
batch])``. A ``p`` is applied when its uniform draw ``u < p`` (torchvision: ``u <= p`` for
``RandomApply``, a difference of probability zero).

Input: uint8 RGB ``(H, W, 3)``. Output: float32 ``(size, size, 3)``, channels last.
numpy and Pillow only; no framework at import or call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from avloc.inputs.images import normalize

__all__ = [
    "BLUR_P",
    "BLUR_SIGMA",
    "CROP_ATTEMPTS",
    "CROP_RATIO",
    "CROP_SCALE",
    "FLIP_P",
    "GRAYSCALE_P",
    "JITTER",
    "JITTER_P",
    "MocoDraw",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_moco",
    "crop_box",
    "draw_moco",
    "gaussian_blur",
    "grayscale",
    "moco_v2",
]

CROP_SCALE = (0.3, 1.0)  #: area fraction of the crop (SSL-TIE: 0.3, MoCo v2: 0.2)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)  #: aspect ``w / h`` of the crop (torchvision's default)
CROP_ATTEMPTS = 10  #: torchvision's rejection-sampling attempts before the central crop
JITTER = (0.4, 0.4, 0.4, 0.1)  #: ColorJitter(brightness, contrast, saturation, hue)
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)  #: Pillow GaussianBlur's radius (standard deviation), pixels
FLIP_P = 0.5
#: the jitter operations in ``MocoDraw.order`` (torchvision's ``fn_idx``)
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


@dataclass(frozen=True)
class MocoDraw:
    """One image's moco_v2 parameters (:func:`draw_moco`).

    ``top, left, height, width``: the crop box in the source image, pixels; ``jitter``: whether
    colour jitter applies; ``order``: the jitter operations' order (0 brightness, 1 contrast,
    2 saturation, 3 hue); ``brightness, contrast, saturation, hue``: the factors (drawn even
    when ``jitter`` is False); ``grayscale``, ``blur``, ``flip``: whether each applies;
    ``sigma``: the blur's standard deviation in output pixels (drawn even when ``blur`` is
    False).
    """

    top: int
    left: int
    height: int
    width: int
    jitter: bool
    order: tuple[int, int, int, int]
    brightness: float
    contrast: float
    saturation: float
    hue: float
    grayscale: bool
    blur: bool
    sigma: float
    flip: bool

    def __post_init__(self):
        order = tuple(int(k) for k in self.order)
        if sorted(order) != [0, 1, 2, 3]:
            raise ValueError(f"order must be a permutation of 0..3, got {self.order}")
        object.__setattr__(self, "order", order)
        for name in ("top", "left", "height", "width"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("brightness", "contrast", "saturation", "hue", "sigma"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("jitter", "grayscale", "blur", "flip"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.height < 1 or self.width < 1 or self.top < 0 or self.left < 0:
            raise ValueError(f"bad crop box {self.top, self.left, self.height, self.width}")


def crop_box(
    uniforms: np.ndarray,
    corner: np.ndarray,
    height: int,
    width: int,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
) -> tuple[int, int, int, int]:
    """``RandomResizedCrop.get_params`` from uniforms: ``(top, left, h, w)`` in pixels.

    ``uniforms`` ``(attempts, 2)`` in [0, 1): per attempt the area fraction's and the log
    aspect's uniform; ``corner`` ``(2,)``: the uniforms of the kept attempt's top and left
    (``top = floor(u * (height - h + 1))``). With no attempt fitting, the central crop.
    """
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for u_area, u_aspect in np.asarray(uniforms, np.float64):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * float(u_area))
        aspect = math.exp(log_lo + (log_hi - log_lo) * float(u_aspect))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(float(corner[0]) * (height - h + 1)), height - h)
            left = min(int(float(corner[1]) * (width - w + 1)), width - w)
            return top, left, h, w
    in_ratio = float(width) / float(height)  # fallback: central crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def draw_moco(rng: np.random.Generator, height: int, width: int, size: int = 224) -> MocoDraw:
    """moco_v2's parameters for a ``height x width`` image, from ``rng`` in this order and
    nothing else, the same draws whatever the image (31 uniforms and one permutation):

    1. crop: ``rng.random((10, 2))`` (each attempt's area and log-aspect uniforms), then
       ``rng.random(2)`` (the kept attempt's top and left uniforms), :func:`crop_box`;
    2. jitter: ``rng.random() < 0.8``;
    3. order: ``rng.permutation(4)``;
    4. factors: ``rng.random(4)`` -> brightness, contrast, saturation in ``[0.6, 1.4)``,
       hue in ``[-0.1, 0.1)``;
    5. grayscale: ``rng.random() < 0.2``;
    6. blur: ``rng.random() < 0.5``;
    7. sigma: ``0.1 + 1.9 * rng.random()``;
    8. flip: ``rng.random() < 0.5``.

    ``size`` (the output side) does not change the draws; it is checked to be positive.
    """
    height, width, size = int(height), int(width), int(size)
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f"need positive sizes, got {height} x {width} -> {size}")
    attempts = rng.random((CROP_ATTEMPTS, 2))
    corner = rng.random(2)
    top, left, h, w = crop_box(attempts, corner, height, width)
    jitter = rng.random() < JITTER_P
    order = tuple(int(k) for k in rng.permutation(4))
    u = rng.random(4)
    b, c, s = (1.0 - m + 2.0 * m * float(v) for m, v in zip(JITTER[:3], u[:3], strict=True))
    hue = -JITTER[3] + 2.0 * JITTER[3] * float(u[3])
    gray = rng.random() < GRAYSCALE_P
    blur = rng.random() < BLUR_P
    sigma = BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * rng.random()
    flip = rng.random() < FLIP_P
    return MocoDraw(top, left, h, w, jitter, order, b, c, s, hue, gray, blur, sigma, flip)


# --------------------------------------------------------------------------------------------
# The operations (uint8 RGB (H, W, 3) -> uint8 RGB (H, W, 3)), as torchvision runs them on PIL
# --------------------------------------------------------------------------------------------


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8), mode="RGB")


def _rgb(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness(img).enhance(factor)``: blend with black."""
    return np.asarray(ImageEnhance.Brightness(_pil(_rgb(img))).enhance(float(factor)))


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast(img).enhance(factor)``: blend with the mean luma's grey."""
    return np.asarray(ImageEnhance.Contrast(_pil(_rgb(img))).enhance(float(factor)))


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color(img).enhance(factor)``: blend with the image's luma."""
    return np.asarray(ImageEnhance.Color(_pil(_rgb(img))).enhance(float(factor)))


def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's ``adjust_hue`` on PIL: Pillow's uint8 HSV, H + ``int(factor * 255)``
    modulo 256 (numpy 1.x's ``np.uint8`` of the product wraps the truncated value), back to
    RGB. ``factor`` in [-0.5, 0.5]."""
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"hue factor must be in [-0.5, 0.5], got {factor}")
    h, s, v = _pil(_rgb(img)).convert("HSV").split()
    shift = int(float(factor) * 255.0) % 256
    hue = ((np.asarray(h, np.int32) + shift) % 256).astype(np.uint8)
    merged = Image.merge("HSV", (Image.fromarray(hue, mode="L"), s, v))
    return np.asarray(merged.convert("RGB"))


def grayscale(img: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` (ITU-R 601-2 luma, fixed point) on all three channels."""
    luma = np.asarray(_pil(_rgb(img)).convert("L"))
    return np.repeat(luma[:, :, None], 3, axis=2)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """``ImageFilter.GaussianBlur(radius=sigma)``: three extended box blurs per axis whose
    variance is ``sigma**2``, edges replicated, uint8 after each pass."""
    return np.asarray(_pil(_rgb(img)).filter(ImageFilter.GaussianBlur(radius=float(sigma))))


_JITTER_OPS = {
    BRIGHTNESS: (adjust_brightness, "brightness"),
    CONTRAST: (adjust_contrast, "contrast"),
    SATURATION: (adjust_saturation, "saturation"),
    HUE: (adjust_hue, "hue"),
}


def apply_moco(frame_uint8: np.ndarray, draw: MocoDraw, size: int = 224) -> np.ndarray:
    """The deterministic part of :func:`moco_v2`, given :func:`draw_moco`'s draw: crop, bilinear
    resize to ``size``, jitter, grayscale, blur, flip, normalise (module docstring).

    ``frame_uint8``: uint8 RGB ``(H, W, 3)``, the shape the draw was made for (the crop box must
    lie inside it). Returns float32 ``(size, size, 3)``.
    """
    arr = _rgb(frame_uint8)
    bottom, right = draw.top + draw.height, draw.left + draw.width
    if bottom > arr.shape[0] or right > arr.shape[1]:
        raise ValueError(f"the draw's crop box does not fit an image of shape {arr.shape}")
    size = int(size)
    crop = _pil(arr[draw.top : bottom, draw.left : right])
    img = np.asarray(crop.resize((size, size), resample=Image.BILINEAR))
    if draw.jitter:
        for k in draw.order:
            op, name = _JITTER_OPS[k]
            img = op(img, getattr(draw, name))
    if draw.grayscale:
        img = grayscale(img)
    if draw.blur:
        img = gaussian_blur(img, draw.sigma)
    if draw.flip:
        img = img[:, ::-1]
    return normalize(img)


def moco_v2(rng: np.random.Generator, frame: np.ndarray, size: int = 224) -> np.ndarray:
    """SSL-TIE's moco_v2 training input: :func:`draw_moco` then :func:`apply_moco`.

    ``frame`` uint8 RGB ``(H, W, 3)``; returns float32 ``(size, size, 3)``.
    """
    arr = _rgb(frame)
    return apply_moco(arr, draw_moco(rng, arr.shape[0], arr.shape[1], size), size)
