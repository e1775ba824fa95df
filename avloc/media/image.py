"""Image loading, video-frame extraction and preprocessing (docs/method.md).

Conventions:

* **Images** are ``uint8`` RGB arrays of shape ``(H, W, 3)``, channels last, already rotated
  upright according to their EXIF orientation.
* **Model input** is ``float32`` ``(size, size, 3)`` (default 224), normalised per channel with
  the ImageNet statistics: ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD``.
* Test-time preprocessing: bicubic resize straight to ``size x size`` (aspect not kept).
  Training: bicubic resize of the shorter side to ``resize`` (246), random ``size x size`` crop,
  random horizontal flip (p = 0.5); all randomness comes from the given numpy ``Generator``.
* **Errors**: missing or unreadable files raise :class:`avloc.errors.MediaError` with a
  one-line message ``"<path>: <problem>"``. An error about the machine rather than the file
  (:func:`avloc.errors.machine_fault`: EIO, ESTALE, ENOSPC...) propagates as it is.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from PIL import Image, ImageOps

from avloc.errors import MediaError, machine_fault

__all__ = [
    "IMAGENET_MEAN",
    "crop_train",
    "IMAGENET_STD",
    "extract_video_frame",
    "load_image",
    "normalize",
    "preprocess_test",
    "preprocess_train",
    "resize_uint8",
    "resize_weights",
    "resized_shape",
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


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_path(path: str | os.PathLike, kind: str) -> str:
    name = os.fspath(path)
    if not os.path.exists(name):
        raise MediaError(f"{name}: no such file")
    if os.path.isdir(name):
        raise MediaError(f"{name}: is a directory, not {kind}")
    if not os.access(name, os.R_OK):
        raise MediaError(f"{name}: cannot be read (permission denied)")
    if os.path.getsize(name) == 0:
        raise MediaError(f"{name}: is empty (0 bytes)")
    return name


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        # PIL's I/I;16 -> L conversion clips instead of scaling: do it ourselves. 16-bit
        # grayscale (the common case for I and I;16) maps 65535 -> 255; float maps [0, 1].
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            arr = arr * 255.0 if arr.size and np.nanmax(arr) <= 1.0 else arr
        else:
            arr = arr / 257.0
        gray = np.clip(np.nan_to_num(np.rint(arr)), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), mode="RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX, ...


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load an image file as ``uint8`` RGB ``(H, W, 3)``, upright per its EXIF orientation.

    Any PIL mode is converted (alpha composited on white, grayscale/palette/CMYK/16-bit to RGB);
    for multi-frame files the first frame is used. Raises :class:`MediaError` naming the file.
    """
    name = _check_path(path, "an image")
    try:
        with Image.open(name) as img:
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception:  # malformed EXIF: keep the stored orientation
                upright = img
            rgb = _to_rgb(upright if upright is not None else img)
            arr = np.array(rgb, dtype=np.uint8)
    except MediaError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
        if machine_fault(exc, name):
            raise
        reason = _one_line(exc).rstrip(".") or type(exc).__name__
        raise MediaError(f"{name}: not a readable image ({reason})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MediaError(f"{name}: not a readable image (unexpected shape {arr.shape})")
    return arr


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
    (:mod:`avloc.models.device_inputs`).
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
# Video frames
# --------------------------------------------------------------------------------------------


def _frame_rgb(frame) -> np.ndarray:
    """RGB uint8 array of a decoded PyAV frame, rotated upright per its display matrix."""
    arr = frame.to_ndarray(format="rgb24")
    try:
        rotation = int(frame.rotation or 0)
    except Exception:
        rotation = 0
    k = int(round(rotation / 90.0)) % 4
    if k:
        arr = np.rot90(arr, k=k)  # rotation is counterclockwise degrees, like rot90's k > 0
    return np.ascontiguousarray(arr)


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def extract_video_frame(
    path: str | os.PathLike, time: float | None = None
) -> tuple[np.ndarray, float]:
    """Decode the video frame whose presentation time is closest to ``time`` seconds.

    ``time`` is measured from the start of the video stream (its first timestamp); ``None``
    means the middle of the video. Times past the end give the last frame. Returns the frame as
    ``uint8`` RGB ``(H, W, 3)`` (rotated per any display matrix) and the timestamp actually used
    (seconds from the start of the stream). Raises :class:`MediaError` naming the file when it is
    missing, has no video stream or cannot be decoded.
    """
    import av

    name = _check_path(path, "a video")
    if time is not None and (not np.isfinite(time) or time < 0):
        raise ValueError(f"frame time must be a finite number >= 0, got {time}")
    try:
        container = av.open(name)
    except Exception as exc:
        if machine_fault(exc, name):
            raise
        reason = getattr(exc, "strerror", None) or _one_line(exc)
        raise MediaError(f"{name}: not a readable video ({_one_line(reason)})") from None
    try:
        with container:
            if not container.streams.video:
                raise MediaError(f"{name}: has no video stream")
            stream = container.streams.video[0]
            tb = stream.time_base
            start = _seconds(stream.start_time, tb)
            if time is None:
                duration = _seconds(stream.duration, tb)
                if not duration and container.duration:
                    duration = container.duration / av.time_base
                if not duration:
                    duration = _decoded_duration(container, stream)
                    container.seek(0)
                time = (duration or 0.0) / 2.0
            result = _closest_frame(container, stream, float(time), start)
    except MediaError:
        raise
    except Exception as exc:
        if machine_fault(exc, name):
            raise
        reason = getattr(exc, "strerror", None) or _one_line(exc)
        raise MediaError(
            f"{name}: not a readable video ({_one_line(reason).rstrip('.')})"
        ) from None
    if result is None:
        raise MediaError(f"{name}: not a readable video (no frame could be decoded)")
    return result


def _frame_times(container, stream):
    """Yield (time in seconds or None, frame) for decodable frames; damaged packets skipped."""
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            continue
        for frame in frames:
            t = frame.time
            yield (float(t) if t is not None else None), frame


def _decoded_duration(container, stream) -> float:
    """Duration by decoding everything (only for files whose header gives none)."""
    first = last = None
    for t, _ in _frame_times(container, stream):
        if t is None:
            continue
        first = t if first is None else first
        last = t
    return 0.0 if first is None else last - first


def _closest_frame(container, stream, time: float, start: float | None):
    """Seek near ``time`` and decode forward; returns (rgb, seconds from start) or None."""
    for attempt in ("seek", "from_start"):
        if attempt == "seek":
            # Seeking needs the stream's first timestamp to know where "time" is.
            if start is None or stream.time_base is None or time <= 0:
                continue
            target = start + time
            try:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            except Exception:
                continue
        else:
            container.seek(0)
        best = None  # (distance, time, frame)
        origin = start
        index = 0
        overshoot = False
        for t, frame in _frame_times(container, stream):
            if t is None:  # no timestamps: fall back to the nominal frame rate
                rate = float(stream.average_rate or stream.guessed_rate or 25)
                t = (origin or 0.0) + index / rate
            index += 1
            if origin is None:
                origin = t
            rel = t - origin
            if best is None and attempt == "seek" and rel > time:
                overshoot = True  # seek landed after the target: decode from the start
                break
            dist = abs(rel - time)
            if best is None or dist < best[0]:
                best = (dist, rel, frame)
            elif rel > time:
                break  # frames come out in presentation order: distances only grow now
        if overshoot:
            continue
        if best is not None:
            return _frame_rgb(best[2]), float(best[1])
    return None
