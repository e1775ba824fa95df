"""Importing PyTorch weights: published checkpoints (EZ-VSL family, SLAVC, LVS) and torchvision's
ImageNet ResNet-18, checked against plain-PyTorch references written with the published
state_dict key names; strict key accounting; safe loading; ``model.init``; the CLI."""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import ops
from torch import nn
from typer.testing import CliRunner

from avloc.config import recipe_from_dict
from avloc.errors import DataError, RecipeError
from avloc.models import all_pair_maps, build_network
from avloc.models.import_torch import PUBLISHED_INPUTS, import_checkpoint, load_state_dict
from avloc.models.io import load_network
from avloc.models.layers import kernel_hwio

ROOT = Path(__file__).resolve().parents[1]
V_WIDTH, A_WIDTH, DIM = 8, 4, 16  # tiny EZ-VSL: visual width 8, audio width 4, D = 16

# ------------------------------------------------------------------------------------------
# plain-PyTorch references with the published key names (torch only)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv1/bn1/conv2/bn2 and downsample.0/.1."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout; ``forward`` is the trunk (layer4 output, no pooling).

    ``classes`` adds torchvision's ``fc``; ``lvs_stems`` gives the LVS ResNet's three stems
    (``conv1_a`` for audio, ``conv1`` for images, ``conv1_flow``) and ``modal`` picks one.
    """

    def __init__(
        self,
        in_channels=3,
        width=8,
        last_stride=2,
        classes=0,
        lvs_stems=False,
        modal="vision",
    ):
        super().__init__()
        self.modal = modal
        if lvs_stems:
            self.conv1_a = nn.Conv2d(1, width, 7, 2, 3, bias=False)
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.conv1_flow = nn.Conv2d(6, width, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for stage in range(4):
            cout = width * 2**stage
            stride = 1 if stage == 0 else (last_stride if stage == 3 else 2)
            blocks = [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            cin = cout
        if classes:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        stem = self.conv1_a if self.modal == "audio" else self.conv1
        x = self.maxpool(self.relu(self.bn1(stem(x))))
        for stage in range(1, 5):
            x = getattr(self, f"layer{stage}")(x)
        return x


def audio_trunk(width=A_WIDTH):
    """EZ-VSL's audnet: torchvision resnet18 with a 1-channel conv1 (fc and avgpool removed)."""
    return ResNet18(1, width)


class EZVSL(nn.Module):
    """EZ-VSL's model.py: imgnet, img_proj (1x1 conv), audnet (max-pooled), aud_proj."""

    def __init__(self, v_width=V_WIDTH, a_width=A_WIDTH, dim=DIM):
        super().__init__()
        self.imgnet = ResNet18(3, v_width)
        self.img_proj = nn.Conv2d(8 * v_width, dim, kernel_size=(1, 1))
        self.audnet = audio_trunk(a_width)
        self.aud_proj = nn.Linear(8 * a_width, dim)

    def forward(self, image, audio):
        img = F.normalize(self.img_proj(self.imgnet(image)), dim=1)
        aud = F.adaptive_max_pool2d(self.audnet(audio), 1).flatten(1)
        return img, F.normalize(self.aud_proj(aud), dim=1)


class SLAVC(nn.Module):
    """SLAVC's model.py: two projection pairs, and momentum copies of everything."""

    def __init__(self, v_width=V_WIDTH, a_width=A_WIDTH, dim=DIM):
        super().__init__()
        for pre in ("", "momentum_"):
            setattr(self, f"{pre}imgnet", ResNet18(3, v_width))
            setattr(self, f"{pre}audnet", audio_trunk(a_width))
            for head in (1, 2):
                setattr(self, f"{pre}img_proj{head}", nn.Conv2d(8 * v_width, dim, (1, 1)))
                setattr(self, f"{pre}aud_proj{head}", nn.Linear(8 * a_width, dim))

    def branch(self, image, audio, head, momentum):
        pre = "momentum_" if momentum else ""
        img = getattr(self, f"{pre}img_proj{head}")(getattr(self, f"{pre}imgnet")(image))
        aud = F.adaptive_max_pool2d(getattr(self, f"{pre}audnet")(audio), 1).flatten(1)
        aud = getattr(self, f"{pre}aud_proj{head}")(aud)
        return F.normalize(img, dim=1), F.normalize(aud, dim=1)


class LVS(nn.Module):
    """LVS' AVENet: imgnet (last stage stride 1) and audnet (conv1_a stem), no projections."""

    def __init__(self, width=4):
        super().__init__()
        self.imgnet = ResNet18(width=width, last_stride=1, classes=10, lvs_stems=True)
        self.audnet = ResNet18(width=width, classes=10, lvs_stems=True, modal="audio")
        self.avgpool = nn.AdaptiveMaxPool2d((1, 1))  # the published (misnamed) max pool

    def forward(self, image, audio):
        img = F.normalize(self.imgnet(image), dim=1)
        aud = self.avgpool(self.audnet(audio)).flatten(1)
        return img, F.normalize(aud, dim=1)


class SSLTIE(LVS):
    """SSL-TIE's AVENet: LVS's network plus layers its map does not use (published names)."""

    def __init__(self, width=4):
        super().__init__(width)
        self.vision_fc1 = nn.Conv2d(16 * width, 8 * width, kernel_size=(1, 1))
        self.conv3 = nn.Conv2d(1, 1, 1)
        self.norm3 = nn.BatchNorm2d(1)


class SSLAlign(LVS):
    """An SSL-Align-like checkpoint: LVS's network plus heads its evaluators never load."""

    def __init__(self, width=4):
        super().__init__(width)
        self.projection_v = nn.Conv2d(16 * width, 8 * width, kernel_size=(1, 1))
        self.projection_a = nn.Linear(16 * width, 8 * width)


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and non-trivial batch-norm statistics everywhere; eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(123)
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.normal_(0.0, (2.0 / module.weight[0].numel()) ** 0.5)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
    return model.eval()


def save_published(model: nn.Module, path: Path, key: str = "model") -> Path:
    """As the published training scripts do: DDP ``module.`` prefixes inside a wrapper dict."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({key: state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}, path)
    return path


def inputs(batch=2, size=64, spec=(257, 100), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((batch, 3, size, size)).astype("float32")
    audio = rng.standard_normal((batch, 1, *spec)).astype("float32")
    return image, audio


def reference(model: nn.Module, image, audio, method="forward", *args):
    """Reference outputs in float64: ``v_map (B, h, w, D)``, ``a_emb (B, D)``, all-pair maps."""
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        x, y = torch.from_numpy(image).double(), torch.from_numpy(audio).double()
        img, aud = getattr(ref, method)(x, y, *args)
    maps = torch.einsum("nchw,mc->nmhw", img, aud).numpy()
    return img.numpy().transpose(0, 2, 3, 1), aud.numpy(), maps


def keras_outputs(net, image, audio):
    out = net(
        {"image": image.transpose(0, 2, 3, 1), "audio": audio.transpose(0, 2, 3, 1)},
        training=False,
    )
    maps = all_pair_maps(out["v_map"], out["a_emb"])
    return (
        ops.convert_to_numpy(out["v_map"]),
        ops.convert_to_numpy(out["a_emb"]),
        ops.convert_to_numpy(maps),
    )


def assert_parity(net, want, image, audio):
    got = keras_outputs(net, image, audio)
    for name, g, w in zip(("v_map", "a_emb", "maps"), got, want, strict=True):
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert np.abs(g - w).max() < 1e-4, (name, np.abs(g - w).max())
    maps = want[2]
    assert np.ptp(maps) > 0.1  # a real signal: the maps vary over pairs and locations


# ------------------------------------------------------------------------------------------
# parity: save -> import -> same embeddings and similarity maps


@pytest.fixture(scope="module")
def ezvsl_model():
    return randomise(EZVSL(), seed=1)


@pytest.fixture(scope="module")
def ezvsl_file(ezvsl_model, tmp_path_factory):
    return save_published(ezvsl_model, tmp_path_factory.mktemp("ezvsl") / "best.pth")


@pytest.mark.parametrize("arch", ["ezvsl", "fnac", "marginnce"])
def test_ezvsl_family_matches_reference(arch, ezvsl_model, ezvsl_file, tmp_path):
    image, audio = inputs()
    want = reference(ezvsl_model, image, audio)
    net, report = import_checkpoint(ezvsl_file, arch, tmp_path / "model.keras")
    assert want[0].shape == (2, 2, 2, DIM)  # 64 px -> 2x2 maps (7x7 at 224)
    assert_parity(net, want, image, audio)
    # every tensor of the state_dict was used, none merely ignored
    state = load_state_dict(ezvsl_file)
    tensors = {k for k in state if not k.endswith("num_batches_tracked")}
    assert set(report.used) == tensors and report.ignored == []
    assert report.config["embed_dim"] == DIM
    assert report.config["visual"]["width"] == V_WIDTH
    assert report.config["audio"]["width"] == A_WIDTH
    # the saved file loads and gives the same outputs; published inputs, not calibrated
    loaded = load_network(tmp_path / "model.keras")
    assert (
        loaded.inputs == {**PUBLISHED_INPUTS, "published_as": arch} and loaded.calibration is None
    )
    assert loaded.arch == "ezvsl"  # the architecture its weights fill, beside the published name
    assert_parity(loaded, want, image, audio)


@pytest.mark.parametrize("head, momentum", [(1, False), (2, True)])
def test_slavc_branch_matches_reference(head, momentum, tmp_path):
    model = randomise(SLAVC(), seed=2)
    path = save_published(model, tmp_path / "slavc.pth")
    image, audio = inputs(seed=2)
    want = reference(model, image, audio, "branch", head, momentum)
    net, report = import_checkpoint(path, "slavc", head=head, momentum=momentum)
    assert_parity(net, want, image, audio)
    other = 3 - head
    pre = "momentum_" if momentum else ""
    unused = "" if momentum else "momentum_"
    assert f"{pre}img_proj{other}.weight" in report.ignored
    assert f"{unused}imgnet.conv1.weight" in report.ignored
    assert not set(report.used) & set(report.ignored)
    assert report.notes  # says that SLAVC's own map averages both heads
    # the other choice gives different maps (the branches really are distinct)
    other_net, _ = import_checkpoint(path, "slavc", head=other, momentum=not momentum)
    assert np.abs(keras_outputs(other_net, image, audio)[2] - want[2]).max() > 1e-2


@pytest.mark.parametrize("momentum", [False, True])
def test_slavc_exact_map_is_the_mean_of_both_heads(momentum, tmp_path):
    """SLAVC's test map, ``(S1 + S2) / 2`` from its two projection pairs, written out here."""
    model = randomise(SLAVC(), seed=7)
    path = save_published(model, tmp_path / "slavc.pth")
    image, audio = inputs(seed=7)
    heads = [reference(model, image, audio, "branch", h, momentum) for h in (1, 2)]
    want_maps = (heads[0][2] + heads[1][2]) / 2
    net, report = import_checkpoint(path, "slavc", tmp_path / "slavc.keras", momentum=momentum)
    assert net.heads == 2 and not report.notes
    pre, unused = ("momentum_", "") if momentum else ("", "momentum_")
    assert {f"{pre}img_proj2.weight", f"{pre}aud_proj1.bias"} <= set(report.used)
    assert f"{unused}img_proj1.weight" in report.ignored
    for candidate in (net, load_network(tmp_path / "slavc.keras")):
        v, a, maps = keras_outputs(candidate, image, audio)
        assert np.abs(maps - want_maps).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-5)  # unit vectors
        np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, atol=1e-5)
    assert np.ptp(want_maps) > 0.1
    assert load_network(tmp_path / "slavc.keras").arch == "ezvsl"  # two heads, recorded too
    # detected from the keys, and the same network
    auto, _ = import_checkpoint(path, None)
    assert auto.heads == 2


def test_lvs_matches_reference(tmp_path):
    model = randomise(LVS(width=4), seed=3)
    path = save_published(model, tmp_path / "lvs.pth.tar", key="model_state_dict")
    image, audio = inputs(seed=3)
    want = reference(model, image, audio)
    assert want[0].shape == (2, 4, 4, 32)  # last stage at stride 1: 14x14 at 224
    net, report = import_checkpoint(path, "lvs", tmp_path / "lvs.keras")
    assert not net.projection and net.embed_dim == 32
    assert_parity(net, want, image, audio)
    assert "audnet.conv1_a.weight" in report.used
    assert {
        "imgnet.conv1_a.weight",
        "imgnet.conv1_flow.weight",
        "imgnet.fc.weight",
        "audnet.conv1.weight",
        "audnet.fc.bias",
    } <= set(report.ignored)
    assert_parity(load_network(tmp_path / "lvs.keras"), want, image, audio)


def test_ssltie_matches_reference_and_records_its_front_end(tmp_path):
    model = randomise(SSLTIE(width=4), seed=5)
    path = save_published(model, tmp_path / "ssltie.pth.tar", key="model_state_dict")
    image, audio = inputs(seed=5)
    want = reference(model, image, audio)
    net, report = import_checkpoint(path, "ssltie", tmp_path / "ssltie.keras")
    assert_parity(net, want, image, audio)
    assert {"vision_fc1.weight", "conv3.bias", "norm3.running_var"} <= set(report.ignored)
    loaded = load_network(tmp_path / "ssltie.keras")
    assert loaded.inputs["audio_frontend"] == "mel_db" and loaded.inputs["clip_seconds"] == 10.0
    assert_parity(loaded, want, image, audio)


def test_sslalign_matches_reference_and_records_its_front_end(tmp_path):
    from avloc.inputs.contract import InputContract

    model = randomise(SSLAlign(width=4), seed=7)
    path = tmp_path / "ours_sup.pth.tar"  # SSL-Align's: model_state_dict without module.
    torch.save({"model_state_dict": model.state_dict(), "epoch": 20}, path)
    image, audio = inputs(seed=7)
    want = reference(model, image, audio)
    net, report = import_checkpoint(path, None, tmp_path / "sslalign.keras")
    assert report.arch == "sslalign"
    assert_parity(net, want, image, audio)
    assert {"projection_v.weight", "projection_a.bias"} <= set(report.ignored)
    assert "audnet.conv1_a.weight" in report.used
    loaded = load_network(tmp_path / "sslalign.keras")
    assert loaded.inputs["stft_hop"] == 159 and loaded.inputs["clip_seconds"] == 3.0
    assert loaded.inputs["published_as"] == "sslalign" and loaded.arch == "lvs"
    contract = InputContract(loaded.inputs)
    noise = np.random.default_rng(0).normal(0, 0.1, 80000).astype(np.float32)
    spec = contract.spectrogram(noise)
    assert spec.shape == (257, 299)  # 3 s every 159 samples
    want_spec = scipy_log_spectrogram(contract.clip_samples, noise, noverlap=353)
    np.testing.assert_allclose(spec, want_spec, atol=1e-4)
    assert_parity(loaded, want, image, audio)
    # a trunk key is still required, and named when missing
    state = dict(model.state_dict())
    del state["imgnet.layer1.0.conv1.weight"]
    message = _import_error(state, tmp_path, arch="sslalign")
    assert "imgnet.layer1.0.conv1.weight" in message


class RCGradModel(nn.Module):
    """RCGrad's two encoders with its published names (``models.py``, ``modules/resnet.py``)."""

    def __init__(self, width=4):
        super().__init__()
        self.image_encoder = ResNet18(width=width, last_stride=1, classes=10, lvs_stems=True)
        self.audio_encoder = ResNet18(1, width)  # ResNetSpec: one channel, average-pooled
        self.audio_encoder.spectrogram = nn.Module()  # torchaudio.transforms.Spectrogram
        self.audio_encoder.spectrogram.register_buffer("window", torch.hann_window(512))


def gradcam_reference(model, image, audio):
    """RCGrad's Grad-CAM (``GradCAM`` on ``image_encoder.layer4[-1]``, ``outputs.backward(a)``)
    for every image x audio pair, before its ReLU: ``(N, M, h, w)``, float64, by autograd."""
    ref = copy.deepcopy(model).double().eval()
    x, y = torch.from_numpy(image).double(), torch.from_numpy(audio).double()
    with torch.no_grad():
        a = F.adaptive_avg_pool2d(ref.audio_encoder(y), 1).flatten(1)
    maps = []
    for n in range(len(x)):
        row = []
        for m in range(len(a)):
            with torch.no_grad():
                feats = ref.image_encoder(x[n : n + 1])  # the target layer's activations
            feats.requires_grad_(True)
            output = F.adaptive_avg_pool2d(feats, 1).flatten(1)  # the image encoder's output
            output.backward(a[m : m + 1])
            weights = feats.grad.mean(dim=(2, 3))  # GradCAM.get_cam_weights
            row.append((weights[:, :, None, None] * feats).sum(1)[0].detach().numpy())
        maps.append(row)
    return np.asarray(maps)


def test_rcgrad_maps_are_its_gradcam_maps(tmp_path):
    from avloc.inputs.contract import InputContract

    model = randomise(RCGradModel(width=4), seed=9)
    path = tmp_path / "rc_grad.pt"
    torch.save(model.state_dict(), path)  # RCGrad's release: a flat state_dict
    image, audio = inputs(seed=9)
    want = gradcam_reference(model, image, audio)
    net, report = import_checkpoint(path, None, tmp_path / "rcgrad.keras")
    assert report.arch == "rcgrad"
    assert {"image_encoder.fc.weight", "image_encoder.conv1_a.weight",
            "audio_encoder.spectrogram.window"} <= set(report.ignored)  # fmt: skip
    for candidate in (net, load_network(tmp_path / "rcgrad.keras")):
        got = keras_outputs(candidate, image, audio)[2]
        assert got.shape == want.shape == (2, 2, 4, 4)
        scale = np.abs(want).max()
        assert scale > 0.01 and np.abs(got - want).max() < 1e-5 * max(scale, 1.0)
    loaded = load_network(tmp_path / "rcgrad.keras")
    assert loaded.inputs["image_norm"] == "clip" and loaded.arch == "lvs"
    contract = InputContract(loaded.inputs)
    pixel = np.full((8, 8, 3), 128, np.uint8)
    clip_stats = (np.array([0.48145466, 0.4578275, 0.40821073]),
                  np.array([0.26862954, 0.26130258, 0.27577711]))  # fmt: skip
    want_pixel = (128 / 255 - clip_stats[0]) / clip_stats[1]
    np.testing.assert_allclose(contract.images([pixel])[0, 0, 0], want_pixel, atol=1e-5)
    wave = np.random.default_rng(9).normal(0, 0.1, 160000).astype(np.float32)
    np.testing.assert_allclose(contract.spectrogram(wave), rcgrad_spectrogram(wave), atol=1e-4)


def rcgrad_spectrogram(wave):
    """ResNetSpec.forward's front end: torchaudio Spectrogram(512, hop 353), log, standardise."""
    x = torch.from_numpy(np.asarray(wave, np.float64))
    window = torch.hann_window(512, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, 512, hop_length=353, window=window, center=True, pad_mode="reflect",
                      return_complex=True).abs().pow(2)  # fmt: skip
    spec = torch.log(spec + 1e-7)
    return ((spec - torch.mean(spec)) / (torch.std(spec) + 1e-9)).numpy()


def scipy_log_spectrogram(samples, wave, noverlap):
    """avloc's centred clip of ``wave``, through scipy's spectrogram, ``log(S + 1e-7) / 12``."""
    import scipy.signal

    start = (len(wave) - samples) // 2
    clip = np.asarray(wave[start : start + samples], np.float64)
    spec = scipy.signal.spectrogram(clip, 16000, nperseg=512, noverlap=noverlap)[2]
    return np.log(spec + 1e-7) / 12


@pytest.mark.parametrize(
    ("model", "arch"),
    [
        (lambda: EZVSL(), "ezvsl"),
        (lambda: SLAVC(), "slavc"),
        (lambda: LVS(width=4), "lvs"),
        (lambda: SSLTIE(width=4), "ssltie"),
        (lambda: SSLAlign(width=4), "sslalign"),
        (lambda: RCGradModel(width=4), "rcgrad"),
    ],
)
def test_arch_is_detected_from_the_keys(model, arch, tmp_path):
    path = save_published(randomise(model(), seed=6), tmp_path / "any.pth")
    _, report = import_checkpoint(path, None)
    assert report.arch == arch


def test_undetectable_layout_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(DataError, match="cannot tell the architecture from its keys; pass --arch"):
        import_checkpoint(path, None)


# ------------------------------------------------------------------------------------------
# ImageNet weights: model.visual.pretrained


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """A torchvision-style resnet18 state_dict (with fc), as ``torch.save(model.state_dict())``."""
    model = randomise(ResNet18(3, width=V_WIDTH, classes=10), seed=4)
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def trunk_output(net, image_nchw):
    channels_first = net.data_format == "channels_first"
    x = image_nchw if channels_first else image_nchw.transpose(0, 2, 3, 1)
    y = ops.convert_to_numpy(net.visual_encoder(x, training=False))
    return y if channels_first else y.transpose(0, 3, 1, 2)


def recipe_model(**model):
    return recipe_from_dict({"model": model}).model


@pytest.mark.parametrize("arch, last_stride", [("ezvsl", 2), ("lvs", 1)])
def test_pretrained_visual_trunk_matches_reference(arch, last_stride, torchvision_file):
    model, path = torchvision_file
    dim = DIM if arch == "ezvsl" else 8 * V_WIDTH
    config = recipe_model(
        arch=arch,
        embed_dim=dim,
        visual={"width": V_WIDTH, "last_stride": last_stride, "pretrained": str(path)},
        audio={"width": A_WIDTH if arch == "ezvsl" else V_WIDTH},
    )
    net = build_network(config)
    image, _ = inputs(seed=4)
    reference_trunk = copy.deepcopy(model).double().eval()
    if last_stride == 1:
        reference_trunk.layer4[0].conv1.stride = (1, 1)
        reference_trunk.layer4[0].downsample[0].stride = (1, 1)
    with torch.no_grad():
        want = reference_trunk(torch.from_numpy(image).double()).numpy()
    got = trunk_output(net, image)
    assert got.shape == want.shape
    assert np.abs(want).max() > 0.1
    assert np.abs(got - want).max() < 1e-4


def test_pretrained_must_fit_the_recipe(torchvision_file, tmp_path):
    _, path = torchvision_file
    with pytest.raises(RecipeError, match=r"model\.visual\.width: .* width-8 .* set model"):
        build_network(recipe_model(embed_dim=DIM, visual={"width": 4, "pretrained": str(path)}))
    with pytest.raises(RecipeError, match=r"model\.visual\.stem_pool"):
        build_network(
            recipe_model(visual={"width": V_WIDTH, "stem_pool": False, "pretrained": str(path)})
        )
    missing = tmp_path / "nowhere" / "resnet18-f37072fd.pth"
    with pytest.raises(RecipeError) as info:
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": str(missing)}))
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and "download.pytorch.org" in message


def test_pretrained_rejects_published_checkpoint(ezvsl_file):
    with pytest.raises(DataError, match="import-checkpoint"):
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": str(ezvsl_file)}))


def _hashed_url(path: Path) -> tuple[str, str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{digest}.pth"
    return f"https://download.pytorch.org/models/{name}", name


def _first_conv(net):
    return kernel_hwio(net.visual_encoder.get_layer("conv1"))


def test_pretrained_url_downloads_once_with_checksum(torchvision_file, tmp_path, monkeypatch):
    model, path = torchvision_file
    monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
    url, name = _hashed_url(path)
    calls = []

    def fake_urlopen(requested, timeout=None):
        calls.append(requested)
        return io.BytesIO(path.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    config = recipe_model(embed_dim=DIM, visual={"width": V_WIDTH, "pretrained": url})
    net = build_network(config)
    want = model.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(_first_conv(net), want)
    assert calls == [url] and (tmp_path / "cache" / name).is_file()
    build_network(config)  # cached: no second download
    assert calls == [url]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [name]


def test_pretrained_url_checksum_and_offline_errors(torchvision_file, tmp_path, monkeypatch):
    _, path = torchvision_file
    cache = tmp_path / "cache"
    monkeypatch.setenv("AVLOC_CACHE", str(cache))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(path.read_bytes()))
    bad = "https://download.pytorch.org/models/resnet18-deadbeef.pth"
    with pytest.raises(RecipeError, match="checksum deadbeef"):
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": bad}))
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing half-trusted kept

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    url, name = _hashed_url(path)
    with pytest.raises(RecipeError) as info:
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": url}))
    message = str(info.value)
    assert "\n" not in message and str(cache / name) in message and "unreachable" in message
    # a file put where the message says is used without the network
    cache.mkdir(exist_ok=True)
    shutil.copy(path, cache / name)
    net = build_network(recipe_model(embed_dim=DIM, visual={"width": V_WIDTH, "pretrained": url}))
    assert np.abs(_first_conv(net)).max() > 0


# ------------------------------------------------------------------------------------------
# model.init: an imported network as a training start point


def test_model_init_starts_from_imported_network(ezvsl_file, tmp_path):
    out = tmp_path / "imported.keras"
    imported, _ = import_checkpoint(ezvsl_file, "ezvsl", out)
    config = recipe_model(
        embed_dim=DIM, init=str(out), visual={"width": V_WIDTH}, audio={"width": A_WIDTH}
    )
    net = build_network(config)
    image, audio = inputs(seed=5)
    for got, want in zip(
        keras_outputs(net, image, audio), keras_outputs(imported, image, audio), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(RecipeError, match=r"model\.init: .*shape"):
        build_network(recipe_model(embed_dim=DIM, init=str(out), visual={"width": 4}))
    with pytest.raises(RecipeError, match=r"model\.init: .*weights differ"):
        build_network(
            recipe_model(
                arch="lvs",
                embed_dim=64,
                init=str(out),
                visual={"width": V_WIDTH, "last_stride": 1},
                audio={"width": V_WIDTH},
            )
        )
    with pytest.raises(RecipeError, match=r"model\.init: .*no such checkpoint"):
        build_network(recipe_model(init=str(tmp_path / "absent.keras")))


def test_imported_network_localizes_as_the_published_model(ezvsl_model, ezvsl_file, tmp_path):
    """``avloc localize`` with an imported network draws the published model's own map: the
    torch reference's cosine map on the same inputs, upsampled with aligned corners."""
    from avloc.inputs.contract import InputContract
    from avloc.jobs.localize import localize_pair

    import_checkpoint(ezvsl_file, "ezvsl", tmp_path / "m.keras")
    net = load_network(tmp_path / "m.keras")
    rng = np.random.default_rng(6)
    image = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(16000 * 3)).astype("float32")
    loc = localize_pair(net, image, wave, uth=0.0)

    contract = InputContract(net.inputs)  # 224 px, ImageNet statistics, the log spectrogram
    x_image = contract.images([image]).transpose(0, 3, 1, 2)
    x_audio = contract.spectrogram(wave)[None, None]
    small = reference(ezvsl_model, x_image, x_audio)[2][:, 0]  # (1, h, w) in float64
    want = F.interpolate(torch.from_numpy(small)[:, None], size=(48, 80), mode="bilinear",
                         align_corners=True)[0, 0].numpy()  # fmt: skip
    assert np.ptp(want) > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(loc.heatmap, want, atol=1e-4)
    assert loc.max_score == pytest.approx(want.max(), abs=1e-4)


# ------------------------------------------------------------------------------------------
# strict accounting and safe loading: one-line errors naming the key


@pytest.fixture(scope="module")
def ezvsl_state(ezvsl_model):
    return {f"module.{k}": v for k, v in ezvsl_model.state_dict().items()}


def _import_error(state, tmp_path, arch="ezvsl"):
    path = tmp_path / "broken.pth"
    torch.save({"model": state, "epoch": 1}, path)
    out = tmp_path / "out.keras"
    with pytest.raises(DataError) as info:
        import_checkpoint(path, arch, out)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert not out.exists()  # nothing written
    return message


def test_missing_key_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    del state["module.audnet.layer3.1.bn2.running_var"]
    message = _import_error(state, tmp_path)
    assert "missing key audnet.layer3.1.bn2.running_var" in message


def test_extra_key_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    state["module.img_proj_extra.weight"] = torch.zeros(3)
    message = _import_error(state, tmp_path)
    assert "unexpected key img_proj_extra.weight" in message


def test_wrong_shape_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    state["module.imgnet.layer2.0.conv2.weight"] = torch.zeros(16, 16, 3, 1)
    message = _import_error(state, tmp_path)
    assert "wrong shape imgnet.layer2.0.conv2.weight (16, 16, 3, 1)" in message
    assert "(16, 16, 3, 3)" in message


def test_wrong_arch_is_reported(ezvsl_state, tmp_path):
    message = _import_error(ezvsl_state, tmp_path, arch="slavc")
    assert "img_proj1.weight" in message


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    with pytest.raises(DataError, match=r"notes.pth: not a PyTorch checkpoint \(neither"):
        import_checkpoint(path, "ezvsl", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


_EXECUTED = []


def _mark_executed():
    _EXECUTED.append(True)
    return {}


class Payload:
    """Pickles as a call to :func:`_mark_executed`: loading must not run it."""

    def __reduce__(self):
        return (_mark_executed, ())


def test_loading_never_runs_stored_code(ezvsl_state, tmp_path):
    path = tmp_path / "payload.pth"
    torch.save({"model": dict(ezvsl_state), "extra": Payload()}, path)
    with pytest.raises(DataError, match=r"stores the Python object \S*_mark_executed"):
        load_state_dict(path)
    assert _EXECUTED == []
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(DataError, match="not a state_dict"):
        load_state_dict(tmp_path / "list.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(DataError, match="not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "text.pth")


def test_wrappers_and_prefixes_are_unwrapped(ezvsl_model, tmp_path):
    plain = ezvsl_model.state_dict()
    nested = {"model": {f"module.module.{k}": v for k, v in plain.items()}}
    # saved training arguments (argparse.Namespace) are plain data and accepted
    torch.save({"state_dict": nested, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "a.pth")
    torch.save(plain, tmp_path / "b.pth")
    a, b = load_state_dict(tmp_path / "a.pth"), load_state_dict(tmp_path / "b.pth")
    assert sorted(a) == sorted(b) == sorted(plain)
    for key, value in plain.items():
        np.testing.assert_array_equal(a[key], value.numpy())


# ------------------------------------------------------------------------------------------
# the command


def test_cli_import_checkpoint(ezvsl_file, tmp_path):
    from cli.main import app

    out = tmp_path / "cli.keras"
    result = CliRunner().invoke(
        app, ["import-checkpoint", str(ezvsl_file), "--arch", "ezvsl", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "avloc eval --calibrate --checkpoint" in result.output
    assert load_network(out).embed_dim == DIM


@pytest.mark.large  # starts subprocesses
def test_cli_import_checkpoint_error_is_one_line(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    del state["module.aud_proj.bias"]
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "import-checkpoint", str(path), "--arch", "ezvsl"]
        + ["--out", str(tmp_path / "x.keras")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith(("WARNING: All log messages", "I0", "W0", "E0"))
    ]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("avloc: error: ") and "aud_proj.bias" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.keras").exists()
