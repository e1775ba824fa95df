"""The trunk's padded / fused layers equal the stock Keras layers they replace.

Reference: ``ZeroPadding2D`` + ``Conv2D(padding="valid")``, ``ZeroPadding2D`` +
``MaxPooling2D`` and ``BatchNormalization`` with the same weights; checked forward, backward
(input and weight gradients) and for the moving statistics, in training and inference mode, in
the layout the backend's trunk uses and in the other one; the whole trunk against one built from
stock layers, forward and backward.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from avloc.models.layers import (
    HWIO_FROM_OIHW,
    FusedBatchNorm,
    PaddedConv2D,
    PaddedMaxPool2D,
    assign_kernel_hwio,
    kernel_hwio,
)
from avloc.models.resnet import BN_EPSILON, BN_MOMENTUM

FORMATS = ("channels_first", "channels_last")
# TensorFlow's CPU convolution and pooling kernels are channels-last only
CONV_FORMATS = FORMATS if keras.backend.backend() == "torch" else ("channels_last",)


def gradients_of(fn, x: np.ndarray, variables) -> list[np.ndarray]:
    """Gradients of ``sum(fn(x) * r)`` (a fixed random ``r``) w.r.t. ``x`` and ``variables``."""
    backend = keras.backend.backend()
    shape = keras.ops.convert_to_numpy(fn(x)).shape
    read_out = np.random.default_rng(9).normal(size=shape).astype("float32")
    if backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        out = (fn(t) * torch.tensor(read_out)).sum()
        grads = torch.autograd.grad(out, [t, *(v.value for v in variables)])
        return [g.detach().numpy() for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = tf.reduce_sum(fn(t) * read_out)
        grads = tape.gradient(out, [t, *(v.value for v in variables)])
        return [g.numpy() for g in grads]
    pytest.skip(f"no gradient helper for {backend}")


def _input(fmt: str, seed: int = 0, channels: int = 5, size: tuple[int, int] = (11, 9)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, channels, *size)).astype("float32")
    return x if fmt == "channels_first" else np.moveaxis(x, 1, -1).copy()


def _pair_conv(fmt: str, kernel: int, stride: int):
    pad = kernel // 2
    fused = PaddedConv2D(4, kernel, pad=pad, strides=stride, use_bias=False, data_format=fmt)
    conv = layers.Conv2D(
        4, kernel, strides=stride, padding="valid", use_bias=False, data_format=fmt
    )
    padding = layers.ZeroPadding2D(pad, data_format=fmt)
    return fused, lambda x: conv(padding(x)), conv


@pytest.mark.parametrize("fmt", CONV_FORMATS)
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (7, 2), (1, 2)])
def test_padded_conv_matches_zero_padding_then_valid_conv(fmt, kernel, stride):
    x = _input(fmt)
    fused, reference, conv = _pair_conv(fmt, kernel, stride)
    fused(x)
    reference(x)
    assign_kernel_hwio(conv, kernel_hwio(fused))
    y_fused = keras.ops.convert_to_numpy(fused(x))
    y_ref = keras.ops.convert_to_numpy(reference(x))
    assert y_fused.shape == y_ref.shape
    assert tuple(fused.compute_output_shape(x.shape)) == y_fused.shape
    np.testing.assert_allclose(y_fused, y_ref, rtol=1e-5, atol=1e-5)

    grads_fused = gradients_of(lambda t: fused(t), x, [fused.kernel])
    grads_ref = gradients_of(reference, x, [conv.kernel])
    if fused.kernel_layout == "oihw":  # its gradient is in torch's layout too
        grads_fused[1] = grads_fused[1].transpose(HWIO_FROM_OIHW)
    for a, b in zip(grads_fused, grads_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", CONV_FORMATS)
def test_padded_max_pool_matches_zero_padding_then_pool(fmt):
    x = np.abs(_input(fmt, seed=1))  # the trunk pools ReLU outputs
    fused = PaddedMaxPool2D(3, strides=2, pad=1, data_format=fmt)
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", data_format=fmt)
    padding = layers.ZeroPadding2D(1, data_format=fmt)
    y_fused = keras.ops.convert_to_numpy(fused(x))
    y_ref = keras.ops.convert_to_numpy(pool(padding(x)))
    assert tuple(fused.compute_output_shape(x.shape)) == y_fused.shape
    np.testing.assert_array_equal(y_fused, y_ref)


def _pair_bn(fmt: str, channels: int):
    axis = 1 if fmt == "channels_first" else -1
    kwargs = dict(axis=axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    fused, stock = FusedBatchNorm(**kwargs), layers.BatchNormalization(**kwargs)
    rng = np.random.default_rng(2)
    shape = [3, channels, 4, 4] if fmt == "channels_first" else [3, 4, 4, channels]
    fused.build(tuple(shape))
    stock.build(tuple(shape))
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        value = rng.uniform(0.5, 1.5, size=(channels,)).astype("float32")
        getattr(fused, name).assign(value)
        getattr(stock, name).assign(value)
    return fused, stock


@pytest.mark.parametrize("fmt", FORMATS)
def test_fused_batch_norm_matches_keras_batch_norm(fmt):
    x = _input(fmt, seed=3) * 3.0 + 2.0  # off-centre, so the moments matter
    fused, stock = _pair_bn(fmt, channels=5)
    for training in (True, False):
        y_fused = keras.ops.convert_to_numpy(fused(x, training=training))
        y_stock = keras.ops.convert_to_numpy(stock(x, training=training))
        np.testing.assert_allclose(y_fused, y_stock, rtol=1e-4, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):  # updated once, by the training call
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(getattr(fused, name)),
            keras.ops.convert_to_numpy(getattr(stock, name)),
            rtol=1e-5,
        )
    # gradients in training mode (the fused kernel's backward); moving statistics move again
    # in both layers, identically
    grads_fused = gradients_of(lambda t: fused(t, training=True), x, [fused.gamma, fused.beta])
    grads_stock = gradients_of(lambda t: stock(t, training=True), x, [stock.gamma, stock.beta])
    for a, b in zip(grads_fused, grads_stock, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_fused_batch_norm_moving_update_is_kerass_rule():
    fmt = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    axis = 1 if fmt == "channels_first" else -1
    x = _input(fmt, seed=4) * 2.0 + 1.0
    bn = FusedBatchNorm(axis=axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    bn(x, training=True)
    axes = (0, 2, 3) if fmt == "channels_first" else (0, 1, 2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), 0.1 * x.mean(axis=axes), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        0.9 + 0.1 * x.var(axis=axes),  # biased variance, as Keras
        rtol=1e-5,
    )


def stock_trunk(in_channels: int, width: int, blocks: tuple[int, ...], fmt: str) -> keras.Model:
    """The ResNet trunk as avloc built it before the fused layers: stock Keras layers only."""

    def bn(name):
        return layers.BatchNormalization(
            axis=1 if fmt == "channels_first" else -1,
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            name=name,
        )

    def conv(x, filters, kernel, stride, name):
        if kernel // 2:
            x = layers.ZeroPadding2D(kernel // 2, data_format=fmt, name=f"{name}_pad")(x)
        return layers.Conv2D(
            filters, kernel, strides=stride, use_bias=False, data_format=fmt, name=name
        )(x)

    shape = (in_channels, None, None) if fmt == "channels_first" else (None, None, in_channels)
    inputs = keras.Input(shape=shape)
    x = layers.ReLU(name="relu")(bn("bn1")(conv(inputs, width, 7, 2, "conv1")))
    x = layers.ZeroPadding2D(1, data_format=fmt, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, data_format=fmt, name="maxpool")(x)
    for stage, count in enumerate(blocks):
        filters = width * 2**stage
        for index in range(count):
            stride = 2 if index == 0 and stage > 0 else 1
            name = f"layer{stage + 1}_{index}"
            shortcut = x
            y = layers.ReLU()(bn(f"{name}_bn1")(conv(x, filters, 3, stride, f"{name}_conv1")))
            y = bn(f"{name}_bn2")(conv(y, filters, 3, 1, f"{name}_conv2"))
            if stride != 1:
                shortcut = bn(f"{name}_downsample_1")(
                    conv(x, filters, 1, stride, f"{name}_downsample_0")
                )
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    return keras.Model(inputs, x)


def test_trunk_loads_weights_saved_by_the_stock_layer_trunk_and_computes_the_same(tmp_path):
    """Checkpoints written before the fused layers load unchanged and give the same maps."""
    from avloc.models.resnet import default_data_format, resnet

    fmt = default_data_format()
    blocks = (1, 1)
    stock = stock_trunk(3, width=4, blocks=blocks, fmt=fmt)
    rng = np.random.default_rng(6)
    for variable in stock.weights:  # non-trivial batch-norm statistics and affine
        if "moving" in variable.path or "gamma" in variable.path or "beta" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, size=variable.shape).astype("float32"))
    stock.save_weights(tmp_path / "stock.weights.h5")
    fused = resnet(3, width=4, blocks=blocks, data_format=fmt)
    fused.load_weights(tmp_path / "stock.weights.h5")
    assert len(fused.weights) == len(stock.weights)
    fused_convs = [layer for layer in fused.layers if isinstance(layer, PaddedConv2D)]
    stock_convs = [layer for layer in stock.layers if isinstance(layer, layers.Conv2D)]
    assert [c.name for c in fused_convs] == [c.name for c in stock_convs]
    for a, b in zip(fused_convs, stock_convs, strict=True):
        np.testing.assert_array_equal(kernel_hwio(a), kernel_hwio(b), err_msg=a.name)
    for a, b in zip(fused.weights, stock.weights, strict=True):
        if "kernel" not in a.path:
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path
            )
    image = _input(fmt, seed=5, channels=3, size=(40, 36))
    for training in (False, True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(fused(image, training=training)),
            keras.ops.convert_to_numpy(stock(image, training=training)),
            rtol=1e-4,
            atol=1e-4,
        )
    # Backward through every layer (in-place ReLU included): input and weight gradients.
    grads_fused = gradients_of(lambda t: fused(t, training=True), image, fused.trainable_weights)
    grads_stock = gradients_of(lambda t: stock(t, training=True), image, stock.trainable_weights)
    names = ["input", *(v.path for v in stock.trainable_weights)]
    for a, b, name in zip(grads_fused, grads_stock, names, strict=True):
        if a.shape != b.shape:  # a torch-layout kernel's gradient
            a = a.transpose(HWIO_FROM_OIHW)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=name)


def test_kernel_layout_is_torch_on_torch_channels_first_and_files_hold_keras_layout(tmp_path):
    """The torch layout stays inside the process: weight files and helpers speak Keras'."""
    fmt = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    x = _input(fmt)
    conv = PaddedConv2D(6, (3, 5), pad=1, use_bias=True, data_format=fmt)
    conv(x)
    torch_layout = keras.backend.backend() == "torch"
    assert conv.kernel_layout == ("oihw" if torch_layout else "hwio")
    assert tuple(conv.kernel.shape) == ((6, 5, 3, 5) if torch_layout else (3, 5, 5, 6))
    rng = np.random.default_rng(7)
    hwio = rng.normal(size=(3, 5, 5, 6)).astype("float32")
    assign_kernel_hwio(conv, hwio)
    conv.bias.assign(rng.normal(size=6).astype("float32"))
    np.testing.assert_array_equal(kernel_hwio(conv), hwio)
    if torch_layout:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(conv.kernel), hwio.transpose(3, 2, 0, 1)
        )
        assert conv.kernel.value.is_contiguous()

    # A stock Keras conv (always Keras layout) loads the file and computes the same map.
    model = keras.Sequential([keras.Input(x.shape[1:]), conv])
    model.save_weights(tmp_path / "conv.weights.h5")
    stock = layers.Conv2D(6, (3, 5), padding="valid", data_format=fmt, name=conv.name)
    stock_model = keras.Sequential([keras.Input(x.shape[1:]), layers.ZeroPadding2D(1, fmt), stock])
    import h5py

    with h5py.File(tmp_path / "conv.weights.h5") as f:
        (group,) = [g for name, g in f["layers"].items() if "conv" in name]
        np.testing.assert_array_equal(group["vars"]["0"][()], hwio)
        stock.kernel.assign(group["vars"]["0"][()])
        stock.bias.assign(group["vars"]["1"][()])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stock_model(x)),
        keras.ops.convert_to_numpy(conv(x)),
        rtol=1e-5,
        atol=1e-5,
    )
    reloaded = PaddedConv2D(6, (3, 5), pad=1, use_bias=True, data_format=fmt)
    reloaded_model = keras.Sequential([keras.Input(x.shape[1:]), reloaded])
    reloaded_model.load_weights(tmp_path / "conv.weights.h5")
    np.testing.assert_array_equal(kernel_hwio(reloaded), hwio)


def test_torch_layout_kernel_is_the_transposed_keras_initialisation():
    """Fan-in / fan-out come from the Keras shape: the same seed gives the same weights."""
    fmt = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    init = keras.initializers.HeNormal(seed=3)
    conv = PaddedConv2D(8, 3, pad=1, data_format=fmt, kernel_initializer=init)
    conv(_input(fmt))
    want = keras.initializers.HeNormal(seed=3)((3, 3, 5, 8))
    np.testing.assert_allclose(kernel_hwio(conv), keras.ops.convert_to_numpy(want), rtol=1e-6)
