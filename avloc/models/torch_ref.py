"""The plain-PyTorch copy of avloc's networks: one reference, with torchvision's key names.

Used by the Keras-free inference path (:mod:`avloc.maps.torch_engine`), the parity tests and
the benchmarks. Layouts (NCHW, float32):

- :class:`ResNet`: torchvision's ResNet trunk (``conv1``, ``bn1``, ``layer1``..``layerN`` of
  :class:`BasicBlock`, optional ``fc``), with avloc's options ``width`` (channels of the first
  stage), ``blocks`` (basic blocks per stage), ``last_stride`` (2: 7x7 maps at 224 px, 1: 14x14)
  and ``stem_pool`` (the 3x3/2 max pool after the stem). ``forward`` returns the last stage's
  map ``(B, C, h, w)``; with ``classes`` it returns ``(B, classes)`` logits instead.
- :class:`EZVSLPair`: the EZ-VSL family network (``visual``/``audio`` trunks, ``img_proj`` 1x1
  conv, ``aud_proj`` Linear, L2 norms). ``encode_image``: ``(B, 3, S, S) -> (B, D, h, w)``;
  ``encode_audio``: ``(B, 1, F, T) -> (B, D)``; :func:`pair_maps`: S(v, a) ``(B, h, w)``, the
  torch twin of :func:`avloc.models.similarity.pair_maps`.

Batch norm uses epsilon 1e-5, as :mod:`avloc.models.resnet` and torchvision do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

BN_EPSILON = 1e-5  # = avloc.models.resnet.BN_EPSILON (a test checks it)


def l2_normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x / max(||x||, 1e-12)`` along ``dim``, as :func:`avloc.models.avnet.l2_normalize`."""
    squared = (x * x).sum(dim=dim, keepdim=True)
    return x / torch.sqrt(torch.clamp_min(squared, 1e-24))


def pair_maps(v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """S(v_i, a_i): ``(B, D, h, w) x (B, D) -> (B, h, w)``."""
    return torch.einsum("bdhw,bd->bhw", v, a)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: ``conv1/bn1/conv2/bn2`` and ``downsample.0/.1``."""

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
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class ResNet(nn.Module):
    """avloc.models.resnet.resnet with torchvision's module names (ResNet-18 by default)."""

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
        last_stride: int = 2,
        stem_pool: bool = True,
        classes: int = 0,
    ):
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
        self.out_channels = channels
        self.fc = nn.Linear(channels, classes) if classes else None

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        if self.stem_pool:
            x = nn.functional.max_pool2d(x, 3, 2, 1)
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        if self.fc is not None:
            return self.fc(x.mean(dim=(2, 3)))
        return x


class EZVSLPair(nn.Module):
    """The EZ-VSL family network; ``visual`` / ``audio`` are :class:`ResNet` keyword dicts."""

    def __init__(self, visual: dict, audio: dict, embed_dim: int):
        super().__init__()
        self.visual = ResNet(3, **visual)
        self.audio = ResNet(1, **audio)
        self.img_proj = nn.Conv2d(self.visual.out_channels, embed_dim, 1)
        self.aud_proj = nn.Linear(self.audio.out_channels, embed_dim)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S) -> (B, D, h, w)`` normalised visual map."""
        return l2_normalize(self.img_proj(self.visual(image)), dim=1)

    def encode_audio(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """``(B, 1, F, T) -> (B, D)`` normalised audio embedding."""
        return l2_normalize(self.aud_proj(self.audio(spectrogram).amax(dim=(2, 3))), dim=1)

    def forward(self, image, spectrogram):
        return pair_maps(self.encode_image(image), self.encode_audio(spectrogram))
