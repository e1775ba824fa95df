"""EZ-VSL in plain PyTorch: the reference the Keras training step is compared with.

The same network and loss as ``recipes/ezvsl.toml`` builds in avloc, written the way the
published EZ-VSL code is (torchvision-style ResNet-18 with the same key names):

- ``imgnet``: ResNet-18 trunk on RGB (no average pool or classifier), ``img_proj``: 1x1 conv to
  D, L2-normalised over channels -> ``(B, D, h, w)`` (7x7 at 224 px);
- ``audnet``: ResNet-18 trunk whose stem takes 1 channel (the log spectrogram), global max pool,
  ``aud_proj``: Linear to D, L2-normalised -> ``(B, D)``;
- loss: MIL contrastive, ``logits[n, m] = max_hw <v_n(h, w), a_m> / tau`` (tau 0.03), cross-entropy
  over audios for each image plus over images for each audio, the diagonal as the target;
- ``torch.optim.Adam``.

Standalone check of the analytic FLOP count used by ``benchmarks/train_step.py`` (counts the
forward pass with ``torch.utils.flop_counter``; a few seconds at the default tiny size)::

    python benchmarks/plain_torch.py [--width 8] [--image-size 64] [--batch 2]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv1/bn1/conv2/bn2 and downsample.0/.1."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
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
    """torchvision's resnet18 layout; ``forward`` is the trunk (layer4 output, no pooling)."""

    def __init__(self, in_channels: int = 3, width: int = 64, last_stride: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for stage in range(4):
            cout = width * 2**stage
            stride = 1 if stage == 0 else (last_stride if stage == 3 else 2)
            setattr(
                self,
                f"layer{stage + 1}",
                nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)),
            )
            cin = cout
        self.out_channels = cin
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class EZVSL(nn.Module):
    """EZ-VSL's model: imgnet + img_proj (1x1 conv), audnet (max-pooled) + aud_proj."""

    def __init__(self, width: int = 64, dim: int = 512):
        super().__init__()
        self.imgnet = ResNet18(3, width)
        self.img_proj = nn.Conv2d(self.imgnet.out_channels, dim, kernel_size=(1, 1))
        self.audnet = ResNet18(1, width)
        self.aud_proj = nn.Linear(self.audnet.out_channels, dim)

    def forward(self, image, audio):
        img = F.normalize(self.img_proj(self.imgnet(image)), dim=1)
        aud = F.adaptive_max_pool2d(self.audnet(audio), 1).flatten(1)
        return img, F.normalize(self.aud_proj(aud), dim=1)


def ezvsl_loss(img, aud, tau: float = 0.03):
    """MIL contrastive loss of EZ-VSL: ``img`` ``(B, D, h, w)``, ``aud`` ``(B, D)``."""
    logits = torch.einsum("nchw,mc->nmhw", img, aud).flatten(-2).max(dim=-1).values / tau
    labels = torch.arange(img.shape[0], device=img.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)


def set_onednn(enabled: bool) -> None:
    """oneDNN (mkldnn) CPU kernels on (torch's default, and avloc's) or off (torch's own)."""
    torch.backends.mkldnn.enabled = enabled


class TrainStep:
    """One Adam step of EZ-VSL on a fixed batch; ``__call__`` returns the loss (synchronised).

    The batch is kept as NCHW numpy arrays and moved to the device in every step, as a training
    loop fed by a loader does. ``precision="bf16"`` runs forward and loss under
    ``torch.autocast(dtype=torch.bfloat16)``.
    """

    def __init__(
        self,
        image_nchw,
        audio_nchw,
        width: int = 64,
        dim: int = 512,
        tau: float = 0.03,
        lr: float = 1e-4,
        device: str = "cpu",
        precision: str = "fp32",
        seed: int = 0,
    ):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = EZVSL(width, dim).to(self.device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.image, self.audio = image_nchw, audio_nchw
        self.tau = tau
        self.precision = precision

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def __call__(self) -> float:
        image = torch.from_numpy(self.image).to(self.device, non_blocking=True)
        audio = torch.from_numpy(self.audio).to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            img, aud = self.model(image, audio)
            loss = ezvsl_loss(img, aud, self.tau)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())


def counted_forward_flops(width: int, dim: int, batch: int, image_size: int, audio_shape) -> int:
    """Forward FLOPs of model + loss as counted by ``torch.utils.flop_counter`` (conv, mm)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = EZVSL(width, dim).eval()
    image = torch.randn(batch, 3, image_size, image_size)
    audio = torch.randn(batch, 1, *audio_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ezvsl_loss(*model(image, audio))
    return int(counter.get_total_flops())


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import ezvsl_forward_flops

    parser = argparse.ArgumentParser(description="check the analytic FLOP count")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--audio-shape", default="257x200", help="FREQxFRAMES")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.audio_shape.split("x"))
    analytic = ezvsl_forward_flops(args.batch, args.image_size, shape, args.width, args.dim)
    counted = counted_forward_flops(args.width, args.dim, args.batch, args.image_size, shape)
    print(
        f"forward FLOPs, batch {args.batch}: analytic {analytic['forward_per_batch']:,}, "
        f"torch.utils.flop_counter {counted:,} "
        f"(ratio {analytic['forward_per_batch'] / counted:.4f})"
    )


if __name__ == "__main__":
    main()
