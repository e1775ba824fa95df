"""EZ-VSL in plain PyTorch: the reference the Keras training step is compared with.

The same network and loss as ``recipes/ezvsl.toml`` builds in avloc, written the way the
published EZ-VSL code is, on avloc's one plain-torch ResNet-18 (:mod:`avloc.models.torch_ref`,
torchvision's key names):

- ``imgnet``: ResNet-18 trunk on RGB (no average pool or classifier), ``img_proj``: 1x1 conv to
  D, L2-normalised over channels -> ``(B, D, h, w)`` (7x7 at 224 px);
- ``audnet``: ResNet-18 trunk whose stem takes 1 channel (the log spectrogram), global max pool,
  ``aud_proj``: Linear to D, L2-normalised -> ``(B, D)``;
- loss: MIL contrastive, ``logits[n, m] = max_hw <v_n(h, w), a_m> / tau`` (tau 0.03), cross-entropy
  over audios for each image plus over images for each audio, the diagonal as the target;
- ``torch.optim.Adam``.

Standalone check of the analytic FLOP count used by ``benchmarks/train_step.py`` (counts the
forward pass with ``torch.utils.flop_counter``; a few seconds at the default tiny size)::

    python3 -m benchmarks.plain_torch [--width 8] [--image-size 64] [--batch 2]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from avloc.models.torch_ref import ResNet


def ResNet18(in_channels: int = 3, width: int = 64) -> nn.Module:
    """avloc's plain-torch ResNet-18 (torchvision's layout) with torchvision's initialisation."""
    trunk = ResNet(in_channels, width)
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return trunk


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
    from benchmarks.flops import ezvsl_forward_flops

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
