"""Presets: a trained network in a folder that can be copied anywhere, and how one is read.

A preset is what ``avloc export RUN --out DIR`` writes (:mod:`avloc.jobs.export`)::

    DIR/model.keras     the network: byte for byte the run's model.keras (avloc.models.io),
                        its calibrated Uth inside
    DIR/metadata.json   what the network is (below); detects the folder as a preset
    DIR/MODEL_CARD.md   the model card, generated from metadata.json (avloc.model_card)

``metadata.json`` is UTF-8 JSON (keys sorted, indented) with:

* ``format`` ``"avloc-preset"``, ``format_version`` (:data:`FORMAT_VERSION`), ``avloc_version``
  (the exporting avloc), ``created`` (UTC, ISO 8601), ``name`` (the run's), ``model``
  (``"model.keras"``);
* ``inputs``: the network's input contract and front end (``image_size`` px, ``sample_rate``
  Hz, ``clip_seconds`` s, and the audio front end / border when recorded);
* ``uth``: the universal threshold in cosine units and ``calibration``: the network's
  calibration record (statistic, audio, samples, data, quartiles of the maxima;
  :mod:`avloc.maps.calibration`);
* ``recipe``: the run's ``recipe.toml`` parsed, ``recipe_toml``: its text;
* ``evaluation``: a list of ``{"results", "dataset", "name", "samples", "uth", "uth_source",
  "calibration", "metrics"[, "absent"]}``, one per ``results.json`` of ``avloc eval`` in the run
  directory that scores its ``model.keras`` (``metrics`` as in docs/protocol.md), or the string
  ``"not evaluated"``;
* ``files``: ``{name: sha256 hex}`` of every other file of the folder (``model.keras``,
  ``MODEL_CARD.md``).

Reading (:func:`open_preset`) verifies every listed checksum before anything is loaded: a
missing or changed file is a one-line :class:`~avloc.errors.DataError` naming it. The checksums
find damaged and partly copied folders; they do not prove who made the folder. Files that are
not listed (a copy's extras) are ignored. Paths are relative, so the folder can be moved.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from avloc.errors import DataError
from avloc.utils.files import file_sha256

FORMAT = "avloc-preset"
FORMAT_VERSION = 1
METADATA = "metadata.json"
MODEL = "model.keras"
CARD = "MODEL_CARD.md"

_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_preset(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a ``metadata.json`` (a preset, or a broken one that
    :func:`open_preset` then refuses)."""
    path = Path(path)
    return path.is_dir() and (path / METADATA).is_file()


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """``metadata.json`` of a preset, its form checked (one-line DataError); no checksums."""
    file = Path(folder) / METADATA
    if not file.is_file():
        raise DataError(f"{file}: missing (not an avloc preset folder)")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{file}: not an avloc preset's metadata ({reason})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{file}: not an avloc preset's metadata (no format {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"{file}: preset format version {version!r}, this avloc reads up to "
            f"{FORMAT_VERSION}; update avloc"
        )
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL not in files or meta.get("model") != MODEL:
        raise DataError(f"{file}: lists no checksum of {MODEL}")
    for name, digest in files.items():
        plain = isinstance(name, str) and name not in ("", ".", "..", METADATA)
        if not plain or "/" in name or "\\" in name:
            raise DataError(f"{file}: lists {name!r}, not a file name of the preset folder")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise DataError(f"{file}: the checksum of {name} is not a sha256 hex digest")
    return meta


#: Files this process has hashed and found right: (path, expected sha256) -> (size, mtime_ns)
#: then; a file whose size or modification time changed since is hashed again.
_VERIFIED: dict[tuple[str, str], tuple[int, int]] = {}


def verify(folder: str | Path) -> dict[str, Any]:
    """The preset's metadata once every file it lists has its checksum (one-line DataError
    naming the first missing or changed file otherwise)."""
    folder = Path(folder)
    meta = read_metadata(folder)
    for name, expected in sorted(meta["files"].items()):
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path}: missing from the preset (its metadata.json lists it); copy the whole "
                "folder again"
            )
        stat = path.stat()
        key, seen = (str(path.resolve()), expected), (stat.st_size, stat.st_mtime_ns)
        if _VERIFIED.get(key) == seen:
            continue  # hashed already in this process, unchanged since (one load, two readers)
        actual = file_sha256(path)
        if actual != expected:
            raise DataError(
                f"{path}: checksum mismatch (sha256 {actual[:12]}..., metadata.json says "
                f"{expected[:12]}...): the file was changed or damaged; copy the preset again"
            )
        _VERIFIED[key] = seen
    return meta


def open_preset(folder: str | Path) -> Path:
    """The verified ``model.keras`` of a preset folder (see :func:`verify`)."""
    verify(folder)
    return Path(folder) / MODEL
