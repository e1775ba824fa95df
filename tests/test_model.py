"""The audio-visual network (docs/method.md): shapes, parity with a plain-PyTorch ResNet-18,
similarity maps, upsampling, and save/load."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import ops

from avloc.errors import DataError
from avloc.models import AudioVisualNet, all_pair_maps, pair_maps, upsample_maps
from avloc.models.io import load_network, save_network
from avloc.models.layers import kernel_hwio
from avloc.models.resnet import default_data_format, resnet
from avloc.models.torch_ref import ResNet

# ------------------------------------------------------------------------------------------
# output shapes and normalisation


def tiny_net(**visual) -> AudioVisualNet:
    return AudioVisualNet(
        embed_dim=8,
        visual=dict(width=4, **visual),
        audio=dict(width=4),
        name="avnet",
    )


def run(net, image, audio):
    out = net({"image": image, "audio": audio})
    return {k: ops.convert_to_numpy(v) for k, v in out.items()}


@pytest.mark.parametrize(
    "visual, size, side",
    [
        (dict(), 64, 2),  # stride 32, like 224 -> 7
        (dict(stem_pool=False), 112, 7),  # stride 16: the quickstart setting
        (dict(last_stride=1), 64, 4),  # LVS-style stride 16
    ],
)
def test_output_shapes_and_norms(visual, size, side):
    rng = np.random.default_rng(0)
    net = tiny_net(**visual)
    image = rng.standard_normal((2, size, size, 3)).astype("float32")
    audio = rng.standard_normal((2, 257, 200, 1)).astype("float32")
    out = run(net, image, audio)
    assert out["v_map"].shape == (2, side, side, 8)
    assert out["a_emb"].shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(out["v_map"], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["a_emb"], axis=-1), 1.0, atol=1e-5)


def test_encoders_are_per_sample_in_inference():
    """Inference mode: a sample's outputs do not depend on the rest of the batch."""
    rng = np.random.default_rng(1)
    net = tiny_net()
    image = rng.standard_normal((3, 64, 64, 3)).astype("float32")
    audio = rng.standard_normal((3, 65, 41, 1)).astype("float32")
    full = run(net, image, audio)
    one = run(net, image[1:2], audio[1:2])
    np.testing.assert_allclose(one["v_map"][0], full["v_map"][1], atol=1e-5)
    np.testing.assert_allclose(one["a_emb"][0], full["a_emb"][1], atol=1e-5)


# ------------------------------------------------------------------------------------------
# parity with the plain-PyTorch ResNet-18 (avloc.models.torch_ref, torchvision's layout)


def randomise_batch_norms(model, rng):
    """Non-trivial gamma, beta and moving statistics in every Keras BN layer."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c).astype("float32"),  # gamma
                    rng.normal(0.0, 0.2, c).astype("float32"),  # beta
                    rng.normal(0.0, 0.3, c).astype("float32"),  # moving_mean
                    rng.uniform(0.5, 2.0, c).astype("float32"),  # moving_variance
                ]
            )


def copy_conv(keras_layer, torch_conv):
    kernel = kernel_hwio(keras_layer)  # (kh, kw, in, out) whatever layout the layer keeps
    torch_conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).double()


def copy_bn(keras_layer, torch_bn):
    gamma, beta, mean, var = keras_layer.get_weights()
    torch_bn.weight.data = torch.from_numpy(gamma).double()
    torch_bn.bias.data = torch.from_numpy(beta).double()
    torch_bn.running_mean.data = torch.from_numpy(mean).double()
    torch_bn.running_var.data = torch.from_numpy(var).double()


def copy_weights(keras_model, torch_model):
    layer = keras_model.get_layer
    copy_conv(layer("conv1"), torch_model.conv1)
    copy_bn(layer("bn1"), torch_model.bn1)
    copied = 2
    for s in range(torch_model.stages):
        for i, block in enumerate(getattr(torch_model, f"layer{s + 1}")):
            prefix = f"layer{s + 1}_{i}"
            copy_conv(layer(f"{prefix}_conv1"), block.conv1)
            copy_bn(layer(f"{prefix}_bn1"), block.bn1)
            copy_conv(layer(f"{prefix}_conv2"), block.conv2)
            copy_bn(layer(f"{prefix}_bn2"), block.bn2)
            copied += 4
            if block.downsample is not None:
                copy_conv(layer(f"{prefix}_downsample_0"), block.downsample[0])
                copy_bn(layer(f"{prefix}_downsample_1"), block.downsample[1])
                copied += 2
    # every weighted Keras layer has a torch counterpart
    assert copied == sum(1 for lyr in keras_model.layers if lyr.weights)


@pytest.mark.parametrize(
    "in_channels, hw, kwargs",
    [
        (3, (64, 64), dict(width=4)),  # image trunk: 2x2 output
        (1, (65, 41), dict(width=4)),  # audio trunk, odd sizes
        (3, (37, 33), dict(width=2, stem_pool=False, last_stride=1)),
        (1, (45, 29), dict(width=2, blocks=(1, 2, 1))),
    ],
    ids=["image", "audio-odd", "no-pool-stride1", "short"],
)
def test_resnet_matches_plain_torch(in_channels, hw, kwargs):
    rng = np.random.default_rng(sum(hw))
    fmt = default_data_format()
    trunk = resnet(in_channels, name="trunk", data_format=fmt, **kwargs)
    randomise_batch_norms(trunk, rng)
    reference = ResNet(in_channels, **kwargs).double().eval()
    copy_weights(trunk, reference)

    x = rng.standard_normal((2, in_channels, *hw)).astype("float32")  # NCHW
    with torch.no_grad():
        want = reference(torch.from_numpy(x).double()).numpy()
    keras_in = x if fmt == "channels_first" else x.transpose(0, 2, 3, 1)
    got = ops.convert_to_numpy(trunk(keras_in, training=False))
    if fmt == "channels_last":
        got = got.transpose(0, 3, 1, 2)
    assert got.shape == want.shape
    assert np.abs(want).max() > 0.1  # a real signal, not a dead network
    assert np.abs(got - want).max() < 1e-4


def test_resnet_layer_names():
    trunk = resnet(3, width=2, name="trunk")
    names = {layer.name for layer in trunk.layers if layer.weights}
    expected = {"conv1", "bn1"}
    for s in range(1, 5):
        for i in range(2):
            expected |= {f"layer{s}_{i}_{p}" for p in ("conv1", "bn1", "conv2", "bn2")}
        if s > 1:
            expected |= {f"layer{s}_0_downsample_0", f"layer{s}_0_downsample_1"}
    assert names == expected


# ------------------------------------------------------------------------------------------
# similarity maps and upsampling


def test_pair_maps_and_all_pair_maps_match_einsum():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((3, 4, 5, 6)).astype("float32")
    a = rng.standard_normal((3, 6)).astype("float32")
    b = rng.standard_normal((7, 6)).astype("float32")
    got = ops.convert_to_numpy(pair_maps(ops.convert_to_tensor(v), ops.convert_to_tensor(a)))
    np.testing.assert_allclose(got, np.einsum("bhwd,bd->bhw", v, a), rtol=1e-5, atol=1e-5)
    got = ops.convert_to_numpy(all_pair_maps(ops.convert_to_tensor(v), ops.convert_to_tensor(b)))
    assert got.shape == (3, 7, 4, 5)
    np.testing.assert_allclose(got, np.einsum("nhwd,md->nmhw", v, b), rtol=1e-5, atol=1e-5)
    # the diagonal of all_pair_maps is pair_maps
    allp = ops.convert_to_numpy(all_pair_maps(ops.convert_to_tensor(v), ops.convert_to_tensor(a)))
    pairs = ops.convert_to_numpy(pair_maps(ops.convert_to_tensor(v), ops.convert_to_tensor(a)))
    np.testing.assert_allclose(allp[np.arange(3), np.arange(3)], pairs, atol=1e-6)


@pytest.mark.parametrize(
    "src, dst",
    [
        ((7, 7), (224, 224)),
        ((2, 2), (64, 64)),
        ((7, 5), (33, 20)),
        ((1, 3), (4, 9)),
        ((4, 4), (4, 4)),
    ],
)
def test_upsample_maps_matches_torch_align_corners(src, dst):
    rng = np.random.default_rng(3)
    maps = rng.uniform(-1, 1, (2, *src)).astype("float32")
    got = ops.convert_to_numpy(upsample_maps(ops.convert_to_tensor(maps), dst))
    want = F.interpolate(
        torch.from_numpy(maps)[:, None], size=dst, mode="bilinear", align_corners=True
    )[:, 0].numpy()
    assert got.shape == (2, *dst)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # aligned corners: the four corners are kept exactly
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        np.testing.assert_allclose(got[:, y, x], maps[:, y, x], atol=1e-6)


# ------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    net = tiny_net(stem_pool=False)
    image = rng.standard_normal((2, 48, 48, 3)).astype("float32")
    audio = rng.standard_normal((2, 65, 41, 1)).astype("float32")
    before = run(net, image, audio)
    path = save_network(net, tmp_path / "sub" / "net.keras")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["net.keras"]  # no temporary left behind
    loaded = load_network(path)
    assert isinstance(loaded, AudioVisualNet)
    assert loaded.embed_dim == 8 and loaded.visual_config["stem_pool"] is False
    after = run(loaded, image, audio)
    for key in ("v_map", "a_emb"):
        np.testing.assert_array_equal(after[key], before[key])


def _assert_one_line_data_error(path, *, contains=None):
    with pytest.raises(DataError) as info:
        load_network(path)
    message = str(info.value)
    assert path.name in message
    assert "\n" not in message
    if contains:
        assert contains in message


def test_load_network_rejects_bad_files(tmp_path):
    _assert_one_line_data_error(tmp_path / "missing.keras")
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    _assert_one_line_data_error(text)
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "a zip archive that is no Keras model")
    _assert_one_line_data_error(foreign)
    _assert_one_line_data_error(tmp_path)  # a directory is not a checkpoint file
