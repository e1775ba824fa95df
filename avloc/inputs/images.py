"""Image inputs: uint8 RGB frames -> normalised float32 model inputs, numpy and keras.ops twins.

Conventions:

* **Images** are ``uint8`` RGB arrays ``(H, W, 3)``, channels last.
* **Model input** is ``float32`` ``(size, size, 3)`` (default 224), normalised per channel:
  ``(x / 255 - MEAN) / STD`` with ImageNet's statistics (``"clip"``: CLIP's, :data:`IMAGE_NORMS`).
* **Test time** (:func:`preprocess_test`): Pillow's bicubic resize straight to ``size x size``
  (aspect not kept).
* **Training** (:func:`preprocess_train` = :func:`train_crop`'s draws + :func:`crop_train`):
  bicubic resize of the shorter side to ``resize`` (246 for 224), a random ``size x size`` crop
  and a random horizontal flip (p = 0.5); all randomness comes from the caller's numpy
  ``Generator``, in a fixed order, so draws can be replayed.
* **The keras.ops twin** (:func:`augment_images_ops`, any backend, inside the training step):
  the same resize as two matrix products with :func:`resize_weights`, the crop and the flip, from
  the stored uint8 frames and the draws; equal to :func:`crop_train` but for rare one-level
  differences of float32 sums (``tests/test_device_inputs.py``).

numpy only at import: the twins import ``keras.ops`` when called, so the Keras-free inference
path never starts Keras.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_NORMS",
    "augment_images_ops",
    "crop_train",
    "normalize",
    "preprocess_test",
    "preprocess_train",
    "resize_uint8",
    "resize_weights",
    "resized_shape",
    "train_crop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)
#: CLIP's statistics (RCGrad's images); ``inputs["image_norm"] = "clip"``
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: ``inputs["image_norm"]`` -> (mean, std) of :func:`normalize`
IMAGE_NORMS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _as_uint8_image(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {arr.dtype}")
    return arr


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    arr = _as_uint8_image(img)
    if arr.shape[0] == height and arr.shape[1] == width:
        return arr
    pil = Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    return np.asarray(pil.resize((width, height), resample=Image.BICUBIC), dtype=np.uint8)


#: Pillow's fixed-point precision for 8-bit resampling (``PRECISION_BITS`` in Resample.c)
_PIL_PRECISION_BITS = 32 - 8 - 2


def _bicubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Pillow's bicubic kernel (support 2, ``a = -0.5``)."""
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=16)
def resize_weights(src: int, dst: int) -> np.ndarray:
    """Pillow's bicubic resampling ``src -> dst`` pixels along one axis as a matrix.

    Returns float32 ``(dst, src)``: row ``i`` holds the weights output pixel ``i`` takes from the
    source pixels, as Pillow computes them for 8-bit images (``precompute_coeffs`` with the
    support widened by the scale when shrinking, then rounded to its 22-bit fixed point), so
    ``floor(weights @ column + 0.5)`` clipped to 0..255 is Pillow's pass along that axis
    (:func:`_resize`: horizontal first, rounded to uint8, then vertical). The identity when
    ``src == dst``. Cached and read-only. Used by the training step's on-device augmentation
    (:func:`augment_images_ops`).
    """
    scale = src / dst
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    weights = np.zeros((dst, src), np.float64)
    for i in range(dst):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), src)
        k = _bicubic((np.arange(lo, hi) - center + 0.5) / filterscale)
        total = k.sum()
        if total != 0.0:
            k = k / total
        one = float(1 << _PIL_PRECISION_BITS)
        fixed = np.where(k < 0, np.trunc(-0.5 + k * one), np.trunc(0.5 + k * one))
        weights[i, lo:hi] = fixed / one
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def normalize(img_uint8: np.ndarray, stats: str = "imagenet") -> np.ndarray:
    """``(x / 255 - MEAN) / STD`` as float32, channels last (any leading dims); ``stats`` names
    the statistics (:data:`IMAGE_NORMS`, default ImageNet's)."""
    x = np.asarray(img_uint8, dtype=np.float32) / np.float32(255.0)
    if stats == "imagenet":
        return ((x - _MEAN) / _STD).astype(np.float32, copy=False)
    mean, std = (np.asarray(v, np.float32) for v in IMAGE_NORMS[stats])
    return ((x - mean) / std).astype(np.float32, copy=False)


def resize_uint8(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a uint8 RGB image to ``(size, size, 3)`` uint8 (aspect not kept)."""
    return _resize(img, int(size), int(size))


def preprocess_test(img: np.ndarray, size: int = 224, stats: str = "imagenet") -> np.ndarray:
    """Test-time input: bicubic resize to ``size x size``, normalise -> float32 (size, size, 3)."""
    return normalize(resize_uint8(img, size), stats)


def train_crop(
    rng: np.random.Generator, height: int, width: int, size: int = 224, resize: int = 246
) -> tuple[int, int, int, int, bool]:
    """The random part of :func:`preprocess_train` for a ``height x width`` image.

    Returns ``(new_h, new_w, top, left, flip)``: the resized shape, the crop's corner and the
    flip. Draws from ``rng`` in a fixed order (crop top, crop left, flip) and nothing else, so a
    caller can replay the draws of images it does not process.
    """
    if resize < size:
        raise ValueError(f"resize ({resize}) must be >= crop size ({size})")
    new_h, new_w = resized_shape(height, width, resize)
    top = int(rng.integers(0, new_h - size + 1))
    left = int(rng.integers(0, new_w - size + 1))
    flip = bool(rng.random() < 0.5)
    return new_h, new_w, top, left, flip


def resized_shape(height: int, width: int, resize: int) -> tuple[int, int]:
    """``(new_h, new_w)`` of a ``height x width`` image whose shorter side becomes ``resize``;
    the longer side is ``int(resize * long / short)`` (torchvision ``Resize(int)``)."""
    if height <= width:
        return resize, max(resize, int(resize * width / height))
    return max(resize, int(resize * height / width)), resize


def preprocess_train(
    img: np.ndarray,
    rng: np.random.Generator,
    size: int = 224,
    resize: int = 246,
) -> np.ndarray:
    """Training input: shorter side -> ``resize`` (bicubic), random crop, random h-flip, normalise.

    The long side becomes ``int(resize * long / short)`` (torchvision ``Resize(int)``). Draws
    from ``rng`` as :func:`train_crop` does, so the result is deterministic for a given
    generator state. Returns float32 ``(size, size, 3)``.
    """
    arr = _as_uint8_image(img)
    return crop_train(arr, *train_crop(rng, *arr.shape[:2], size, resize), size)


def crop_train(
    img: np.ndarray, new_h: int, new_w: int, top: int, left: int, flip: bool, size: int
) -> np.ndarray:
    """The deterministic part of :func:`preprocess_train`, given :func:`train_crop`'s draws:
    resize to ``new_h x new_w`` (bicubic), crop ``size`` at ``(top, left)``, flip, normalise."""
    scaled = _resize(img, new_w, new_h)
    crop = scaled[top : top + size, left : left + size]
    if flip:
        crop = crop[:, ::-1]
    return normalize(crop)


# --------------------------------------------------------------------------------------------
# The keras.ops twin (inside the training step)
# --------------------------------------------------------------------------------------------


def augment_images_ops(images, crops, size: int, resize: int, stats: str = "imagenet"):
    """uint8 ``(B, H, W, 3)`` + crop draws int32 ``(B, 3)`` -> float32 ``(B, size, size, 3)``.

    The stored frames' shorter side goes to ``resize`` (the longer side keeps the aspect:
    :func:`avloc.inputs.images.resized_shape`), the ``size`` crop at ``(top, left)`` is
    kept and flipped where ``crops[:, 2]`` is 1, and the result normalised with ``stats``.
    The twin of :func:`crop_train` (rare one-level differences of the float32 sums).
    """
    from keras import ops

    from avloc.runtime.scalars import constant, number

    height, width = int(images.shape[1]), int(images.shape[2])
    new_h, new_w = resized_shape(height, width, resize)
    crops = ops.cast(crops, "int32")
    steps = ops.arange(size, dtype="int32")[None, :]
    flip = crops[:, 2:3]
    rows = crops[:, 0:1] + steps  # (B, size): output row i <- resized row top + i
    cols = crops[:, 1:2] + steps * (1 - 2 * flip) + flip * (size - 1)
    resample_y = constant(("resize", height, new_h), lambda: resize_weights(height, new_h))
    resample_x = constant(("resize", width, new_w), lambda: resize_weights(width, new_w))
    weights_y = ops.take(resample_y, rows, axis=0)[:, None]  # (B, 1, size, H)
    weights_x = ops.take(resample_x, cols, axis=0)[:, None]  # (B, 1, size, W)
    x = ops.transpose(ops.cast(images, "float32"), (0, 3, 1, 2))  # (B, 3, H, W)
    x = _to_levels(ops.matmul(x, ops.swapaxes(weights_x, -1, -2)))  # Pillow: horizontal first
    x = _to_levels(ops.matmul(weights_y, x))  # (B, 3, size, size)
    x = ops.transpose(x, (0, 2, 3, 1))
    mean, std = (
        constant(("image norm", stats, i), lambda v=v: np.asarray(v, np.float32))
        for i, v in enumerate(IMAGE_NORMS[stats])
    )
    return (x * number(1.0 / 255.0) - mean) / std


def _to_levels(x):
    """Pillow's rounding of a pass to uint8: ``floor(x + 0.5)`` clipped to 0..255 (float32)."""
    from keras import ops

    from avloc.runtime.scalars import clip

    return clip(ops.floor(x + 0.5), 0.0, 255.0)
