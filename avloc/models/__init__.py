"""Models: ResNet-18 encoders and the audio-visual network (see :mod:`avloc.models.avnet`)."""

from avloc.models import io  # noqa: F401
from avloc.models.avnet import (
    ARCHITECTURES,
    AudioVisualNet,
    all_pair_maps,
    build_network,
    pair_maps,
    upsample_maps,
)

__all__ = [
    "ARCHITECTURES",
    "AudioVisualNet",
    "all_pair_maps",
    "build_network",
    "pair_maps",
    "upsample_maps",
]
