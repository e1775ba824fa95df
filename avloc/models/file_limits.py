"""Bounds on what a network or checkpoint file can make avloc allocate, checked before it does.

- :func:`check_archive`: a zip archive (a ``.keras`` network, or a ``.pth`` checkpoint, which
  torch also reads compressed) whose members would unpack to more than weights could need, or
  from a few megabytes to gigabytes (a zip bomb), is refused without unpacking anything.
- :func:`check_tensor`: a checkpoint's tensor must hold its values: a zero or overlapping stride
  lets a few bytes declare 10^12 elements, which converting would allocate.
- :func:`check_parameters`: a network at least as large as its config says must have its weights
  in the file: a config asking for more parameters than the file's weights hold is refused
  before the network is built (building allocates every weight first).

Errors are one-line :class:`~avloc.errors.DataError`\\ s naming the file. Imports no framework.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avloc.errors import DataError

#: Largest unpacked size accepted, bytes: a full-width ResNet-18 pair is about 0.1 GB in float32.
MAX_UNPACKED_BYTES = 4 * 2**30
#: Largest unpacked / packed ratio of one member: float weights compress a few times at most.
MAX_RATIO = 200
#: Bytes per stored weight: avloc's networks keep float32 weights (also under mixed precision).
WEIGHT_BYTES = 4


def check_archive(path: Path, kind: str = ".keras archive") -> list[zipfile.ZipInfo]:
    """DataError when the zip archive ``path`` would unpack to more than its weights could
    need; its members."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable {kind} ({exc})") from None
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED_BYTES:
        raise DataError(
            f"{path}: would unpack to {total / 2**20:,.0f} MiB (more than "
            f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MiB); refused"
        )
    for member in members:
        if member.file_size > 2**20 and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise DataError(
                f"{path}: member {member.filename} unpacks {member.file_size / 2**20:.0f} MiB from "
                f"{member.compress_size / 2**20:.1f} MiB (a zip bomb?); refused"
            )
    return members


def check_tensor(path: Path, key: str, tensor: Any) -> int:
    """DataError unless the torch ``tensor`` stored under ``key`` holds every element it declares
    in its own storage (a zero or overlapping stride declares more); reads only its metadata.
    Returns the bytes it declares."""
    numel = tensor.numel()
    needed = numel * tensor.element_size()
    stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    if needed > stored:
        raise DataError(
            f"{path}: {key} declares {numel:,} elements of shape {tuple(tensor.shape)} (strides "
            f"{tuple(tensor.stride())}) but stores {max(stored, 0):,} bytes; refused"
        )
    return needed


def check_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """:func:`check_tensor` for each tensor, and at most :data:`MAX_UNPACKED_BYTES` declared in
    all (tensors may share a storage)."""
    total = 0
    for key, tensor in tensors.items():
        total += check_tensor(path, key, tensor)
        if total > MAX_UNPACKED_BYTES:
            raise DataError(
                f"{path}: its tensors declare more than {MAX_UNPACKED_BYTES / 2**20:,.0f} MiB "
                f"(at {key}); refused"
            )


def trunk_parameters(width: int, blocks: Iterable[int], in_channels: int) -> int:
    """A lower bound on a :func:`avloc.models.resnet.resnet` trunk's weights: its stem and the
    second 3x3 convolution of every basic block (the real count is about twice as many)."""
    count = 7 * 7 * in_channels * width
    for stage, n in enumerate(blocks):
        channels = width * 2**stage
        count += n * 9 * channels * channels
    return count


def network_parameters(config: dict[str, Any]) -> int:
    """A lower bound on the weights of the network a (checked) network config describes: its
    trunks and, with projections, the projection kernels of every head."""
    visual, audio = config.get("visual") or {}, config.get("audio") or {}
    v_width, a_width = int(visual.get("width", 64)), int(audio.get("width", 64))
    v_blocks = tuple(visual.get("blocks", (2, 2, 2, 2)))
    a_blocks = tuple(audio.get("blocks", (2, 2, 2, 2)))
    count = trunk_parameters(v_width, v_blocks, 3) + trunk_parameters(a_width, a_blocks, 1)
    if config.get("projection", True):
        embed_dim = int(config.get("embed_dim", 512))
        outputs = v_width * 2 ** (len(v_blocks) - 1) + a_width * 2 ** (len(a_blocks) - 1)
        heads = 2 if config.get("heads") == 2 else 1  # the network refuses other counts
        count += heads * embed_dim * outputs
    return count


def check_parameters(path: Path, config: dict[str, Any], stored_values: int, where: str) -> None:
    """DataError when the network ``config`` describes needs more weights than the
    ``stored_values`` numbers the file holds (``where``: the member or tensors that hold them)."""
    needed = network_parameters(config)
    if needed > stored_values:
        sizes = ", ".join(
            f"{part}.{key} {list(value) if isinstance(value, tuple) else value}"
            for part in ("visual", "audio")
            for key, value in (config.get(part) or {}).items()
            if key in ("width", "blocks")
        )
        sizes += f", embed_dim {config.get('embed_dim', 512)}"
        raise DataError(
            f"{path}: its config ({sizes}) describes a network of at least {needed:,} weights, "
            f"but {where} holds {stored_values:,} values; refused before building it"
        )
