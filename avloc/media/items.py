"""One media item of a JSON Lines manifest: the keys ``avloc localize`` and ``avloc prepare
manifest`` both read, parsed in one place.

An item is a JSON object with ``"image"`` + ``"audio"``, or ``"video"`` (+ optional
``"audio"``, default the video's own track); optional ``"time"`` (seconds >= 0: the video frame
and the audio clip's centre) and ``"id"``. Paths are strings; relative ones are resolved against
a base folder (``~`` is expanded). Other keys are the caller's (labels, boxes, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
