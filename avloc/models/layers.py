"""Convolution, pooling, batch-norm and ReLU layers of the ResNet trunks, fused on torch.

Each layer is a subclass of the Keras layer it replaces, with the same weights in its files
(same names, shapes and dtypes) and the same arithmetic, so checkpoints, ``isinstance`` checks
and the torchvision name mapping are unchanged. What differs is how the torch backend runs them on
channels-first (NCHW) float tensors:

- :class:`Conv2D` (``PaddedConv2D``): a convolution with PyTorch's symmetric zero padding of
  ``pad`` pixels. On torch with channels-first input the kernel variable is kept in torch's
  ``(out, in, kh, kw)`` layout and the layer is one ``conv2d(..., padding=pad)`` call: no
  padded copy of the input, and no copy of the kernel into torch's layout in forward and of
  its gradient back in backward. Elsewhere (and channels-last) the kernel is Keras'
  ``(kh, kw, in, out)`` and the layer is an explicit ``ops.pad`` followed by the ``valid``
  convolution. Weight files always hold the Keras layout (``save_own_variables`` /
  ``load_own_variables`` transpose), so checkpoints move between backends unchanged; read or
  set a kernel whatever its layout with :func:`kernel_hwio` and :func:`assign_kernel_hwio`
  (``get_weights`` returns the variable as stored).
- :class:`MaxPooling2D` (``PaddedMaxPool2D``): max pooling over ``pad``-padded input; on torch
  one ``max_pool2d(..., padding=pad)`` (implicit -inf padding; the trunk only pools ReLU
  outputs, where zero padding gives the same result).
- :class:`BatchNormalization` (``FusedBatchNorm``): Keras ``BatchNormalization`` semantics
  (biased batch variance, ``moving = momentum * moving + (1 - momentum) * batch``, float32
  statistics for half-precision inputs); on torch one ``native_batch_norm`` kernel that
  normalises, scales and shifts and returns the batch moments, instead of Keras' chain of
  element-wise ops (about five passes over the activation forward and more backward). No masks,
  renorm or synchronised statistics: the trunks use none.
- :class:`ReLU` (``InplaceReLU``): on torch ``relu_`` on the (otherwise unused) input.

The classes carry the names of the Keras layers they replace because Keras' weight files name
each layer's variables after its class (``conv2d_3/vars``, ``batch_normalization_7/vars``): with
the same names, checkpoints written before these layers existed load unchanged. Import them as
the aliases ``PaddedConv2D``, ``PaddedMaxPool2D``, ``FusedBatchNorm`` and ``InplaceReLU``.

Shapes: inputs ``(B, C, H, W)`` (channels first) or ``(B, H, W, C)`` (channels last), float32 or
bfloat16/float16 under a mixed policy; outputs keep the input's layout.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def _torch_channels_first(data_format: str) -> bool:
    return keras.backend.backend() == "torch" and data_format == "channels_first"


OIHW_FROM_HWIO = (3, 2, 0, 1)  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
HWIO_FROM_OIHW = (2, 3, 1, 0)


class _TorchLayoutInitializer:
    """Draws a kernel with a Keras initializer in Keras' layout, returns it in torch's.

    The same values as the initializer gives the Keras-layout kernel (fan-in and fan-out are
    read from ``(kh, kw, in, out)``), transposed into a contiguous ``(out, in, kh, kw)`` tensor.
    """

    def __init__(self, keras_initializer):
        self.keras_initializer = keras_initializer

    def __call__(self, shape, dtype=None):
        from keras.src.backend.torch.core import convert_to_tensor

        hwio = tuple(shape[i] for i in HWIO_FROM_OIHW)
        value = convert_to_tensor(self.keras_initializer(hwio, dtype=dtype))
        return value.permute(*OIHW_FROM_HWIO).contiguous()


def _pad_widths(pad: int, data_format: str) -> list[list[int]]:
    spatial = [[pad, pad], [pad, pad]]
    return (
        [[0, 0], [0, 0], *spatial]
        if data_format == "channels_first"
        else [[0, 0], *spatial, [0, 0]]
    )


class _SymmetricPadding:
    """Shape and config of a layer that zero-pads its input by ``self.pad`` on every side."""

    pad: int
    data_format: str

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        for axis in axes:
            if shape[axis] is not None:
                shape[axis] += 2 * self.pad
        return super().compute_output_shape(tuple(shape))

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="avloc")
class Conv2D(_SymmetricPadding, layers.Conv2D):
    """``Conv2D`` over input zero-padded by ``pad`` pixels on every side (``padding="valid"``).

    ``kernel_layout`` (set when built): ``"oihw"`` where the kernel variable is kept in torch's
    layout (torch backend, channels first, no groups, constraint or LoRA), else ``"hwio"``.
    """

    def __init__(self, filters: int, kernel_size, pad: int = 0, **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(filters, kernel_size, **kwargs)
        self.pad = int(pad)
        self.kernel_layout = "hwio"

    def build(self, input_shape):
        torch_layout = (
            _torch_channels_first(self.data_format)
            and self.groups == 1
            and self.kernel_constraint is None
            and not self.lora_rank
        )
        self.kernel_layout = "oihw" if torch_layout else "hwio"
        super().build(input_shape)

    def add_weight(self, shape=None, initializer=None, name=None, **kwargs):
        if name == "kernel" and self.kernel_layout == "oihw":
            shape = tuple(shape[i] for i in OIHW_FROM_HWIO)
            initializer = _TorchLayoutInitializer(keras.initializers.get(initializer))
        return super().add_weight(shape=shape, initializer=initializer, name=name, **kwargs)

    def enable_lora(self, *args, **kwargs):
        if self.kernel_layout == "oihw":
            raise ValueError(f"{self.name}: LoRA needs the Keras kernel layout; pass lora_rank")
        return super().enable_lora(*args, **kwargs)

    def convolution_op(self, inputs, kernel):
        if self.kernel_layout == "oihw":
            import torch.nn.functional as F
            from keras.src.backend.torch.core import convert_to_tensor

            return F.conv2d(
                inputs,
                convert_to_tensor(kernel),
                stride=self.strides,
                padding=self.pad,
                dilation=self.dilation_rate,
            )
        if self.pad:
            inputs = ops.pad(inputs, _pad_widths(self.pad, self.data_format))
        return super().convolution_op(inputs, kernel)

    def save_own_variables(self, store):
        if self.kernel_layout != "oihw":
            return super().save_own_variables(store)
        store["0"] = kernel_hwio(self)
        if self.use_bias:
            store["1"] = self.bias

    def load_own_variables(self, store):
        if self.kernel_layout != "oihw":
            return super().load_own_variables(store)
        self._check_load_own_variables(store)
        assign_kernel_hwio(self, np.asarray(store["0"]))
        if self.use_bias:
            self.bias.assign(store["1"])


def kernel_hwio(layer) -> np.ndarray:
    """A built Keras conv layer's kernel as a ``(kh, kw, in, out)`` array, whatever its layout."""
    kernel = ops.convert_to_numpy(layer.kernel)
    if getattr(layer, "kernel_layout", "hwio") == "oihw":
        kernel = kernel.transpose(HWIO_FROM_OIHW)
    return np.ascontiguousarray(kernel)


def assign_kernel_hwio(layer, value) -> None:
    """Set a built Keras conv layer's kernel from a ``(kh, kw, in, out)`` array."""
    value = np.asarray(value)
    if getattr(layer, "kernel_layout", "hwio") == "oihw":
        value = np.ascontiguousarray(value.transpose(OIHW_FROM_HWIO))
    layer.kernel.assign(value)


@keras.saving.register_keras_serializable(package="avloc")
class MaxPooling2D(_SymmetricPadding, layers.MaxPooling2D):
    """``MaxPooling2D`` over input zero-padded by ``pad`` pixels (for non-negative inputs)."""

    def __init__(self, pool_size, strides=None, pad: int = 0, **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(pool_size, strides=strides, **kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        if self.pad and _torch_channels_first(self.data_format):
            import torch.nn.functional as F

            return F.max_pool2d(inputs, self.pool_size, self.strides, padding=self.pad)
        if self.pad:
            inputs = ops.pad(inputs, _pad_widths(self.pad, self.data_format))
        return super().call(inputs)


@keras.saving.register_keras_serializable(package="avloc")
class BatchNormalization(layers.BatchNormalization):
    """``BatchNormalization`` (no mask, renorm or sync) run as one fused kernel on torch."""

    def call(self, inputs, training=None, mask=None):
        fusable = (
            keras.backend.backend() == "torch"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
            and self.axis == 1
            and len(inputs.shape) == 4
        )
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        import torch
        from keras.src.backend.torch.core import convert_to_tensor

        x = convert_to_tensor(inputs)
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        gamma = convert_to_tensor(self.gamma).to(x.dtype)
        beta = convert_to_tensor(self.beta).to(x.dtype)
        if training and self.trainable:
            # Batch statistics (returned as mean and 1 / sqrt(biased var + eps)); no running
            # buffers are passed, so the moving averages are updated here with Keras' rule.
            outputs, mean, invstd = torch.native_batch_norm(
                x, gamma, beta, None, None, True, 0.0, self.epsilon
            )
            with torch.no_grad():
                variance = invstd.double().pow(-2).sub(self.epsilon).clamp_min(0).to(x.dtype)
                # Keras' rule, in place with Python scalars: no tensor made from host data
                m = self.momentum
                moving_mean, moving_variance = self.moving_mean.value, self.moving_variance.value
                moving_mean.mul_(m).add_(mean.detach().to(moving_mean.dtype) * (1.0 - m))
                moving_variance.mul_(m).add_(variance.to(moving_variance.dtype) * (1.0 - m))
        else:
            moving_mean = convert_to_tensor(self.moving_mean).to(x.dtype)
            moving_variance = convert_to_tensor(self.moving_variance).to(x.dtype)
            outputs = torch.nn.functional.batch_norm(
                x, moving_mean, moving_variance, gamma, beta, False, 0.0, self.epsilon
            )
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="avloc")
class ReLU(layers.ReLU):
    """Plain ``ReLU`` that overwrites its input on torch (``relu_``, torchvision's ``inplace``).

    Only for an input that nothing else reads: the trunk applies it to batch-norm outputs and
    residual sums, whose backward needs neither (torch's version counters would raise if one
    did). Saves allocating, first-touching and freeing one activation-sized buffer per ReLU.
    With ``max_value``, ``negative_slope`` or ``threshold``, or off torch, it is Keras' ReLU.
    """

    def call(self, inputs):
        plain = self.max_value is None and not self.negative_slope and not self.threshold
        if keras.backend.backend() == "torch" and plain:
            import torch
            from keras.src.backend.torch.core import convert_to_tensor

            return torch.relu_(convert_to_tensor(inputs))
        return super().call(inputs)


PaddedConv2D = Conv2D
PaddedMaxPool2D = MaxPooling2D
FusedBatchNorm = BatchNormalization
InplaceReLU = ReLU
