"""Saving and loading the network as ``.keras`` files, safely and on any backend.

``save_network(net, path)`` writes atomically. ``load_network(path)`` uses Keras' safe mode: only
classes registered by avloc are deserialised and no code stored in the file is run. Before Keras
opens the archive, its members' sizes are checked (:func:`check_archive`): a few megabytes that
would unpack to gigabytes (a zip bomb) are refused without unpacking anything. Weights are
layout-independent, so a file saved under torch loads under TensorFlow and vice versa.
Loading configures the process's kernels for the file's widths first
(:func:`avloc.runtime.configure`), as every job that reads a network needs.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras

from avloc.errors import DataError
from avloc.models.avnet import AudioVisualNet
from avloc.runtime.configure import configure
from avloc.utils.files import atomic_path
from avloc.utils.quiet import import_tensorflow_quietly


def save_network(net: keras.Model, path: str | Path) -> Path:
    path = Path(path)
    import_tensorflow_quietly()  # Keras' serialiser imports it when installed
    with atomic_path(path) as tmp:
        net.save(tmp)
    return path


#: Largest unpacked size accepted, bytes: a full-width ResNet-18 pair is about 0.1 GB in float32.
MAX_UNPACKED_BYTES = 4 * 2**30
#: Largest unpacked / packed ratio of one member: float weights compress a few times at most.
MAX_RATIO = 200


def check_archive(path: Path) -> None:
    """DataError when a ``.keras`` archive would unpack to more than its weights could need."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable .keras archive ({exc})") from None
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


def network_config(path: Path) -> dict:
    """The network's own config (``config.json``'s ``config``) read from the archive, without
    building anything; {} when the archive holds none (the load then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json")).get("config", {})
    except (KeyError, ValueError, OSError, AttributeError, zipfile.BadZipFile):
        return {}
    return config if isinstance(config, dict) else {}


def load_network(path: str | Path) -> AudioVisualNet:
    """Load an avloc network; one-line DataError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .keras checkpoint (expected a Keras zip archive)")
    check_archive(path)
    configure(network_config(path))  # the kernels for its widths, before it is built
    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for foreign archives
        raise DataError(f"{path}: not an avloc network ({type(exc).__name__})") from None
    if not isinstance(net, AudioVisualNet):
        raise DataError(f"{path}: holds a {type(net).__name__}, not an avloc AudioVisualNet")
    return net
