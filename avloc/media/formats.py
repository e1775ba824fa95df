"""Media file kinds by extension: the one table every reader uses.

Each tuple is ordered with the most common extension first (data-set readers that guess a
file's name try them in this order). Extensions are lower case with the dot; compare with
``Path(p).suffix.lower()`` or use :func:`kind_of`.

- images are decoded with Pillow (:mod:`avloc.media.image`);
- audio with libsndfile, falling back to FFmpeg through PyAV (:mod:`avloc.media.audio`);
- videos (frames and their audio track) with PyAV; :data:`CONTAINER_EXTS` are the files whose
  audio goes straight to PyAV because libsndfile cannot read them.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".oga", ".aif", ".aiff")
VIDEO_EXTS = (
    ".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv"
)  # fmt: skip
#: Audio in these containers is decoded by PyAV directly (libsndfile cannot read them).
CONTAINER_EXTS = frozenset(VIDEO_EXTS) | {".m4a", ".aac", ".wma"}
#: JSON Lines manifests (a plain JSON array of the same objects is accepted too).
MANIFEST_EXTS = (".jsonl", ".ndjson", ".json")
MEDIA_EXTS = IMAGE_EXTS + AUDIO_EXTS + VIDEO_EXTS


def kind_of(path: str | Path) -> str | None:
    """``"image"``, ``"audio"``, ``"video"`` or None, from the file's extension."""
    ext = Path(path).suffix.lower()
    for kind, exts in (("image", IMAGE_EXTS), ("audio", AUDIO_EXTS), ("video", VIDEO_EXTS)):
        if ext in exts:
            return kind
    return None


def strip_media_ext(name: str) -> str:
    """``name`` without a trailing media extension (any case), else unchanged."""
    for ext in MEDIA_EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name
