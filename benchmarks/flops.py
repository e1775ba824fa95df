"""Analytic FLOPs of the EZ-VSL network (2 x multiply-accumulates of convolutions and matmuls).

``python3 -m benchmarks.plain_torch`` checks the count against ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from collections.abc import Sequence


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def resnet18_flops(
    in_channels: int,
    height: int,
    width_px: int,
    width: int = 64,
    blocks: Sequence[int] = (2, 2, 2, 2),
    last_stride: int = 2,
    stem_pool: bool = True,
) -> tuple[int, tuple[int, int, int]]:
    """Forward FLOPs of one sample through the ResNet trunk, and its output ``(C, h, w)``.

    Counts convolutions only (2 x MACs); batch norm, ReLU, pooling and additions are left out
    (they are memory-bound and well under 1 % of the FLOPs).
    """

    def conv(cin, cout, k, s, p, h, w):
        oh, ow = _out(h, k, s, p), _out(w, k, s, p)
        return 2 * cin * k * k * cout * oh * ow, oh, ow

    flops, h, w = conv(in_channels, width, 7, 2, 3, height, width_px)
    if stem_pool:
        h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    cin = width
    for stage, count in enumerate(blocks):
        cout = width * 2**stage
        for index in range(count):
            stride = 1
            if index == 0 and stage > 0:
                stride = last_stride if stage == len(blocks) - 1 else 2
            f1, oh, ow = conv(cin, cout, 3, stride, 1, h, w)
            f2, _, _ = conv(cout, cout, 3, 1, 1, oh, ow)
            flops += f1 + f2
            if stride != 1 or cin != cout:
                flops += conv(cin, cout, 1, stride, 0, h, w)[0]
            cin, h, w = cout, oh, ow
    return flops, (cin, h, w)


def ezvsl_forward_flops(
    batch: int, image_size: int, audio_shape: tuple[int, int], width: int = 64, dim: int = 512
) -> dict[str, int]:
    """Forward FLOPs of one EZ-VSL step on a batch: both trunks, projections and the MIL loss.

    The loss term is the all-pairs similarity ``(B, h, w, D) x (B, D)``: ``2 B^2 h w D``.
    Training is about 3x the forward pass (backward = gradients w.r.t. activations + weights).
    """
    visual, (vc, vh, vw) = resnet18_flops(3, image_size, image_size, width)
    audio, (ac, _, _) = resnet18_flops(1, *audio_shape, width)
    img_proj = 2 * vc * dim * vh * vw
    aud_proj = 2 * ac * dim
    per_sample = visual + audio + img_proj + aud_proj
    loss = 2 * batch * batch * vh * vw * dim
    forward = batch * per_sample + loss
    return {
        "visual_per_sample": visual,
        "audio_per_sample": audio,
        "img_proj_per_sample": img_proj,
        "aud_proj_per_sample": aud_proj,
        "loss_per_batch": loss,
        "forward_per_batch": forward,
        "train_per_batch": 3 * forward,
    }
