"""SSL-TIE's training objective in plain torch, as jinxiang-liu/SSL-TIE computes it (kornia 0.5).

``models/model.py`` (``AVENet.forward``: the tri-map Pos/Neg masks, the easy negatives masked by
``1 - 100 * eye(B)``, logits / 0.07), ``main.py`` (``0.5 * (loss_cl + loss_cl_ts) + lambda *
loss_ts``, ``nn.CrossEntropyLoss`` with target 0) and ``utils/tf_equivariance_loss.py``
(``TfEquivarianceLoss``: kornia's ``get_rotation_matrix2d`` (OpenCV's matrix), ``warp_affine``
(the pixel matrix normalised to ``[-1, 1]``, inverted, ``F.affine_grid`` + ``F.grid_sample``
with ``align_corners=True``, zeros padding), ``Resize`` (``F.interpolate``, bilinear,
``align_corners=False``), ``Hflip``), written here independently of avloc's code for the parity
tests of ``tests/test_equivariance.py`` and ``tests/test_ssltie_task.py``. Maps are channels
last: ``v_map (B, h, w, D)``, ``a_emb (B, D)``, both L2-normalised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPSILON, EPSILON2, THRESHOLD_TAU, TAU = 0.65, 0.4, 0.03, 0.07


def kornia_rotation_matrix2d(center, angle, scale):
    """kornia 0.5 ``get_rotation_matrix2d``: ``center`` (B, 2) as (x, y), ``angle`` (B,) in
    degrees, ``scale`` (B, 2) -> (B, 2, 3)."""
    radians = angle * math.pi / 180.0
    cos, sin = torch.cos(radians), torch.sin(radians)
    rotation = torch.stack([cos, sin, -sin, cos], dim=-1).view(-1, 2, 2)
    scaling = torch.eye(2, dtype=angle.dtype).repeat(angle.shape[0], 1, 1)
    scaling = scaling * scale.unsqueeze(2).repeat(1, 1, 2)
    scaled = rotation @ scaling
    alpha, beta = scaled[:, 0, 0], scaled[:, 0, 1]
    x, y = center[..., 0], center[..., 1]
    matrix = torch.zeros(angle.shape[0], 2, 3, dtype=angle.dtype)
    matrix[..., 0:2, 0:2] = scaled
    matrix[..., 0, 2] = (1.0 - alpha) * x - beta * y
    matrix[..., 1, 2] = beta * x + (1.0 - alpha) * y
    return matrix


def normal_transform_pixel(height, width, dtype):
    matrix = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]], dtype=dtype)
    matrix[0, 0] = matrix[0, 0] * 2.0 / (width - 1.0)
    matrix[1, 1] = matrix[1, 1] * 2.0 / (height - 1.0)
    return matrix.unsqueeze(0)


def kornia_warp_affine(src, matrix, dsize):
    """kornia 0.5 ``warp_affine(src, M, dsize)`` with its default ``align_corners=True``."""
    batch, channels, height, width = src.shape
    bottom = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=src.dtype).expand(batch, 1, 3)
    homography = torch.cat([matrix, bottom], dim=1)
    src_norm = normal_transform_pixel(height, width, src.dtype)
    dst_norm = normal_transform_pixel(dsize[0], dsize[1], src.dtype)
    dst_norm_trans_src_norm = dst_norm @ (homography @ torch.inverse(src_norm))
    src_norm_trans_dst_norm = torch.inverse(dst_norm_trans_src_norm)
    grid = F.affine_grid(
        src_norm_trans_dst_norm[:, :2, :], [batch, channels, *dsize], align_corners=True
    )
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def kornia_resize(x, size):
    """kornia 0.5 ``resize``/``Resize``: ``align_corners=None``, which is False for bilinear."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def ssl_tie_matrices(angles, scale, input_size, dtype):
    """``TfEquivarianceLoss._get_rotation`` given its draws."""
    batch = len(angles)
    center = torch.ones(batch, 2, dtype=dtype)
    center[..., 0] = input_size / 2
    center[..., 1] = input_size / 2
    angle = torch.tensor(angles, dtype=dtype)
    return kornia_rotation_matrix2d(center, angle, torch.full((batch, 2), scale, dtype=dtype))


def ssl_tie_transform(x, angles, scale, flip, input_size):
    """``TfEquivarianceLoss.transform`` on ``x`` (B, C, H, W), in ``x``'s dtype."""
    hw = (input_size, input_size)
    dsize = [int(item * scale) for item in x.size()[-2:]]
    if tuple(x.shape[2:]) != hw:
        x = kornia_resize(x, hw)
    matrices = ssl_tie_matrices(angles, scale, input_size, x.dtype)
    out = kornia_warp_affine(x, matrices, [input_size, input_size])
    out = kornia_resize(out, dsize)
    return torch.flip(out, [-1]) if flip else out


def ssl_tie_loss(v_map, a_emb, v_map_t, angles, scale, flip, input_size):
    """``main.py``: A = einsum of the normalised maps, then ``tf_equiv_loss(A_T, transform(A))``;
    channels-last torch inputs (B, h, w, D), (B, D)."""
    heatmap = torch.einsum("bhwd,bd->bhw", v_map, a_emb).unsqueeze(1)
    heatmap_ts = torch.einsum("bhwd,bd->bhw", v_map_t, a_emb).unsqueeze(1)
    ts_heatmap = ssl_tie_transform(heatmap, angles, scale, flip, input_size)
    if ts_heatmap.shape[-2:] != heatmap_ts.shape[-2:]:
        ts_heatmap = kornia_resize(ts_heatmap, heatmap_ts.shape[-2:])
    return torch.nn.MSELoss()(heatmap_ts, ts_heatmap)


def ssl_tie_contrastive(v_map, a_emb):
    """``AVENet.forward``'s logits and ``nn.CrossEntropyLoss()(logits, 0)`` (tri_map and Neg on)."""
    batch = v_map.shape[0]
    mask = 1 - 100 * torch.eye(batch, dtype=v_map.dtype)
    img = v_map.permute(0, 3, 1, 2)  # (B, D, h, w)
    A = torch.einsum("ncqa,nchw->nqa", [img, a_emb.unsqueeze(2).unsqueeze(3)]).unsqueeze(1)
    A0 = torch.einsum("ncqa,ckhw->nkqa", [img, a_emb.T.unsqueeze(2).unsqueeze(3)])
    pos = torch.sigmoid((A - EPSILON) / THRESHOLD_TAU)
    neg = 1 - torch.sigmoid((A - EPSILON2) / THRESHOLD_TAU)
    pos_all = torch.sigmoid((A0 - EPSILON) / THRESHOLD_TAU)
    easy = (
        (pos_all * A0).view(*A0.shape[:2], -1).sum(-1)
        / pos_all.view(*pos_all.shape[:2], -1).sum(-1)
        * mask
    )
    sim1 = (pos * A).view(*A.shape[:2], -1).sum(-1) / pos.view(*pos.shape[:2], -1).sum(-1)
    sim2 = (neg * A).view(*A.shape[:2], -1).sum(-1) / neg.view(*neg.shape[:2], -1).sum(-1)
    logits = torch.cat((sim1, easy, sim2), 1) / TAU
    target = torch.zeros(batch, dtype=torch.int64)
    return F.cross_entropy(logits, target)


def ssl_tie_objective(v_map, a_emb, v_map_t, angles, scale, flip, input_size, lam=1.0):
    """``main.py``: ``0.5 * (loss_cl + loss_cl_ts) + lambda * loss_ts``; returns the three."""
    loss_cl = ssl_tie_contrastive(v_map, a_emb)
    loss_cl_ts = ssl_tie_contrastive(v_map_t, a_emb)
    loss_ts = ssl_tie_loss(v_map, a_emb, v_map_t, angles, scale, flip, input_size)
    return 0.5 * (loss_cl + loss_cl_ts) + lam * loss_ts, 0.5 * (loss_cl + loss_cl_ts), loss_ts
