"""Saving and loading the network as ``.keras`` files, safely and on any backend.

``save_network(net, path)`` writes atomically. ``load_network(path)`` uses Keras' safe mode: only
classes registered by avloc are deserialised and no code stored in the file is run. Before Keras
opens the archive, its members' sizes are checked (:func:`~avloc.models.file_limits.check_archive`):
a few megabytes that would unpack to gigabytes (a zip bomb) are refused without unpacking
anything. Then its config: every value within its recipe key's range
(:mod:`avloc.models.network_checks`), and no more weights than the file holds
(:func:`~avloc.models.file_limits.check_parameters`), before anything is built. Weights are
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
from avloc.models.file_limits import WEIGHT_BYTES, check_archive, check_parameters
from avloc.models.network_checks import check_network_config
from avloc.runtime.configure import configure
from avloc.utils.files import atomic_path
from avloc.utils.quiet import import_tensorflow_quietly


def save_network(net: keras.Model, path: str | Path) -> Path:
    path = Path(path)
    import_tensorflow_quietly()  # Keras' serialiser imports it when installed
    with atomic_path(path) as tmp:
        net.save(tmp)
    return path


#: The archive member holding a network's weights (Keras' ``.keras`` format).
WEIGHTS = "model.weights.h5"


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
    members = {m.filename: m for m in check_archive(path)}
    config = network_config(path)
    check_network_config(path, config)  # every value in its recipe range, before building
    if WEIGHTS in members:  # the weights it declares are in the file (else Keras refuses it)
        stored = members[WEIGHTS].file_size // WEIGHT_BYTES
        check_parameters(path, config, stored, WEIGHTS)
    configure(config)  # the kernels for its widths, before it is built
    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for foreign archives
        raise DataError(f"{path}: not an avloc network ({type(exc).__name__})") from None
    if not isinstance(net, AudioVisualNet):
        raise DataError(f"{path}: holds a {type(net).__name__}, not an avloc AudioVisualNet")
    return net
