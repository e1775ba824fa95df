"""One sample: decode its media into a shard row, or say why it is skipped.

Only problems of the sample's own inputs are skips: a :class:`~avloc.errors.MediaError` of the
media layer (missing, unreadable, truncated or non-media files), silent or short audio, boxes
outside the image. Anything else (an ``OSError`` about the machine such as EIO or ESTALE, see
:func:`~avloc.errors.machine_fault`, or a bug) raises :class:`~avloc.errors.SampleFault`: the run
stops before the sample's chunk is recorded complete, so that running it again retries the
sample instead of keeping it skipped for good.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from avloc.data.boxes import BoxError, normalise_boxes, pad_boxes
from avloc.data.prepare.plan import SampleSpec, Settings, Skip
from avloc.errors import MediaError, SampleFault, machine_fault
from avloc.inputs.pcm import to_pcm16
from avloc.utils.processes import exit_with_parent


class _Problem(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path = path
        self.reason = reason


class _Fault(Exception):
    """Reading ``path`` failed for a reason that is not the file's (the machine, or a bug)."""

    def __init__(self, path: str, cause: BaseException):
        super().__init__(path)
        self.path = path
        self.cause = cause


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _media(path: str, fn: Callable[..., Any], *args, **kwargs):
    """Call a decoder; a MediaError becomes a _Problem naming ``path`` and the reason alone.

    Anything else becomes a :class:`_Fault` naming ``path``: it stops the run.
    """
    try:
        return fn(*args, **kwargs)
    except MediaError as exc:
        message = _one_line(exc)
        prefix = f"{path}: "
        reason = message[len(prefix) :] if message.startswith(prefix) else message
        raise _Problem(path, reason) from None
    except _Fault:
        raise
    except Exception as exc:
        raise _Fault(path, exc) from exc


def frame_number(k: int, fps: float) -> int:
    """AVSBench: frame ``k`` (1-based) of a video is ``int((k-1)*fps + 15/16*fps)``."""
    return int((k - 1) * fps + 15 / 16 * fps)


def _video_fps(path: str) -> float:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise _Problem(path, "has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except _Problem:
        raise
    except Exception as exc:
        if machine_fault(exc, path):
            raise _Fault(path, exc) from exc
        raise _Problem(path, f"not a readable video ({_one_line(exc)})") from None
    if not rate:
        raise _Problem(path, "not a readable video (unknown frame rate)")
    return float(rate)


def _load_mask(path: str, size: int) -> np.ndarray:
    from PIL import Image

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise MediaError(f"{name}: no such file")
    try:
        with Image.open(name) as img:
            img.load()
            gray = np.asarray(img.convert("L"), dtype=np.uint8)
    except Exception as exc:
        if machine_fault(exc, name):
            raise
        raise MediaError(f"{name}: not a readable mask image ({_one_line(exc)})") from None
    binary = Image.fromarray(((gray > 0) * 255).astype(np.uint8), mode="L")
    if binary.size != (size, size):
        binary = binary.resize((size, size), resample=Image.NEAREST)
    return (np.asarray(binary) > 0).astype(np.uint8)


def _load_clip(ref_path: str, center: float | None, settings: Settings) -> np.ndarray:
    from avloc.media.audio import load_clip

    clip, seconds = _media(
        ref_path, load_clip, ref_path, settings.sample_rate, settings.clip_seconds, center
    )
    if seconds < settings.min_audio_seconds:
        raise _Problem(
            ref_path,
            f"audio too short ({seconds:.2f} s; at least {settings.min_audio_seconds:g} s needed)",
        )
    peak = float(np.abs(clip).max())
    if settings.check_silence and peak < settings.silence_peak:
        where = "around the frame" if center is not None else "in the clip"
        raise _Problem(ref_path, f"audio is silent {where} (peak {peak:.1e})")
    return clip


def _row(spec: SampleSpec, settings: Settings) -> dict[str, Any]:
    from avloc.inputs.images import resize_uint8
    from avloc.media.image import extract_video_frame, load_image
    from avloc.media.items import check_frame_time

    size = settings.image_size
    fields = settings.fields
    row: dict[str, Any] = {"id": spec.id}

    # Boxes whose frame is known need no decoding: check them first.
    boxes = None
    if "boxes" in fields and spec.box_frame is not None:
        try:
            boxes = normalise_boxes(spec.boxes, spec.box_frame, size, settings.box_tolerance)
        except BoxError as exc:
            raise _Problem(spec.annotation or spec.visual, str(exc)) from None

    frame_time = None
    if spec.video:
        when = spec.time
        if spec.second is not None:
            fps = _video_fps(spec.video)
            when = frame_number(spec.second, fps) / fps
        else:
            _media(spec.video, check_frame_time, spec.video, when, "time")
        frame, frame_time = _media(spec.video, extract_video_frame, spec.video, when)
    elif spec.image:
        frame = _media(spec.image, load_image, spec.image)
    else:
        raise _Problem("", "no image or video given")
    height, width = frame.shape[:2]

    if "boxes" in fields and boxes is None:
        try:
            boxes = normalise_boxes(
                spec.boxes, (float(width), float(height)), size, settings.box_tolerance
            )
        except BoxError as exc:
            raise _Problem(spec.annotation or spec.visual, str(exc)) from None

    sound = spec.sound
    if not sound:
        raise _Problem(spec.visual, "no audio given")
    center = frame_time if spec.center_on_frame and frame_time is not None else spec.audio_center
    audio = _load_clip(sound, center, settings)

    mask = None
    if "mask" in fields:
        if not spec.mask:
            raise _Problem(spec.annotation or spec.visual, "no mask given for this sample")
        mask = _media(spec.mask, _load_mask, spec.mask, size)

    offscreen = None
    if "offscreen_audio" in fields:
        for ref in spec.offscreen:
            try:
                offscreen = (_load_clip(ref.path, ref.center, settings), ref.label)
                break
            except _Problem:
                continue  # that clip is broken (and reported with its own sample): try the next
        if offscreen is None:
            raise _Problem(
                "",
                f"no usable offscreen clip of another class ({len(spec.offscreen)} candidate(s))",
            )

    row["image"] = resize_uint8(frame, size)
    row["audio"] = to_pcm16(audio)
    if "label" in fields:
        row["label"] = np.int32(spec.label)
    if "boxes" in fields:
        padded, owner = pad_boxes(boxes, spec.box_group, settings.max_boxes)
        row["boxes"] = padded
        if "box_group" in fields:
            row["box_group"] = owner
    if "present" in fields:
        present = np.full((settings.max_present,), -1, np.int32)
        present[: len(spec.present)] = spec.present
        row["present"] = present
    if "group" in fields:
        row["group"] = spec.group or spec.id
    if "mask" in fields:
        row["mask"] = mask
    if "time" in fields:
        value = frame_time if frame_time is not None else spec.stored_time
        row["time"] = np.float32(np.nan if value is None else value)
    if "offscreen_audio" in fields:
        row["offscreen_audio"] = to_pcm16(offscreen[0])
        row["offscreen_label"] = np.int32(offscreen[1])
    return row


def process_sample(spec: SampleSpec, settings: Settings) -> dict[str, Any] | Skip:
    """Decode one sample into a row (dict of arrays), or a :class:`Skip` saying why not.

    Raises :class:`SampleFault` (one line naming the file) when the sample fails for a reason
    that is not its inputs' (the machine, or a bug): that must stop the run, not skip it.
    """
    try:
        return _row(spec, settings)
    except _Problem as exc:
        return Skip(spec.id, exc.path, _one_line(exc.reason))
    except _Fault as exc:
        path, cause = exc.path, exc.cause
    except Exception as exc:
        path, cause = spec.visual, exc
    what = f"{type(cause).__name__}: {_one_line(cause)}" if str(cause) else type(cause).__name__
    raise SampleFault(
        f"{path}: sample {spec.id} failed ({what}); not a problem of the file itself, so the run "
        "stops here and running it again retries the sample"
    ) from cause


def _process_many(specs: Sequence[SampleSpec], settings: Settings) -> list[dict | Skip]:
    return [process_sample(s, settings) for s in specs]


def results(
    specs: Sequence[SampleSpec], settings: Settings, workers: int, batch: int = 2
) -> Iterator[dict | Skip]:
    """Rows of ``specs`` in order; ``workers > 1`` decodes in a pool of spawned processes."""
    if workers <= 1:
        for spec in specs:
            yield process_sample(spec, settings)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    batches = [specs[i : i + batch] for i in range(0, len(specs), batch)]
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=exit_with_parent,  # a killed `avloc prepare` leaves no worker behind
        initargs=(os.getpid(),),
    )
    pending: deque = deque()
    try:
        todo = iter(batches)
        for part in todo:
            pending.append(executor.submit(_process_many, part, settings))
            if len(pending) >= 4 * workers:
                break
        while pending:
            results = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(executor.submit(_process_many, nxt, settings))
            yield from results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
