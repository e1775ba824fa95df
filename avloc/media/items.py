"""Media items: an image + audio pair or a video, from arguments, a folder or a manifest.

:func:`parse_media_item` reads the keys of one JSON Lines manifest object that ``avloc
localize`` and ``avloc prepare manifest`` both read, in one place; :class:`Item` lists
(:func:`item_from_paths`, :func:`items_from_directory`, :func:`items_from_manifest`) are what
``avloc localize`` works through, and :func:`load_item` decodes one for a network.

An item is a JSON object with ``"image"`` + ``"audio"``, or ``"video"`` (+ optional
``"audio"``, default the video's own track); optional ``"time"`` (seconds >= 0: the video frame
and the audio clip's centre) and ``"id"``. Paths are strings; relative ones are resolved against
a base folder (``~`` is expanded). Other keys are the caller's (labels, boxes, ...).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import AvlocError, DataError, MediaError
from avloc.media.audio import load_audio_segment, load_clip
from avloc.media.formats import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, kind_of
from avloc.media.image import extract_video_frame, load_image


class ItemError(ValueError):
    """A manifest object that cannot be used; the message says why (no file name)."""


@dataclass(frozen=True)
class MediaItem:
    """The media of one manifest object; exactly one of ``image`` and ``video`` is set."""

    image: Path | None
    video: Path | None
    audio: Path | None
    time: float | None
    id: str | None

    @property
    def visual(self) -> Path:
        return self.image if self.image is not None else self.video


def number(value: Any, key: str) -> float:
    """A JSON number (not a bool) as float; ItemError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ItemError(f"'{key}' must be a number")
    return float(value)


def media_path(value: Any, key: str, base: Path) -> Path:
    """A path string of the manifest, resolved against ``base``."""
    if not isinstance(value, str) or not value:
        raise ItemError(f"'{key}' must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_media_item(entry: Any, base: Path, time: float | None = None) -> MediaItem:
    """The media keys of one manifest object; ``time`` is the default when it has none."""
    if not isinstance(entry, dict):
        raise ItemError("expected a JSON object")
    if bool(entry.get("image")) == bool(entry.get("video")):
        raise ItemError("needs exactly one of 'image' or 'video'")
    image = media_path(entry["image"], "image", base) if entry.get("image") else None
    video = media_path(entry["video"], "video", base) if entry.get("video") else None
    audio = media_path(entry["audio"], "audio", base) if entry.get("audio") else None
    if image is not None and audio is None:
        raise ItemError("an image needs 'audio'")
    when = entry.get("time", time)
    if when is not None:
        when = number(when, "time")
        if when < 0:
            raise ItemError("'time' must be >= 0 seconds")
    name = entry.get("id")
    return MediaItem(image, video, audio, when, None if name in (None, "") else str(name))


# --------------------------------------------------------------------------------------------
# Items: what to localise, from arguments, a directory or a manifest


@dataclass
class Item:
    """One thing to localise: an image + audio, or a video (+ optional separate audio).

    ``time`` (seconds) is where the frame is taken and the audio clip centred; ``None`` means
    the middle. ``error`` marks an item that could not even be formed (reported, skipped).
    """

    name: str
    image: Path | None = None
    audio: Path | None = None
    video: Path | None = None
    time: float | None = None
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("image", "video", "audio"):
            value = getattr(self, key)
            if value is not None:
                out[key] = os.fspath(value)
        return out


@dataclass
class LoadedItem:
    item: Item
    image: np.ndarray  # uint8 (H, W, 3)
    wave: np.ndarray  # float32 clip at the network's rate
    time: float | None  # frame time actually used (videos), or the clip centre asked for


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def check_inside(path: str | Path, time: float | None, duration: float, key: str) -> None:
    """MediaError naming ``path`` and ``key`` when ``time`` (seconds; None: the middle) is past
    ``duration`` (0: unknown, passes)."""
    if time is not None and duration and time > duration:
        raise MediaError(f"{path}: {key} {time:g} s is past its end ({duration:.2f} s)")


def check_frame_time(video: str | Path, time: float | None, key: str) -> None:
    """:func:`check_inside` for a video, before it is decoded (its probed duration)."""
    if time is not None:
        from avloc.media.video import probe

        check_inside(video, time, probe(video).duration, key)


def load_item(item: Item, inputs: dict[str, Any]) -> LoadedItem:
    """Decode an item's frame/image and its audio clip per the network's ``inputs`` settings.

    Raises :class:`MediaError` (one line naming the file) for any unusable file.
    """
    if item.error is not None:
        raise AvlocError(item.error)
    rate = int(inputs["sample_rate"])
    seconds = float(inputs["clip_seconds"])
    time = item.time
    if item.video is not None:
        check_frame_time(item.video, item.time, "--time")
        try:
            frame, time = extract_video_frame(item.video, item.time)
        except ValueError as exc:
            raise MediaError(f"{item.video}: {exc}") from None
        source = item.audio if item.audio is not None else item.video
        wave = load_audio_segment(source, rate, seconds, center=time)
        return LoadedItem(item, frame, wave, time)
    if item.image is None or item.audio is None:
        raise AvlocError(f"{item.name}: needs an image and an audio file, or a video")
    image = load_image(item.image)
    wave, duration = load_clip(item.audio, rate, seconds, center=item.time)
    check_inside(item.audio, item.time, duration, "--time")
    return LoadedItem(item, image, wave, time)


def check_time_option(time: float | None) -> None:
    """``--time``, where given, is a finite number of seconds >= 0 (past the end of the media:
    :func:`load_item`)."""
    if time is not None and not (math.isfinite(time) and time >= 0):
        raise AvlocError(f"--time must be a finite number of seconds >= 0, got {time}")


def item_from_paths(paths: Sequence[Path], time: float | None = None) -> Item:
    """The single-pair item of ``avloc localize IMAGE AUDIO`` / ``VIDEO [AUDIO]``."""
    check_time_option(time)
    if len(paths) == 1:
        (path,) = paths
        if path.suffix.lower() in IMAGE_EXTS:
            raise MediaError(f"{path}: an image needs an audio file: avloc localize IMAGE AUDIO")
        if path.suffix.lower() in AUDIO_EXTS:
            raise MediaError(f"{path}: an audio file needs an image: avloc localize IMAGE AUDIO")
        return Item(name=path.stem, video=path, time=time)
    if len(paths) == 2:
        first, second = paths
        if is_video(first):
            return Item(name=first.stem, video=first, audio=second, time=time)
        return Item(name=first.stem, image=first, audio=second, time=time)
    raise AvlocError(
        f"expected IMAGE AUDIO, VIDEO, a directory or a manifest, got {len(paths)} paths"
    )


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "item"


def _unique(items: list[Item]) -> list[Item]:
    """Make output names unique (``name``, ``name-2``, ...), keeping the order."""
    seen: set[str] = set()
    for item in items:
        base = _safe_name(item.name)
        name, k = base, 1
        while name.lower() in seen:
            k += 1
            name = f"{base}-{k}"
        seen.add(name.lower())
        item.name = name
    return items


def items_from_directory(folder: str | Path, time: float | None = None) -> list[Item]:
    """Items of a directory (not recursive), matched by file stem, in sorted stem order.

    ``foo.jpg`` + ``foo.wav`` is a pair; ``bar.mp4`` is a video (with ``bar.wav`` as its audio
    when present). A stem with an image but no audio (or audio alone, or two images) becomes an
    item with an ``error``. Other files are ignored.
    """
    check_time_option(time)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory")
    groups: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        kind = kind_of(path)
        if kind is not None:
            groups.setdefault(path.stem, {}).setdefault(kind, []).append(path)
    items: list[Item] = []
    for stem in sorted(groups):
        group = groups[stem]
        images, audios, videos = (group.get(k, []) for k in ("image", "audio", "video"))
        first = (images + videos + audios)[0]
        if len(images) > 1 or len(audios) > 1 or len(videos) > 1:
            names = ", ".join(p.name for p in images + videos + audios)
            items.append(Item(stem, error=f"{first}: ambiguous pairing ({names})"))
        elif images and audios:
            items.append(Item(stem, image=images[0], audio=audios[0], time=time))
        elif videos:
            items.append(Item(stem, video=videos[0], audio=(audios or [None])[0], time=time))
        elif images:
            items.append(Item(stem, error=f"{first}: no audio file named {stem}.* next to it"))
        else:
            items.append(Item(stem, error=f"{first}: no image or video named {stem}.* next to it"))
    if not items:
        raise DataError(f"{folder}: no images, audio or video files found")
    return _unique(items)


def _manifest_item(entry: Any, base: Path, where: str, time: float | None) -> Item:
    try:
        media = parse_media_item(entry, base, time)
    except ItemError as exc:
        return Item(where, error=f"{where}: {exc}")
    name = media.id if media.id is not None else media.visual.stem
    return Item(name, image=media.image, audio=media.audio, video=media.video, time=media.time)


def items_from_manifest(path: str | Path, time: float | None = None) -> list[Item]:
    """Items of a JSON Lines manifest: ``{"image", "audio"}`` or ``{"video"[, "audio"]}`` per
    line, optional ``"time"`` (seconds) and ``"id"`` (output name); other keys are ignored. A
    file holding one JSON array of such objects works too. Relative paths are relative to the
    manifest's folder. Bad lines become error items."""
    check_time_option(time)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON Lines manifest ({exc})") from None
    items: list[Item] = []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):  # a plain JSON array of entries is accepted too
        for index, entry in enumerate(whole):
            items.append(_manifest_item(entry, path.parent, f"{path}[{index}]", time))
        lines: list[str] = []
    else:
        lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append(Item(where, error=f"{where}: not valid JSON ({exc.msg})"))
            continue
        items.append(_manifest_item(entry, path.parent, where, time))
    if not items:
        raise DataError(f"{path}: the manifest lists no items")
    return _unique(items)
