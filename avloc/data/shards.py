"""HDF5 shards that describe themselves: the only module that opens HDF5 files.

A shard ``<name>-<index:05d>.h5`` holds N samples as one dataset per field, first axis N:

| field             | dtype   | shape            | meaning                                         |
|-------------------|---------|------------------|-------------------------------------------------|
| ``id``            | str     | (N,)             | sample id (file stem, VGGSound id, ...)         |
| ``image``         | uint8   | (N, S, S, 3)     | RGB frame, S x S (S = attr image_size)          |
| ``audio``         | int16   | (N, T)           | 16-bit PCM at attr sample_rate, T = rate * secs |
| ``label``         | int32   | (N,)             | class index into attr class_names (-1 unknown)  |
| ``box``           | float32 | (N, 4)           | normalised x1, y1, x2, y2 of the sounding object|
| ``boxes``         | float32 | (N, K, 4)        | all ground-truth boxes, normalised, NaN-padded  |
| ``box_group``     | int32   | (N, K)           | annotator of each box (Flickr), -1 on padding   |
| ``mask``          | uint8   | (N, S, S)        | 1 on the sounding object                        |
| ``group``         | str     | (N,)             | samples sharing one image (IS3's two sounds)    |
| ``present``       | int32   | (N, K)           | classes visible in the image, -1 padded         |
| ``time``          | float32 | (N,)             | frame time, s, within the stored audio (S4)     |
| ``offscreen_audio``| int16  | (N, T)           | a clip of a class absent from the image         |
| ``offscreen_label``| int32  | (N,)             | its class                                       |

Only ``id``, ``image`` and ``audio`` are required; the rest are optional per data set.
File attributes: ``schema_version``, ``source``, ``count``, ``fields`` (JSON list),
``class_names`` (JSON list), ``image_size``, ``sample_rate``, ``clip_seconds``, ``split`` and,
for test sets, ``ground_truth``: how evaluation builds the ground-truth map (docs/protocol.md):

- ``"boxes"``: binary union of ``boxes`` (or the single ``box``), ``int(v * S)`` per coordinate
  (VGG-SS);
- ``"consensus"``: per annotator (``box_group``) the union of its boxes, summed over annotators,
  divided by 2, clipped to 1 (Flickr-SoundNet; its 256 px boxes are stored as ``v / 256``, which
  is exact in float32, so ``int(224 * v / 256)`` is recovered bit for bit);
- ``"mask"``: the ``mask`` field (AVSBench S4, IS3 masks).

Every string field (``id``, ``group``) is stored as variable-length UTF-8.
Audio is stored as PCM so the spectrogram is computed by the one function in
:mod:`avloc.inputs.spectrogram`.

Writers write ``.name.h5.tmp-<pid>`` and rename on success, so a finished shard is never partial.
Readers open files lazily (once per thread/process) so they can be used inside loader workers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avloc import __version__
from avloc.errors import DataError
from avloc.inputs.pcm import from_pcm16, to_pcm16
from avloc.utils.files import atomic_path

SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("id", "image", "audio")
PCM_FIELDS = ("audio", "offscreen_audio")
STRING_FIELDS = ("id", "group")
GROUND_TRUTH_RULES = ("boxes", "consensus", "mask")


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}.h5"


def write_shard(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    *,
    source: str,
    split: str,
    class_names: Sequence[str] = (),
    sample_rate: int = 16000,
    clip_seconds: float = 3.0,
    extra_attrs: dict[str, Any] | None = None,
) -> Path:
    """Write one shard atomically. Float waveforms in ``PCM_FIELDS`` are stored as int16."""
    import h5py

    path = Path(path)
    missing = [f for f in REQUIRED_FIELDS if f not in arrays]
    if missing:
        raise ValueError(f"write_shard: missing required fields {missing}")
    count = len(arrays["id"])
    for name, value in arrays.items():
        if len(value) != count:
            raise ValueError(f"write_shard: field {name} has {len(value)} rows, expected {count}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, value in arrays.items():
            if name in STRING_FIELDS:
                f.create_dataset(
                    name, data=np.asarray(value, dtype=object), dtype=h5py.string_dtype()
                )
                continue
            value = np.asarray(value)
            if name in PCM_FIELDS and value.dtype != np.int16:
                value = to_pcm16(value)
            chunks = (1, *value.shape[1:]) if value.ndim > 1 and count else None
            f.create_dataset(name, data=value, chunks=chunks)
        f.attrs.update(
            schema_version=SCHEMA_VERSION,
            source=source,
            split=split,
            count=count,
            fields=json.dumps(sorted(arrays)),
            class_names=json.dumps(list(class_names)),
            image_size=int(arrays["image"].shape[1]) if count else 0,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            writer=f"avloc {__version__}",
            **(extra_attrs or {}),
        )
    return path


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    count: int
    fields: tuple[str, ...]
    attrs: dict[str, Any]


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and arrays, bytes decoded)."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _bad_attribute(path: Path, key: str, value: Any, words: str) -> DataError:
    return DataError(f"{path}: shard attribute {key} = {value!r} {words}; prepare the data again")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_schema(path: Path, attrs: dict[str, Any]) -> None:
    if "schema_version" not in attrs:
        raise DataError(f"{path}: not an avloc shard (no schema_version attribute)")
    version = attrs["schema_version"]
    if not _is_int(version):
        raise _bad_attribute(path, "schema_version", version, "is not a schema number")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{path}: shard schema {version} is not supported "
            f"(this avloc reads schema {SCHEMA_VERSION}); prepare the data again"
        )


def _json_list(path: Path, attrs: dict[str, Any], key: str) -> list[str]:
    """Attribute ``key``, a JSON list of strings (absent: empty)."""
    value = attrs.get(key, "[]")
    try:
        items = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        raise _bad_attribute(path, key, value, "is not valid JSON") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _bad_attribute(path, key, value, "is not a list of names")
    return items


def _check_rows(path: Path, count: Any, fields: list[str], rows: dict[str, int | None]) -> None:
    """``count`` is the row count of every dataset ``fields`` lists, the required ones among
    them."""
    if not _is_int(count) or count < 0:
        raise _bad_attribute(path, "count", count, "is not a number of rows")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise _bad_attribute(path, "fields", fields, f"lacks the required field {name}")
    for name in fields:
        if name not in rows:
            raise DataError(
                f"{path}: shard attribute fields lists {name!r}, a dataset not in the file; "
                "prepare the data again"
            )
        if rows[name] != count:
            raise DataError(
                f"{path}: shard attribute count = {count}, but dataset {name} holds "
                f"{rows[name] or 0} rows; prepare the data again"
            )


def _check_audio_attrs(path: Path, attrs: dict[str, Any]) -> None:
    """``sample_rate`` and ``clip_seconds`` in the recipes' ranges (:data:`avloc.config.RANGES`)."""
    from avloc.config import RANGES, is_number

    for key, numeric, kind in (
        ("sample_rate", _is_int, "an integer"),
        ("clip_seconds", is_number, "a number"),
    ):
        if key not in attrs:
            continue
        ok, words = RANGES[f"data.{key}"]
        value = attrs[key]
        if not numeric(value):
            raise _bad_attribute(path, key, value, f"must be {kind}")
        if not ok(value):
            raise _bad_attribute(path, key, value, f"must be {words}")


def read_info(path: Path) -> ShardInfo:
    """A shard's attributes, checked against its datasets: a damaged or foreign file is a
    one-line DataError naming the file and the attribute."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            rows = {
                name: (item.shape[0] if item.shape else None)
                for name, item in f.items()
                if isinstance(item, h5py.Dataset)
            }
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 shard ({exc.__class__.__name__})") from None
    _check_schema(path, attrs)
    attrs["fields"] = _json_list(path, attrs, "fields")
    attrs["class_names"] = _json_list(path, attrs, "class_names")
    _check_rows(path, attrs.get("count"), attrs["fields"], rows)
    _check_audio_attrs(path, attrs)
    return ShardInfo(path, attrs["count"], tuple(attrs["fields"]), attrs)


def find_shards(location: str | Path) -> list[Path]:
    """A shard file, or every ``*.h5`` in a directory (sorted); DataError if there are none."""
    location = Path(location)
    if location.is_file():
        return [location]
    if location.is_dir():
        shards = sorted(p for p in location.glob("*.h5") if not p.name.startswith("."))
        if shards:
            return shards
        raise DataError(f"{location}: no .h5 shards in this directory")
    raise DataError(f"{location}: no such shard file or directory")


class ShardSet:
    """Several shards read as one indexable data set (lazy, thread-safe file handles)."""

    def __init__(self, location: str | Path):
        self.location = Path(location)
        self.infos = [read_info(p) for p in find_shards(location)]
        first = self.infos[0]
        self.fields = tuple(f for f in first.fields if all(f in i.fields for i in self.infos))
        self.attrs = first.attrs
        self.class_names = list(first.attrs.get("class_names", []))
        self.offsets = np.cumsum([0] + [i.count for i in self.infos])
        self._local = threading.local()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_local")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _file(self, shard: int):
        import h5py

        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = {}
        if shard not in handles:
            handles[shard] = h5py.File(self.infos[shard].path, "r")
        return handles[shard]

    def require(self, fields: Sequence[str], purpose: str) -> None:
        missing = [f for f in fields if f not in self.fields]
        if missing:
            raise DataError(
                f"{self.location}: shards lack field(s) {', '.join(missing)} needed for {purpose}"
            )

    def read(
        self, indices: Sequence[int], fields: Sequence[str], *, raw_pcm: bool = False
    ) -> dict[str, np.ndarray]:
        """Rows ``indices`` (global, any order) of ``fields``; PCM audio comes back as float32
        (:func:`from_pcm16`), or as stored (int16) with ``raw_pcm``."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"sample index out of range 0..{len(self) - 1}")
        shard_of = np.searchsorted(self.offsets, indices, side="right") - 1
        out: dict[str, list] = {f: [None] * len(indices) for f in fields}
        for shard in np.unique(shard_of):
            positions = np.nonzero(shard_of == shard)[0]
            local = indices[positions] - self.offsets[shard]
            # One plain read per distinct row: h5py's list (fancy) indexing costs about 100x
            # more per row on these one-row chunks (benchmarks/loader.py). Repeats read once.
            unique, inverse = np.unique(local, return_inverse=True)
            f = self._file(int(shard))
            for field in fields:
                dataset = f[field]
                if unique[-1] - unique[0] + 1 == len(unique):  # a contiguous run: one slice
                    rows = dataset[int(unique[0]) : int(unique[-1]) + 1]
                else:
                    rows = [dataset[int(row)] for row in unique]
                for pos, row in zip(positions, inverse, strict=True):
                    out[field][pos] = rows[row]
        result = {}
        for field, rows in out.items():
            if field in STRING_FIELDS:
                result[field] = np.array(
                    [r.decode() if isinstance(r, bytes) else str(r) for r in rows]
                )
            else:
                arr = np.stack(rows) if rows else np.zeros((0,))
                decode = field in PCM_FIELDS and not raw_pcm
                result[field] = from_pcm16(arr) if decode else arr
        return result
