"""Keras-free inference of a saved EZ-VSL-family network in plain torch (fast ``avloc localize``).

Starting a process that imports Keras costs about 3 s on a laptop-class CPU (Keras imports
torch's compiler, scikit-learn, scipy.stats and matplotlib on its own import), more than a
single localisation. This module runs the same network without Keras: a torchvision-style
ResNet pair, the projections and the L2 norms in plain torch, with weights from a cache that
the first (Keras) load of a network writes.

Cache: ``$AVLOC_CACHE/torch-infer/<sha256 of the .keras file>.npz`` (float32 arrays under
torchvision-style keys, the mapping of :mod:`avloc.models.import_torch`) and ``.json`` (the
network's config: sizes, preprocessing ``inputs``, ``calibration``). Both are plain data read
with ``allow_pickle=False`` / ``json``; a file that changes gets a new hash and so a new entry.
Only the EZ-VSL family (``AudioVisualNet`` with projections) is supported; for anything else
:func:`load_cached` returns ``None`` and the caller uses Keras.

Shapes: images ``(B, S, S, 3)`` float32 normalised (:func:`avloc.image.preprocess_test`),
spectrograms ``(B, F, T, 1)`` float32; :meth:`TorchNet.maps` returns ``(B, h, w)`` float32 raw
cosine maps, equal to :func:`avloc.models.pair_maps` of the Keras network's encodings up to
float32 rounding (``tests/test_torch_infer.py``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from avloc.utils.files import atomic_path, atomic_write_json, cache_dir, file_sha256

#: avloc.models.resnet.BN_EPSILON and avloc.backend.ONEDNN_MIN_WIDTH (a test checks that they
#: agree; importing them would import Keras): oneDNN runs only trunks at least this wide
BN_EPSILON = 1e-5
ONEDNN_MIN_WIDTH = 8
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
    from avloc import _keras_backend_name

    return os.environ.get("AVLOC_TORCH_INFER", "1") != "0" and _keras_backend_name() == "torch"


def supported(net) -> bool:
    """Whether this Keras network has the layout :class:`TorchNet` rebuilds."""
    from avloc.models.avnet import AudioVisualNet

    return type(net) is AudioVisualNet and bool(net.projection)


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

    from avloc.models.import_torch import layer_sources, trunk_sources

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
    """A cached network in plain torch, with the attributes ``avloc.localize`` reads."""

    def __init__(self, config: dict[str, Any], state: dict[str, np.ndarray]):
        import torch

        self.inputs = dict(config["inputs"])
        self.calibration = config.get("calibration")
        self.embed_dim = int(config["embed_dim"])
        self.module = _pair_module()(config["visual"], config["audio"], self.embed_dim)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        self.module.load_state_dict(tensors, strict=True)
        self.module.eval()
        widths = (config["visual"]["width"], config["audio"]["width"])
        self.onednn = min(widths) >= ONEDNN_MIN_WIDTH  # as avloc.backend.note_conv_width

    @property
    def uth(self) -> float | None:
        return None if not self.calibration else float(self.calibration["uth"])

    def maps(self, images: np.ndarray, spectrograms: np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)``, ``(B, F, T, 1)`` -> ``(B, h, w)`` raw cosine maps, float32."""
        import torch

        found = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.onednn
        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2)
                a = torch.from_numpy(np.ascontiguousarray(spectrograms, np.float32))
                out = self.module(x.contiguous(), a.permute(0, 3, 1, 2).contiguous())
                return out.numpy().astype(np.float32)
        finally:
            torch.backends.mkldnn.enabled = found


def _l2_normalize(x, dim: int):
    import torch

    squared = (x * x).sum(dim=dim, keepdim=True)
    return x / torch.sqrt(torch.clamp_min(squared, 1e-24))


@functools.cache
def _pair_module():
    """The torch module class (defined once, on first use: importing this file stays cheap)."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, inputs: int, filters: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, filters, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(filters, eps=BN_EPSILON)
            self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(filters, eps=BN_EPSILON)
            self.downsample = None
            if stride != 1 or inputs != filters:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inputs, filters, 1, stride, bias=False),
                    nn.BatchNorm2d(filters, eps=BN_EPSILON),
                )

        def forward(self, x):
            y = torch.relu_(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            shortcut = x if self.downsample is None else self.downsample(x)
            return torch.relu_(y + shortcut)

    class Trunk(nn.Module):
        """avloc.models.resnet.resnet with torchvision's module names."""

        def __init__(self, in_channels: int, width: int, blocks, last_stride: int, stem_pool):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width, eps=BN_EPSILON)
            self.stem_pool = bool(stem_pool)
            channels = width
            for stage, count in enumerate(blocks):
                filters = width * 2**stage
                layer = []
                for index in range(count):
                    if index == 0 and stage > 0:
                        stride = last_stride if stage == len(blocks) - 1 else 2
                    else:
                        stride = 1
                    layer.append(BasicBlock(channels, filters, stride))
                    channels = filters
                self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
            self.stages = len(blocks)
            self.channels = channels

        def forward(self, x):
            x = torch.relu_(self.bn1(self.conv1(x)))
            if self.stem_pool:
                x = nn.functional.max_pool2d(x, 3, 2, 1)
            for stage in range(self.stages):
                x = getattr(self, f"layer{stage + 1}")(x)
            return x

    class Pair(nn.Module):
        def __init__(self, visual: dict, audio: dict, embed_dim: int):
            super().__init__()
            self.visual = Trunk(3, **visual)
            self.audio = Trunk(1, **audio)
            self.img_proj = nn.Conv2d(self.visual.channels, embed_dim, 1)
            self.aud_proj = nn.Linear(self.audio.channels, embed_dim)

        def forward(self, image, spectrogram):
            v = _l2_normalize(self.img_proj(self.visual(image)), dim=1)  # (B, D, h, w)
            a = self.audio(spectrogram).amax(dim=(2, 3))
            a = _l2_normalize(self.aud_proj(a), dim=1)  # (B, D)
            return torch.einsum("bdhw,bd->bhw", v, a)

    return Pair
