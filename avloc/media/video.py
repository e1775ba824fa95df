"""Video in and out with PyAV: frames at chosen times, and an MP4 writer with an audio track.

- :func:`probe`: duration (s), frame size and whether there is an audio stream.
- :func:`frames_at`: streams the frames shown at increasing times ``t`` (seconds from the video
  stream's start): for each ``t`` the last decoded frame whose timestamp is ``<= t`` (the first
  frame before it), as uint8 RGB ``(H, W, 3)`` rotated upright. Decoding is sequential and
  holds one frame, so memory does not grow with the video's length.
- :class:`VideoWriter`: H.264 (``libx264``, ``yuv420p``; MPEG-4 Part 2 where FFmpeg lacks it)
  at a constant frame rate, plus an optional AAC mono track written progressively, so both
  streams stay interleaved. Frames must share one size; odd sizes are cropped by one pixel to
  the even sizes H.264 needs. The file is written under a temporary name and renamed on
  :meth:`VideoWriter.commit`; :meth:`VideoWriter.abort` (or an exception in a ``with`` block)
  removes it, so no half-written video is ever left at the output path.

Errors name the file in one line (:class:`~avloc.errors.MediaError`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avloc.errors import MediaError
from avloc.media.image import _frame_rgb, _one_line
from avloc.utils.files import check_replaceable, make_parent


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds of the video stream
    width: int  # pixels of an upright frame
    height: int
    has_audio: bool


def _open(path: str | os.PathLike):
    import av

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise MediaError(f"{name}: no such video file")
    try:
        return av.open(name)
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or _one_line(exc)
        raise MediaError(f"{name}: not a readable video ({_one_line(reason)})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Duration, upright frame size and audio presence of a video (decodes the first frame)."""
    import av

    name = os.fspath(path)
    container = _open(name)
    with container:
        if not container.streams.video:
            raise MediaError(f"{name}: has no video stream")
        stream = container.streams.video[0]
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        try:
            first = next(container.decode(stream))
        except Exception as exc:
            raise MediaError(f"{name}: not a readable video ({_one_line(exc)})") from None
        rgb = _frame_rgb(first)
        return VideoInfo(
            duration=float(duration or 0.0),
            width=int(rgb.shape[1]),
            height=int(rgb.shape[0]),
            has_audio=bool(container.streams.audio),
        )


def frames_at(
    path: str | os.PathLike, times: Iterable[float]
) -> Iterator[tuple[float, np.ndarray]]:
    """``(t, frame)`` for each of the increasing ``times``: the frame on screen at ``t``."""
    name = os.fspath(path)
    container = _open(name)
    with container:
        if not container.streams.video:
            raise MediaError(f"{name}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.start_time if stream.start_time is not None else 0
        decoded = container.decode(stream)
        current, upcoming = None, None

        def next_frame():
            try:
                frame = next(decoded)
            except StopIteration:
                return None
            except Exception as exc:
                raise MediaError(f"{name}: not a readable video ({_one_line(exc)})") from None
            when = float((frame.pts - base) * stream.time_base) if frame.pts is not None else 0.0
            return when, frame

        upcoming = next_frame()
        for t in times:
            while upcoming is not None and (current is None or upcoming[0] <= t + 1e-6):
                current, upcoming = upcoming, next_frame()
            if current is None:
                raise MediaError(f"{name}: not a readable video (no frame could be decoded)")
            yield t, _frame_rgb(current[1])


class VideoWriter:
    """Frames (+ mono audio) -> an MP4 file, atomically; use as a context manager."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int],
        audio_rate: int | None = None,
    ):
        import av

        self.path = check_replaceable(path)
        make_parent(self.path)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}{self.path.suffix}")
        self.width, self.height = (int(size[0]) // 2) * 2, (int(size[1]) // 2) * 2
        if self.width < 2 or self.height < 2:
            raise MediaError(f"{self.path}: frames of {size[0]}x{size[1]} are too small to encode")
        try:
            self.container = av.open(os.fspath(self.tmp), mode="w", format="mp4")
        except Exception as exc:
            reason = getattr(exc, "strerror", None) or _one_line(exc)
            raise MediaError(f"{self.path}: cannot write ({_one_line(reason)})") from None
        rate = Fraction(fps).limit_denominator(1000)
        try:
            self.video = self.container.add_stream("libx264", rate=rate)
            self.video.options = {"crf": "23", "preset": "veryfast"}
        except Exception:  # an FFmpeg build without x264
            self.video = self.container.add_stream("mpeg4", rate=rate)
        self.video.width, self.video.height = self.width, self.height
        self.video.pix_fmt = "yuv420p"
        self.audio = None
        self.audio_rate = audio_rate
        self.audio_samples = 0
        if audio_rate:
            self.audio = self.container.add_stream("aac", rate=int(audio_rate))
            self.audio.layout = "mono"
        self.frames = 0
        self.closed = False

    def write_frame(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24"
        )
        frame.pts = self.frames
        self.frames += 1
        self._mux(self.video.encode(frame))

    def write_audio(self, wave: np.ndarray) -> None:
        """Append mono float32 samples in [-1, 1] at ``audio_rate`` Hz to the audio track."""
        import av

        if self.audio is None or len(wave) == 0:
            return
        samples = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)[None, :]
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout="mono"
        )
        frame.sample_rate = int(self.audio_rate)
        frame.pts = self.audio_samples
        self.audio_samples += samples.shape[1]
        self._mux(self.audio.encode(frame))

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except OSError as exc:
            raise MediaError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def commit(self) -> Path:
        """Flush both encoders, close the file and move it to ``path``."""
        self._mux(self.video.encode(None))
        if self.audio is not None:
            self._mux(self.audio.encode(None))
        self.container.close()
        self.closed = True
        check_replaceable(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self.closed:
            try:
                self.container.close()
            except Exception:
                pass
            self.closed = True
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None or not self.closed:
            self.abort()
