"""ResNet-18 feature extractors written with Keras layers (channels last).

``resnet(in_channels, width, blocks, ...)`` returns a functional ``keras.Model`` mapping
``(B, H, W, in_channels)`` float32 to the last stage's feature map ``(B, h, w, 8 * width)``.
With the defaults (width 64, blocks (2, 2, 2, 2), last stride 2) this is torchvision's
``resnet18`` without its average pool and classifier: a 224x224 image gives 7x7x512, a 257x200
spectrogram gives 9x7x512. ``last_stride=1`` keeps the last stage at stride 1 (14x14, LVS).

Padding is symmetric, as PyTorch's (Keras' ``same`` padding is asymmetric at stride 2), and part
of the convolution and pooling layers (:mod:`avloc.models.layers`, which also fuses batch norm on
the torch backend). Layer names
follow torchvision's state_dict (``conv1``, ``bn1``, ``layer1.0.conv1`` -> ``layer1_0_conv1``) so
checkpoint import is a name mapping.

Layout: ``data_format`` is chosen per backend by :func:`default_data_format`: channels-first on
torch (native NCHW kernels; torch 2.13's CPU oneDNN backward also crashes on the permuted
channels-last tensors Keras would pass it), channels-last on TensorFlow and JAX. Weights have the
same shapes in both layouts, so a model saved under one backend loads under another.

Initialisation: He-normal with fan_out for convolutions, batch-norm gamma ~ N(1, 0.02),
beta = 0; batch norm uses PyTorch's epsilon 1e-5 and momentum 0.1 (Keras momentum 0.9).
"""

from __future__ import annotations

import keras
from keras import layers

from avloc.models.layers import FusedBatchNorm, InplaceReLU, PaddedConv2D, PaddedMaxPool2D
from avloc.runtime.configure import check_width

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras convention: new = momentum * old + (1 - momentum) * batch


def default_data_format() -> str:
    """The fastest correct layout for the active Keras backend."""
    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"


def conv_init() -> keras.initializers.Initializer:
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def batch_norm(name: str, data_format: str) -> FusedBatchNorm:
    return FusedBatchNorm(
        axis=1 if data_format == "channels_first" else -1,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        beta_initializer="zeros",
        name=name,
    )


def conv(
    filters: int, kernel: int, stride: int, name: str, data_format: str, pad: int = 0
) -> PaddedConv2D:
    return PaddedConv2D(
        filters,
        kernel,
        pad=pad,
        strides=stride,
        use_bias=False,
        kernel_initializer=conv_init(),
        data_format=data_format,
        name=name,
    )


def padded_conv(x, filters: int, kernel: int, stride: int, name: str, data_format: str):
    """PyTorch's ``Conv2d(kernel, stride, padding=kernel // 2)``."""
    return conv(filters, kernel, stride, name, data_format, pad=kernel // 2)(x)


def basic_block(x, filters: int, stride: int, name: str, data_format: str):
    """torchvision BasicBlock: 3x3 conv-bn-relu, 3x3 conv-bn, identity or 1x1 downsample."""
    fmt = data_format
    channels = x.shape[1] if fmt == "channels_first" else x.shape[-1]
    shortcut = x
    y = padded_conv(x, filters, 3, stride, f"{name}_conv1", fmt)
    y = batch_norm(f"{name}_bn1", fmt)(y)
    y = InplaceReLU(name=f"{name}_relu1")(y)
    y = padded_conv(y, filters, 3, 1, f"{name}_conv2", fmt)
    y = batch_norm(f"{name}_bn2", fmt)(y)
    if stride != 1 or channels != filters:
        shortcut = conv(filters, 1, stride, f"{name}_downsample_0", fmt)(x)
        shortcut = batch_norm(f"{name}_downsample_1", fmt)(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return InplaceReLU(name=f"{name}_out")(y)


def resnet(
    in_channels: int,
    width: int = 64,
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    last_stride: int = 2,
    stem_pool: bool = True,
    name: str = "resnet18",
    data_format: str | None = None,
) -> keras.Model:
    """Build the ResNet trunk; spatial input size is left free (``None``).

    Input and output use ``data_format`` (default: :func:`default_data_format`).
    """
    # refused under kernels that compute this width wrong (avloc.runtime.configure first)
    check_width(width)
    fmt = data_format or default_data_format()
    shape = (in_channels, None, None) if fmt == "channels_first" else (None, None, in_channels)
    inputs = keras.Input(shape=shape, name=f"{name}_input")
    x = padded_conv(inputs, width, 7, 2, "conv1", fmt)
    x = batch_norm("bn1", fmt)(x)
    x = InplaceReLU(name="relu")(x)
    if stem_pool:
        # Zero padding is equivalent to PyTorch's -inf padding here: inputs are >= 0 after ReLU.
        x = PaddedMaxPool2D(3, strides=2, pad=1, data_format=fmt, name="maxpool")(x)
    for stage, count in enumerate(blocks):
        filters = width * 2**stage
        for index in range(count):
            if index == 0 and stage > 0:
                stride = last_stride if stage == len(blocks) - 1 else 2
            else:
                stride = 1
            x = basic_block(x, filters, stride, f"layer{stage + 1}_{index}", fmt)
    return keras.Model(inputs, x, name=name)
