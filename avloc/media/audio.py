"""Audio decoding and clipping (spectrograms, silence and noise: :mod:`avloc.inputs`).

Conventions (everything is numpy, nothing here depends on Keras):

* **Waveform**: 1-D ``float32`` array of shape ``(num_samples,)``, mono, amplitude in ``[-1, 1]``
  (full-scale PCM maps to +-1), sampled at ``sample_rate`` Hz (default 16000).
* **Clip**: a waveform of exactly ``round(seconds * sample_rate)`` samples (default 3.0 s ->
  48000 samples), cut around a centre time given in **seconds**; short audio is tiled.
* **Errors**: unreadable, missing or empty media files raise
  :class:`avloc.errors.MediaError` with a one-line message ``"<path>: <problem>"``; invalid
  arguments (empty arrays, bad lengths) raise ``ValueError``. An error about the machine rather
  than the file (:func:`avloc.errors.machine_fault`: EIO, ESTALE, ENOSPC...) propagates
  as it is.

Truncated files (a WAV or AIFF whose header declares more audio than the file holds: an
interrupted download or copy) are used as they are, with one ``warning:`` line on stderr naming
the file and both lengths (:func:`report_truncation`). A warning, not a refusal: what is present
is still real audio that the user may mean, and streaming writers put sizes in headers that
they cannot rewind to (``0xFFFFFFFF``, not reported), so a refusal would turn away files that
play; the line says that the result belongs to the part present (tiled when shorter than the
clip, see :func:`clip_centered`).

Bounded work: a clip of a long file (:func:`load_clip`) and a span of one
(:func:`load_audio_span`) are decoded only around what is asked, in every container: libsndfile
reads the frames of the window, PyAV seeks to it and stops decoding once it is covered.

Decoding: wav/flac/ogg/mp3 (and anything else libsndfile understands) are read with
``soundfile``; video containers (mp4, mkv, webm, ...) and whatever soundfile cannot read are
decoded with PyAV (FFmpeg). Channels are averaged to mono and the result is resampled with
``librosa.resample(res_type="soxr_hq")`` when the file's rate differs from ``sample_rate``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import numpy as np

from avloc.errors import MediaError, machine_fault
from avloc.media.formats import CONTAINER_EXTS

__all__ = [
    "clip_centered",
    "load_audio",
    "load_audio_segment",
    "load_audio_span",
    "load_clip",
    "resample",
    "save_wav",
]


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _one_line(text: object, limit: int = 160) -> str:
    """Collapse an exception message to one short line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_path(path: str | os.PathLike) -> str:
    """Return the path as a string; raise MediaError for missing files, directories, 0 bytes."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise MediaError(f"{name}: no such file")
    if os.path.isdir(name):
        raise MediaError(f"{name}: is a directory, not an audio file")
    if not os.access(name, os.R_OK):
        raise MediaError(f"{name}: cannot be read (permission denied)")
    if os.path.getsize(name) == 0:
        raise MediaError(f"{name}: contains no audio samples (the file is 0 bytes)")
    return name


#: libsndfile's log line for a data chunk whose header size is more than the file holds.
SHORT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Data sizes that streaming writers leave in a header they cannot rewind to: not truncation.
STREAMED_SIZES = (0, 0xFFFFFFFF)


def truncation(name: str, info) -> str | None:
    """One line saying that ``name`` holds less audio than its header declares, or None;
    ``info`` is its ``soundfile.info``."""
    match = SHORT_CHUNK.search(info.extra_info or "")
    if match is None:
        return None
    declared, present = int(match[1]), int(match[2])
    if declared in STREAMED_SIZES or not 0 < present < declared:
        return None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    return (
        f"{name}: truncated: its header declares {seconds * declared / present:.3f} s of audio, "
        f"{seconds:.4g} s are present; the result is for the part present"
    )


def report_truncation(name: str, info) -> None:
    """The ``warning:`` line of :func:`truncation` on stderr, if ``name`` is truncated."""
    why = truncation(name, info)
    if why is not None:
        print(f"warning: {why}", file=sys.stderr, flush=True)


def _read_soundfile(name: str) -> tuple[np.ndarray, int]:
    """Decode with libsndfile; returns (samples, channels) float32 and the native rate."""
    import soundfile as sf

    data, rate = sf.read(name, dtype="float32", always_2d=True)
    report_truncation(name, sf.info(name))
    return data, int(rate)


def _read_pyav(name: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV; returns (samples, channels) float32 and rate.

    Raises ``LookupError`` when the container has no audio stream; FFmpeg errors propagate.
    Packets that fail to decode are skipped (common in slightly damaged downloads) as long as
    some audio decodes.
    """
    import av

    with av.open(name) as container:
        if not container.streams.audio:
            raise LookupError("no audio stream")
        stream = container.streams.audio[0]
        # Convert to planar float keeping the channel layout; channels are averaged by us
        # (libswresample's downmix matrix is not a plain average).
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        rate = stream.rate or stream.codec_context.sample_rate
        failures = 0
        last_error: Exception | None = None

        def _collect(frames) -> None:
            for out in frames:
                arr = out.to_ndarray()  # (channels, samples) for planar formats
                if arr.ndim == 1:
                    arr = arr[None, :]
                chunks.append(arr.astype(np.float32, copy=False).mean(axis=0))

        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:  # a damaged packet: skip it
                failures += 1
                last_error = exc
                continue
            for frame in frames:
                rate = frame.sample_rate or rate
                _collect(resampler.resample(frame))
        _collect(resampler.resample(None))
        expected = None
        if stream.duration and stream.time_base and rate:
            expected = int(round(float(stream.duration * stream.time_base) * rate))
    if not chunks and failures:
        raise RuntimeError(f"decoding failed ({_one_line(last_error)})")
    wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not rate:
        raise RuntimeError("unknown sample rate")
    # AAC/Opus decoders return the encoder's padding of the last frame; the container's
    # duration says where the real audio ends. Trim only small excesses (at most two codec
    # frames), since some demuxers only estimate the duration (e.g. from the bitrate).
    if expected and 0 < wave.shape[0] - expected <= 2048:
        wave = wave[:expected]
    return wave[:, None], int(rate)


def _decode(name: str) -> tuple[np.ndarray, int]:
    """Decode any supported file to ((samples, channels) float32, native rate)."""
    import av

    ext = Path(name).suffix.lower()
    sf_error: Exception | None = None
    if ext not in CONTAINER_EXTS:
        try:
            return _read_soundfile(name)
        except Exception as exc:  # libsndfile cannot read it: try FFmpeg
            if machine_fault(exc, name):
                raise
            sf_error = exc
    try:
        return _read_pyav(name)
    except LookupError:
        if sf_error is not None:
            # An audio extension that FFmpeg opened as something else (e.g. text as "tty").
            reason = getattr(sf_error, "error_string", None) or _one_line(sf_error)
            raise MediaError(f"{name}: not a readable audio file ({_one_line(reason)})") from None
        raise MediaError(f"{name}: has no audio track") from None
    except (av.error.FFmpegError, RuntimeError, ValueError, OSError) as exc:
        if machine_fault(exc, name):
            raise
        if sf_error is not None:
            reason = getattr(sf_error, "error_string", None) or _one_line(sf_error)
        else:
            reason = getattr(exc, "strerror", None) or _one_line(exc)
        reason = _one_line(reason).rstrip(".")
        raise MediaError(f"{name}: not a readable audio file ({reason})") from None


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling of a mono float32 waveform (soxr "HQ", librosa's ``soxr_hq``).

    Calls soxr directly: the same samples as ``librosa.resample(..., res_type="soxr_hq")``
    without importing librosa (seconds of start-up in every worker process).
    """
    import soxr

    return np.asarray(soxr.resample(wave, int(rate), int(target), quality="HQ"), np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode an audio (or video) file to a mono float32 waveform in [-1, 1] at ``sample_rate``.

    Returns shape ``(num_samples,)``. Channels are averaged; non-finite samples become 0.
    Raises :class:`MediaError` (one line, naming the file) if the file is missing, unreadable,
    has no audio track or contains no samples.
    """
    name = _check_path(path)
    data, rate = _decode(name)
    if data.size == 0:
        raise MediaError(f"{name}: contains no audio samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    wave = np.nan_to_num(wave.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
        if wave.size == 0:
            raise MediaError(f"{name}: contains no audio samples (too short to resample)")
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)


#: Files longer than this (any container) are decoded only around the clip, so an hour-long
#: recording costs a few seconds of audio, not gigabytes.
LONG_AUDIO_SECONDS = 60.0
#: Audio decoded on each side of such a window, seconds, so that resampling sees no edge.
WINDOW_MARGIN_SECONDS = 0.5


def _soundfile_info(name: str):
    """libsndfile's header of ``name`` (frames, rate), or None when it is not libsndfile's."""
    if Path(name).suffix.lower() in CONTAINER_EXTS:
        return None
    import soundfile as sf

    try:
        return sf.info(name)
    except Exception:  # not libsndfile's: PyAV or the whole-file path decides what it is
        return None


def _clip_start(duration: float, seconds: float, center: float | None) -> float:
    """The clip's start, s, as :func:`clip_centered` places it (centre, or the middle; inside)."""
    start_s = duration / 2 - seconds / 2 if center is None else float(center) - seconds / 2
    return min(max(start_s, 0.0), duration - seconds)


def _clip_from_window(name: str, sample_rate: int, seconds: float, center: float | None):
    """(clip, duration s) decoded from a window of a long file, else None (short files, and
    files whose length the header does not give, are decoded whole)."""
    if seconds <= 0:
        return None
    info = _soundfile_info(name)
    if info is None:
        return _clip_from_pyav_window(name, sample_rate, seconds, center)
    import soundfile as sf

    rate, frames = int(info.samplerate), int(info.frames)
    duration = frames / rate if rate else 0.0
    if duration <= max(LONG_AUDIO_SECONDS, seconds + 2 * WINDOW_MARGIN_SECONDS):
        return None
    start_s = _clip_start(duration, seconds, center)
    first = max(int((start_s - WINDOW_MARGIN_SECONDS) * rate), 0)
    last = min(int(np.ceil((start_s + seconds + WINDOW_MARGIN_SECONDS) * rate)), frames)
    try:
        data, _ = sf.read(name, start=first, stop=last, dtype="float32", always_2d=True)
    except Exception as exc:  # damaged past its header: the whole-file path says what it is
        if machine_fault(exc, name):
            raise
        return None
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    wave = np.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0)
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    length = int(round(seconds * sample_rate))
    offset = int(round((start_s - first / rate) * sample_rate))
    offset = min(max(offset, 0), max(wave.shape[0] - length, 0))
    clip = np.clip(wave[offset : offset + length], -1.0, 1.0).astype(np.float32)
    if clip.shape[0] != length:
        return None
    report_truncation(name, info)
    return clip, duration


def _pyav_duration(name: str) -> float | None:
    """The audio stream's length, s, from the container's header; None when it gives none."""
    import av

    try:
        with av.open(name) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            if container.duration:
                return container.duration / av.time_base
    except Exception as exc:  # the whole-file path says what is wrong with it
        if machine_fault(exc, name):
            raise
    return None


def _read_pyav_span(
    name: str, first: float, last: float, target: int
) -> tuple[np.ndarray, float, int] | None:
    """Mono float32 samples of the audio stream from about ``first`` to at least ``last`` s
    (from the stream's start), their start time (s) and native rate: the container is sought
    to ``first`` and decoding stops once ``last`` is covered. None when that fails (a seek
    that lands after ``first``, a damaged file): the caller decodes the whole file instead."""
    import av

    try:
        with av.open(name) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            base = stream.start_time or 0
            tb = stream.time_base
            if first > 0:
                container.seek(base + int(first / tb), stream=stream, backward=True)
            resampler = av.AudioResampler(format="fltp")
            chunks: list[np.ndarray] = []
            start = None
            rate = stream.rate or stream.codec_context.sample_rate
            covered = False
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue  # a damaged packet: skip it
                for frame in frames:
                    if frame.pts is None:
                        return None
                    when = float((frame.pts - base) * tb)
                    rate = frame.sample_rate or rate
                    if start is None:
                        start = when
                    for out in resampler.resample(frame):
                        arr = out.to_ndarray()
                        arr = arr[None, :] if arr.ndim == 1 else arr
                        chunks.append(arr.astype(np.float32, copy=False).mean(axis=0))
                    if when + frame.samples / rate >= last:
                        covered = True
                        break
                if covered:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().astype(np.float32, copy=False).mean(axis=0))
    except Exception as exc:
        if machine_fault(exc, name):
            raise
        return None
    if start is None or not chunks or not rate or start > max(first, 0.0) + 1e-3:
        return None
    wave, rate = np.concatenate(chunks), int(rate)
    # Start on a sample that falls on the grid of ``target`` Hz too, so that resampling the span
    # gives the samples of the whole file's resampling, not ones shifted by a fraction.
    index = int(round(start * rate))
    skip = -index % (rate // math.gcd(rate, int(target)))
    return wave[skip:], (index + skip) / rate, rate


def _clip_from_pyav_window(name: str, sample_rate: int, seconds: float, center: float | None):
    """:func:`_clip_from_window` for what PyAV reads (m4a, mp4, mkv, webm...)."""
    duration = _pyav_duration(name)
    if not duration or duration <= max(LONG_AUDIO_SECONDS, seconds + 2 * WINDOW_MARGIN_SECONDS):
        return None
    start_s = _clip_start(duration, seconds, center)
    span = _read_pyav_span(
        name,
        max(start_s - WINDOW_MARGIN_SECONDS, 0.0),
        start_s + seconds + WINDOW_MARGIN_SECONDS,
        sample_rate,
    )
    if span is None:
        return None
    wave, first_s, rate = span
    wave = np.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0)
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    length = int(round(seconds * sample_rate))
    offset = max(int(round((start_s - first_s) * sample_rate)), 0)
    clip = np.clip(wave[offset : offset + length], -1.0, 1.0).astype(np.float32)
    if clip.shape[0] != length:
        return None
    return clip, duration


def load_audio_span(
    path: str | os.PathLike, sample_rate: int, start: float, end: float
) -> tuple[np.ndarray, float]:
    """``(wave, first)``: the audio of ``path`` from ``first`` s (``start`` less a margin of
    :data:`WINDOW_MARGIN_SECONDS`, at least 0) to at least ``end`` s (or the track's end), mono
    float32 at ``sample_rate``. Only that span is decoded where the format allows it (a video's
    audio for its first minutes costs those minutes, not the whole track); files whose span
    cannot be read alone are decoded whole (``first`` is then 0).
    """
    name = _check_path(path)
    first = max(float(start) - WINDOW_MARGIN_SECONDS, 0.0)
    last = float(end) + WINDOW_MARGIN_SECONDS
    info = _soundfile_info(name)
    wave = None
    if info is not None:
        import soundfile as sf

        rate = int(info.samplerate)
        step = rate // math.gcd(rate, int(sample_rate))  # on both rates' grids (see above)
        lo = int(first * rate) // step * step
        hi = min(int(np.ceil(last * rate)), int(info.frames))
        try:
            data, _ = sf.read(name, start=lo, stop=max(hi, lo), dtype="float32", always_2d=True)
            wave, first = data.mean(axis=1), lo / rate
        except Exception as exc:
            if machine_fault(exc, name):
                raise
    else:
        span = _read_pyav_span(name, first, last, sample_rate)
        if span is not None:
            wave, first, rate = span
    if wave is None or wave.size == 0:
        return load_audio(name, sample_rate), 0.0
    wave = np.nan_to_num(wave.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False), float(first)


def load_clip(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    seconds: float = 3.0,
    center: float | None = None,
) -> tuple[np.ndarray, float]:
    """``(clip, duration)``: the clip of :func:`load_audio_segment` and the file's length, s.

    Long files (over :data:`LONG_AUDIO_SECONDS`, by their header) are decoded only around the
    clip, with :data:`WINDOW_MARGIN_SECONDS` on each side: libsndfile's formats read from the
    window's first frame, the others (PyAV) sought there, decoding stopped once it is covered.
    The clip then equals the whole-file one to within resampling's round-off (and a lossy
    codec's), and to the sample when neither applies.
    """
    name = _check_path(path)
    windowed = _clip_from_window(name, sample_rate, seconds, center)
    if windowed is not None:
        return windowed
    wave = load_audio(name, sample_rate)
    try:
        return clip_centered(wave, sample_rate, seconds, center), wave.shape[0] / sample_rate
    except ValueError as exc:
        raise MediaError(f"{name}: {_one_line(exc)}") from None


def load_audio_segment(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    seconds: float = 3.0,
    center: float | None = None,
) -> np.ndarray:
    """:func:`load_audio` then :func:`clip_centered`: ``round(seconds * sample_rate)`` samples
    (long files decoded only around the clip: :func:`load_clip`)."""
    return load_clip(path, sample_rate, seconds, center)[0]


# --------------------------------------------------------------------------------------------
# Clipping and synthetic negatives
# --------------------------------------------------------------------------------------------


def clip_centered(
    wave: np.ndarray,
    sample_rate: int = 16000,
    seconds: float = 3.0,
    center: float | None = None,
) -> np.ndarray:
    """Cut a clip of exactly ``round(seconds * sample_rate)`` samples from a mono waveform.

    ``center`` (seconds) is where the clip is centred; ``None`` means the middle of the audio.
    The start is ``max(center - seconds / 2, 0)`` (rounded to a sample) and is moved left when
    the clip would run past the end. Audio shorter than the clip is tiled (repeated from its
    start) and cut to length. Raises ``ValueError`` for empty or non-1-D input.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D mono waveform, got shape {wave.shape}")
    if wave.size == 0:
        raise ValueError("contains no audio samples")
    if seconds <= 0:
        raise ValueError(f"clip length must be positive, got {seconds} s")
    length = int(round(seconds * sample_rate))
    total = wave.shape[0]
    if total <= length:
        reps = -(-length // total)
        return np.tile(wave, reps)[:length].copy()
    if center is None:
        start_s = max(total / sample_rate / 2.0 - seconds / 2.0, 0.0)
    else:
        start_s = max(float(center) - seconds / 2.0, 0.0)
    start = min(int(round(start_s * sample_rate)), total - length)
    return wave[start : start + length].copy()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def save_wav(path: str | os.PathLike, wave: np.ndarray, sample_rate: int = 16000) -> None:
    """Write a waveform (``(T,)`` or ``(T, channels)``, floats in [-1, 1]) as 16-bit PCM WAV."""
    import soundfile as sf

    data = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    sf.write(os.fspath(path), data, int(sample_rate), subtype="PCM_16", format="WAV")
