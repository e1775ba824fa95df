"""Models: ResNet-18 encoders (:mod:`~avloc.models.resnet`), the audio-visual network
(:mod:`~avloc.models.avnet`), the similarity map S(v, a) (:mod:`~avloc.models.similarity`) and
their plain-torch copy (:mod:`~avloc.models.torch_ref`).

The names below load on first use, so that ``avloc.models.torch_ref`` can be imported without
Keras (the fast ``avloc localize`` start).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ARCHITECTURES": "avloc.models.avnet",
    "AudioVisualNet": "avloc.models.avnet",
    "build_network": "avloc.models.build",
    "all_pair_maps": "avloc.models.similarity",
    "pair_maps": "avloc.models.similarity",
    "shared_audio_maps": "avloc.models.similarity",
    "upsample_maps": "avloc.models.similarity",
    "io": "avloc.models.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'avloc.models' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "io" else getattr(module, name)
