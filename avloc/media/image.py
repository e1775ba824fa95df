"""Image loading and video-frame extraction (preprocessing: :mod:`avloc.inputs.images`).

Conventions:

* **Images** are ``uint8`` RGB arrays of shape ``(H, W, 3)``, channels last, already rotated
  upright according to their EXIF orientation.
* **Size**: images of more than :data:`MAX_IMAGE_PIXELS` pixels are refused from their header,
  before anything is decoded (a 19 KB PNG can declare 12500 x 12500 pixels: 600 MB decoded);
  Pillow's own ``DecompressionBombWarning`` is an error here.
* **Errors**: missing or unreadable files raise :class:`avloc.errors.MediaError` with a
  one-line message ``"<path>: <problem>"``. An error about the machine rather than the file
  (:func:`avloc.errors.machine_fault`: EIO, ESTALE, ENOSPC...) propagates as it is.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from avloc.errors import MediaError, machine_fault

__all__ = ["MAX_IMAGE_PIXELS", "extract_video_frame", "load_image"]

#: The most pixels an image may have (width x height), checked from its header before decoding:
#: 40 MP (7300 x 5475), a full-resolution photo of a high-end camera (120 MB decoded as RGB).
MAX_IMAGE_PIXELS = 40_000_000


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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            img = Image.open(name)  # reads the header only
        with img, warnings.catch_warnings():
            check_pixels(name, *img.size)  # our cap first: it is the lower one
            for warning in caught:
                if issubclass(warning.category, Image.DecompressionBombWarning):
                    raise warning.message
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            arr = upright_rgb(img)
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


def check_pixels(name: str, width: int, height: int) -> None:
    """One-line MediaError naming ``name`` when ``width x height`` is over the pixel cap."""
    if int(width) * int(height) > MAX_IMAGE_PIXELS:
        raise MediaError(
            f"{name}: {width} x {height} pixels, more than the {MAX_IMAGE_PIXELS / 1e6:g} million "
            "avloc reads; refused before decoding (scale the image down)"
        )


def upright_rgb(img: Image.Image) -> np.ndarray:
    """uint8 RGB of a loaded image, rotated upright per its EXIF orientation."""
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF: keep the stored orientation
        upright = img
    rgb = _to_rgb(upright if upright is not None else img)
    return np.array(rgb, dtype=np.uint8)


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
