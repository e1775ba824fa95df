"""The maps stage without Keras: a saved EZ-VSL-family network in plain torch (fast ``localize``).

Starting a process that imports Keras costs about 3 s on a laptop-class CPU (Keras imports
torch's compiler, scikit-learn, scipy.stats and matplotlib on its own import), more than a
single localisation. This module runs the same network without Keras: a torchvision-style
ResNet pair, the projections and the L2 norms in plain torch (:mod:`avloc.models.torch_ref`),
with weights from a cache that the first (Keras) load of a network writes.

Cache: ``$AVLOC_CACHE/torch-infer/<sha256 of the .keras file>.npz`` (float32 arrays under
torchvision-style keys, the mapping of :mod:`avloc.models.torch_keys`) and ``.json`` (the
network's config: sizes, preprocessing ``inputs``, ``calibration``). Both are plain data read
with ``allow_pickle=False`` / ``json``; a file that changes gets a new hash and so a new entry.
Only the EZ-VSL family (``AudioVisualNet`` with projections) is supported; for anything else
:func:`load_cached` returns ``None`` and the caller uses Keras.

:class:`TorchNet` has the encoder interface of :class:`avloc.maps.engine.KerasEncoders`, in numpy:
images ``(B, S, S, 3)`` float32 normalised -> ``(B, h, w, D)``; spectrograms ``(B, F, T, 1)``
-> ``(B, D)``; :meth:`TorchNet.pair_maps` gives ``(B, h, w)`` float32 raw cosine maps, equal to
:func:`avloc.models.similarity.pair_maps` up to float32 rounding (``tests/test_torch_infer.py``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from avloc.runtime.cpu_kernels import choose_isa_for, onednn_min_width
from avloc.utils.files import atomic_path, atomic_write_json, cache_dir, file_sha256

CACHE_VERSION = 1


def cache_paths(network_file: str | Path) -> tuple[Path, Path]:
    """``(weights .npz, config .json)`` cache entries of a ``.keras`` file (by content hash)."""
    stat = os.stat(network_file)
    digest = _sha256(os.path.realpath(network_file), stat.st_size, stat.st_mtime_ns)
    stem = cache_dir() / "torch-infer" / f"{digest}-v{CACHE_VERSION}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, hashed once per process while its size and mtime stay the same."""
    return file_sha256(path)


def enabled() -> bool:
    """Use the fast path? Yes when the chosen Keras backend is torch, unless AVLOC_TORCH_INFER=0."""
    from avloc.runtime.configure import keras_backend_name

    return os.environ.get("AVLOC_TORCH_INFER", "1") != "0" and keras_backend_name() == "torch"


def supported(net) -> bool:
    """Whether this Keras network has the layout :class:`TorchNet` rebuilds."""
    from avloc.models.avnet import AudioVisualNet

    plain = getattr(net, "normalize", True) and getattr(net, "audio_pool_kind", "max") == "max"
    return type(net) is AudioVisualNet and bool(net.projection) and net.heads == 1 and plain


def write_cache(network_file: str | Path, net) -> bool:
    """Store a loaded Keras network's weights and config for :func:`load_cached`.

    Returns False (and writes nothing) for an unsupported network; an existing complete entry
    is kept as it is.
    """
    if not supported(net):
        return False
    weights_path, config_path = cache_paths(network_file)
    if weights_path.is_file() and config_path.is_file():
        return True
    import keras

    from avloc.models.torch_keys import layer_sources, trunk_sources

    sources = [
        *trunk_sources(net.visual_encoder, "visual"),
        *trunk_sources(net.audio_encoder, "audio"),
        *layer_sources(net.visual_proj, "img_proj"),
        *layer_sources(net.audio_proj, "aud_proj"),
    ]
    state = {s.key: s.to_torch(keras.ops.convert_to_numpy(s.variable)) for s in sources}
    config = {
        "embed_dim": int(net.embed_dim),
        "visual": _trunk_config(net.visual_config),
        "audio": _trunk_config(net.audio_config),
        "inputs": dict(net.inputs),
        "calibration": net.calibration,
    }
    with atomic_path(weights_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **state)
    atomic_write_json(config_path, config)  # last: a config means the weights are complete
    return True


def load_cached(network_file: str | Path) -> TorchNet | None:
    """The cached plain-torch network of ``network_file``, or None if it has no cache entry."""
    weights_path, config_path = cache_paths(network_file)
    if not (weights_path.is_file() and config_path.is_file()):
        return None
    try:
        config = json.loads(config_path.read_text())
        with np.load(weights_path, allow_pickle=False) as data:
            state = {key: data[key] for key in data.files}
        return TorchNet(config, state)
    except (OSError, ValueError, KeyError, RuntimeError):
        config_path.unlink(missing_ok=True)  # damaged: the caller's Keras load writes it again
        return None


def _trunk_config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "width": int(config.get("width", 64)),
        "blocks": [int(b) for b in config.get("blocks", (2, 2, 2, 2))],
        "last_stride": int(config.get("last_stride", 2)),
        "stem_pool": bool(config.get("stem_pool", True)),
    }


class TorchNet:
    """A cached network in plain torch: the attributes and encoders the maps stage reads."""

    def __init__(self, config: dict[str, Any], state: dict[str, np.ndarray]):
        import torch

        from avloc.models.torch_ref import EZVSLPair

        self.inputs = dict(config["inputs"])
        self.calibration = config.get("calibration")
        self.embed_dim = int(config["embed_dim"])
        self.module = EZVSLPair(config["visual"], config["audio"], self.embed_dim)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        self.module.load_state_dict(tensors, strict=True)
        self.module.eval()
        narrowest = min(config["visual"]["width"], config["audio"]["width"])
        choose_isa_for(narrowest)  # as avloc.runtime.configure for Keras trunks
        self.onednn = narrowest >= onednn_min_width()

    @property
    def uth(self) -> float | None:
        return None if not self.calibration else float(self.calibration["uth"])

    @contextlib.contextmanager
    def _mode(self):
        import torch

        found = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.onednn
        try:
            with torch.inference_mode():
                yield torch
        finally:
            torch.backends.mkldnn.enabled = found

    def encode_image(self, images: np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` normalised images -> ``(B, h, w, D)`` float32 visual maps."""
        with self._mode() as torch:
            x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2)
            v = self.module.encode_image(x.contiguous())
            return v.permute(0, 2, 3, 1).numpy().astype(np.float32)

    def encode_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        """``(B, F, T, 1)`` spectrograms -> ``(B, D)`` float32 audio embeddings."""
        with self._mode() as torch:
            a = torch.from_numpy(np.ascontiguousarray(spectrograms, np.float32))
            return self.module.encode_audio(a.permute(0, 3, 1, 2).contiguous()).numpy()

    def pair_maps(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``(B, h, w, D) x (B, D) -> (B, h, w)`` raw cosine maps (torch's S(v, a))."""
        from avloc.models.torch_ref import pair_maps

        with self._mode() as torch:
            v_nchw = torch.from_numpy(np.ascontiguousarray(v, np.float32)).permute(0, 3, 1, 2)
            return pair_maps(v_nchw, torch.from_numpy(np.asarray(a, np.float32))).numpy()
