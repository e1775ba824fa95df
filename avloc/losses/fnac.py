"""FNAC's false-negative-aware regularisers (docs/method.md; FNAC paper Eqs. 2-5), in ``keras.ops``.

With ``a`` the ``(B, D)`` audio embeddings, ``v`` the ``(B, h, w, D)`` normalised visual map,
``vbar_i = mean_{h,w} v_i`` (not re-normalised) and ``l[n, m] = max_{h,w} S(v_n, a_m) / tau``
the EZ-VSL MIL logits (no margin):

    FNS1 = L1(softmax(a a^T / tau), softmax(l))                 fnac_fns1 (audio adjacency)
    FNS2 = L1(softmax(vbar vbar^T / tau), softmax(l))           fnac_fns2 (visual adjacency)
    TNE  = L1(softmax(a a^T / tau), softmax(f f^T / tau))       fnac_tne

``softmax`` is row-wise and ``L1`` the mean absolute difference over the ``B x B`` entries.
``f_i = mean_{h,w} (v_i * [minmax(S(v_i, a_i) / tau) > threshold])``: the visual features of the
sounding region, averaged over *all* h*w locations (masked ones count as zeros), where
``minmax(x) = (x - min x) / (max x - min x + 1e-5)`` per image. The mask is a hard comparison, so
no gradient flows through it. This follows the FNAC reference implementation (tau = 0.03 for
every softmax, threshold 0.6, the 1e-5 on the ``S / tau`` scale).

FNAC trains with ``L_EZVSL + 100 FNS1 + 100 FNS2 + 100 TNE`` after three epochs of ``L_EZVSL``
alone: hence the defaults ``weight = 100`` and ``start_epoch = 3`` of these terms (see
:mod:`avloc.losses.base` for the warm-up gate). Shapes: ``v_map (B, h, w, D)``,
``a_emb (B, D)``; each term returns a scalar.
"""

from __future__ import annotations

from keras import ops

from avloc.losses.base import LOSS_TERMS, LossTerm
from avloc.losses.contrastive import mil_logits
from avloc.models.similarity import pair_maps
from avloc.runtime.batch import LOCAL_BATCH


def row_softmax(logits):
    return ops.softmax(logits, axis=1)


def mean_abs_difference(p, q):
    """``mean |p - q|`` over every entry (PyTorch's ``F.l1_loss``)."""
    return ops.mean(ops.abs(p - q))


def adjacency(rows, columns, tau: float):
    """``softmax(rows columns^T / tau)``: ``(b, D) x (G, D) -> (b, G)``."""
    return row_softmax(ops.matmul(rows, ops.transpose(columns)) / tau)


def audio_adjacency(a_emb, tau: float, batch=LOCAL_BATCH):
    """``softmax(a a^T / tau)``: ``(B, D) -> (B, B)`` (own rows x gathered columns)."""
    return adjacency(a_emb, batch.gather(a_emb), tau)


def visual_adjacency(v_map, tau: float, batch=LOCAL_BATCH):
    """``softmax(vbar vbar^T / tau)`` with ``vbar`` the spatial mean of ``v_map``: ``(B, B)``."""
    pooled = ops.mean(v_map, axis=(1, 2))
    return adjacency(pooled, batch.gather(pooled), tau)


def minmax_normalise(maps, eps: float = 1e-5):
    """``(x - min x) / (max x - min x + eps)`` per map: ``(B, h, w) -> (B, h, w)``."""
    low = ops.min(maps, axis=(1, 2), keepdims=True)
    high = ops.max(maps, axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low + eps)


def sounding_region_features(v_map, a_emb, tau: float, threshold: float):
    """``f``: ``(B, D)`` mean over all locations of ``v_map`` masked by its confident region."""
    maps = minmax_normalise(pair_maps(v_map, a_emb) / tau)
    mask = ops.stop_gradient(ops.cast(ops.greater(maps, threshold), v_map.dtype))
    return ops.mean(ops.multiply(v_map, mask[..., None]), axis=(1, 2))


class _FNACTerm(LossTerm):
    def __init__(self, weight: float, start_epoch: int, tau: float):
        super().__init__(weight, start_epoch)
        self.tau = tau

    def mil_distribution(self, outputs):
        """``softmax(l)``, ``l[n, m] = max_{h,w} S(v_n, a_m) / tau``: ``(B, B)``."""
        a_all = self.batch.gather(outputs["a_emb"])
        return row_softmax(mil_logits(outputs["v_map"], a_all) / self.tau)


@LOSS_TERMS.register("fnac_fns1")
class FalseNegativeSuppressionAudio(_FNACTerm):
    """FNS1: the audio adjacency ``softmax(a a^T / tau)`` as soft targets of the MIL softmax."""

    def __init__(self, weight: float = 100.0, tau: float = 0.03, start_epoch: int = 3):
        super().__init__(weight, start_epoch, tau)

    def __call__(self, outputs):
        return mean_abs_difference(
            audio_adjacency(outputs["a_emb"], self.tau, self.batch),
            self.mil_distribution(outputs),
        )


@LOSS_TERMS.register("fnac_fns2")
class FalseNegativeSuppressionVisual(_FNACTerm):
    """FNS2: the visual adjacency ``softmax(vbar vbar^T / tau)`` against the MIL softmax."""

    def __init__(self, weight: float = 100.0, tau: float = 0.03, start_epoch: int = 3):
        super().__init__(weight, start_epoch, tau)

    def __call__(self, outputs):
        return mean_abs_difference(
            visual_adjacency(outputs["v_map"], self.tau, self.batch),
            self.mil_distribution(outputs),
        )


@LOSS_TERMS.register("fnac_tne")
class TrueNegativeEnhancement(_FNACTerm):
    """TNE: sounding-region visual similarities ``softmax(f f^T / tau)`` follow the audio's."""

    def __init__(
        self,
        weight: float = 100.0,
        tau: float = 0.03,
        threshold: float = 0.6,
        start_epoch: int = 3,
    ):
        super().__init__(weight, start_epoch, tau)
        self.threshold = threshold

    def __call__(self, outputs):
        v_map, a_emb = outputs["v_map"], outputs["a_emb"]
        regions = sounding_region_features(v_map, a_emb, self.tau, self.threshold)
        region_adjacency = adjacency(regions, self.batch.gather(regions), self.tau)
        return mean_abs_difference(audio_adjacency(a_emb, self.tau, self.batch), region_adjacency)
