"""Plain-PyTorch references of published networks, for parity tests of avloc's importers and trunks.

Each class re-implements a published network with its published ``state_dict`` key names, so a
checkpoint saved from it has the layout of the published release:

- :class:`BasicBlock`, :class:`ResNet18`: torchvision's ``resnet.py`` (BasicBlock, resnet18), the
  trunk every family below builds on; ``lvs_stems`` adds the LVS ResNet's three stems;
- :func:`audio_trunk`: EZ-VSL's ``audnet``, a one-channel resnet18;
- :class:`EZVSL`: EZ-VSL's ``model.py`` (also the layout of FNAC's and marginNCE's releases);
- :class:`SLAVC`: SLAVC's ``model.py``, two projection pairs and momentum copies;
- :class:`LVS`: LVS' ``AVENet`` (``model.py``);
- :class:`SSLTIE`: SSL-TIE's ``AVENet``, LVS's network plus layers its map does not use;
- :class:`SSLAlign`: an SSL-Align-like checkpoint, LVS's network plus heads never loaded;
- :class:`RCGradModel`: RCGrad's ``models.py`` and ``modules/resnet.py`` (two encoders);
  :func:`gradcam_reference` is its Grad-CAM map and :func:`rcgrad_spectrogram` its
  ``ResNetSpec`` front end.

:func:`randomise` gives a reference random weights and non-trivial batch-norm statistics,
:func:`save_published` saves it as the published training scripts do, :func:`reference` runs it
in float64 on :func:`inputs`.

SLAVC's extended benchmarks, as naive loops written from SLAVC's rules: :func:`naive_pr`,
:func:`naive_ap` and :func:`naive_max_f1` (visible flags, cIoUs and confidences as lists).

The references follow the published code and torchvision's layout and are written independently
of avloc's own code: this module imports torch and NumPy only, never avloc (nor avloc's own
plain-torch ResNet, ``avloc.models.torch_ref``), so a parity test between an avloc network and a
reference means something: the two sides share nothing but the checkpoint file.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

V_WIDTH, A_WIDTH, DIM = 8, 4, 16  # tiny EZ-VSL: visual width 8, audio width 4, D = 16


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
    """SSL-TIE's AVENet: LVS's network plus layers its map does not use (published names).

    ``learnable_thresholds``: also the tri-map thresholds as parameters ``epsilon`` /
    ``epsilon2``, which SSL-SaN's checkpoints may hold (they do not touch the map)."""

    def __init__(self, width=4, learnable_thresholds=False):
        super().__init__(width)
        self.vision_fc1 = nn.Conv2d(16 * width, 8 * width, kernel_size=(1, 1))
        self.conv3 = nn.Conv2d(1, 1, 1)
        self.norm3 = nn.BatchNorm2d(1)
        if learnable_thresholds:
            self.epsilon = nn.Parameter(torch.tensor([0.65]))
            self.epsilon2 = nn.Parameter(torch.tensor([0.4]))


class SSLAlign(LVS):
    """An SSL-Align-like checkpoint: LVS's network plus heads its evaluators never load."""

    def __init__(self, width=4):
        super().__init__(width)
        self.projection_v = nn.Conv2d(16 * width, 8 * width, kernel_size=(1, 1))
        self.projection_a = nn.Linear(16 * width, 8 * width)


class RCGradModel(nn.Module):
    """RCGrad's two encoders with its published names (``models.py``, ``modules/resnet.py``)."""

    def __init__(self, width=4):
        super().__init__()
        self.image_encoder = ResNet18(width=width, last_stride=1, classes=10, lvs_stems=True)
        self.audio_encoder = ResNet18(1, width)  # ResNetSpec: one channel, average-pooled
        self.audio_encoder.spectrogram = nn.Module()  # torchaudio.transforms.Spectrogram
        self.audio_encoder.spectrogram.register_buffer("window", torch.hann_window(512))


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
    """Random ``image (B, 3, size, size)`` and ``audio (B, 1, *spec)``, float32, NCHW."""
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


def rcgrad_spectrogram(wave):
    """ResNetSpec.forward's front end: torchaudio Spectrogram(512, hop 353), log, standardise."""
    x = torch.from_numpy(np.asarray(wave, np.float64))
    window = torch.hann_window(512, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, 512, hop_length=353, window=window, center=True, pad_mode="reflect",
                      return_complex=True).abs().pow(2)  # fmt: skip
    spec = torch.log(spec + 1e-7)
    return ((spec - torch.mean(spec)) / (torch.std(spec) + 1e-9)).numpy()


# --------------------------------------------------------------------------------------------------
# SLAVC's AP and max-F1, as naive loops


def naive_pr(visible, ciou, confidence, threshold, ciou_thr=0.5):
    tp = fp = fn = 0
    for v, c, conf in zip(visible, ciou, confidence, strict=True):
        if not v:
            fp += conf >= threshold
        elif conf >= threshold:
            tp, fp = (tp + 1, fp) if c >= ciou_thr else (tp, fp + 1)
        else:
            fn += 1
    return (1.0 if tp + fp == 0 else tp / (tp + fp)), (1.0 if tp + fn == 0 else tp / (tp + fn))


def naive_ap(visible, ciou, confidence, ciou_thr=0.5):
    skip = max(1, len(confidence) // 200)
    precision, recall = [], []
    for t in list(sorted(confidence))[:-1][::-skip]:
        p, r = naive_pr(visible, ciou, confidence, t, ciou_thr)
        precision.append(p)
        recall.append(r)
    best = [max(precision[i:]) for i in range(len(precision))]
    return sum(best[i] * (recall[i + 1] - recall[i]) for i in range(len(best) - 1))


def naive_max_f1(visible, ciou, confidence, ciou_thr=0.5):
    f1 = []
    for t in list(sorted(confidence))[:: max(1, len(confidence) // 10)]:
        p, r = naive_pr(visible, ciou, confidence, t, ciou_thr)
        f1.append(2 * r * p / (r + p) if r + p > 0 else 0.0)
    return max(f1)
