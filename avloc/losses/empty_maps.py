"""SSL-SaN's empty-map penalties (docs/method.md; the SSL-SaN paper), in ``keras.ops``.

    L_S = mean_j || S(a_S, v_j) ||_2^2       (silence_map)
    L_N = mean_j || S(a_N_j, v_j) ||_2^2     (noise_map)

``S`` is the raw cosine map ``(h, w)`` of an image with the silence clip (one clip shared by the
batch) or with the image's own noise clip; the squared L2 norm sums over the h*w locations and
the result is averaged over the batch. Both are 0 for an all-zero map. The recipe weight of each
term is SSL-SaN's lambda_S / lambda_N.
"""

from __future__ import annotations

from keras import ops

from avloc.losses.base import LOSS_TERMS, LossTerm
from avloc.models.similarity import pair_maps, shared_audio_maps


def mean_squared_map_norm(maps):
    """``(B, h, w) -> scalar``: mean over the batch of the sum of squares over locations."""
    return ops.mean(ops.sum(ops.square(maps), axis=(1, 2)))


@LOSS_TERMS.register("silence_map")
class SilenceMap(LossTerm):
    """L_S: pushes every image's similarity map with silence towards zero."""

    needs = frozenset({"silence"})

    def __init__(self, weight: float = 1.0, start_epoch: int = 0):
        super().__init__(weight, start_epoch)

    def __call__(self, outputs):
        v_map, a_silence = outputs["v_map"], outputs["a_silence"]  # (B,h,w,D), (1,D)
        return mean_squared_map_norm(shared_audio_maps(v_map, a_silence[0]))


@LOSS_TERMS.register("noise_map")
class NoiseMap(LossTerm):
    """L_N: pushes each image's similarity map with its own noise clip towards zero."""

    needs = frozenset({"noise"})

    def __init__(self, weight: float = 1.0, start_epoch: int = 0):
        super().__init__(weight, start_epoch)

    def __call__(self, outputs):
        return mean_squared_map_norm(pair_maps(outputs["v_map"], outputs["a_noise"]))
