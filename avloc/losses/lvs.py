"""LVS ("Localizing Visual Sounds the Hard Way") soft-threshold contrastive loss (docs/method.md).

On the similarity maps ``A[n, m] = S(v_n, a_m)`` ``(h, w)`` (14x14 at 224 px for the ``lvs``
architecture), with ``sigma`` the logistic sigmoid:

    Pos(A) = sigma((A - epsilon) / threshold_tau)                 epsilon = 0.65
    Neg(A) = 1 - sigma((A - epsilon_neg) / threshold_tau)         epsilon_neg = 0.4
    pos_i  = sum(Pos(A_ii) * A_ii) / sum(Pos(A_ii)) - margin      positive (audio i, image i)
    hard_i = sum(Neg(A_ii) * A_ii) / sum(Neg(A_ii))               the image's own background
    easy_ij = sum(Pos(A_ij) * A_ij) / sum(Pos(A_ij))   (j != i)   image i with the other audios
    logits_i = [pos_i, easy_i1 .. easy_iB (without j = i), hard_i] / tau      tau = 0.07
    L = mean_i CE(logits_i, target 0)

SSL-SaN's extra negatives (``silence_negative``, ``noise_negative``; the SSL-SaN paper, whose
contrastive loss is SSL-TIE's, i.e. this tri-map loss). How they enter the tri-map logits is
not public; avloc's choice **[choice]**: each is one more easy-negative column of row i,
computed exactly like the other audios' columns,

    easy_iS = sum(Pos(A(v_i, a_S)) * A) / sum(Pos(A(v_i, a_S)))       silence clip a_S
    easy_iN = sum(Pos(A(v_i, a_N_i)) * A) / sum(Pos(A(v_i, a_N_i)))   image i's own noise a_N_i
    logits_i = [pos_i, easy_i1 .. easy_iB (without j = i), easy_iS, easy_iN, hard_i] / tau

Reason: the paper describes silence and noise as extra negative audios next to the batch's
other audios, and in the tri-map loss an audio other than image i's own enters only through its
soft positive region (the easy negatives); a region of image i that lights up under silence or
noise is then penalised like a region that lights up under a wrong audio, while an empty map
(near 0 everywhere: what the ``silence_map`` / ``noise_map`` terms push towards) gives a logit
near 0, which barely changes the loss once the positive is confident. Unlike ``ezvsl``'s
``noise_negative`` (all B noise clips are candidates of every image), row i gets one noise
column, its own clip's: the clip the ``noise_map`` term empties for that image.

``hard_negative = false`` drops ``hard_i`` (LVS without the trimap's background negative);
``margin`` (0 by default) is marginNCE's margin on the positive ("LVS-marginNCE" in the
marginNCE paper).
``Neg`` is computed as ``sigma(-(A - epsilon_neg) / threshold_tau)``, the same value without
the cancellation of ``1 - sigma`` near 1. The reference code removes the ``j = i`` easy
negative by multiplying it by -99, which excludes it whenever that mean is positive; here it
is always excluded (its logit is set to -1e9). Shapes: ``v_map (B, h, w, D)``,
``a_emb (B, D)``, and when used ``a_silence (1, D)``, ``a_noise (B, D)``; returns a scalar.

Data parallel with global negatives: the easy negatives of a device's ``b`` images are the
regions of all ``G`` gathered audios (``(b, G)``, the excluded one at ``first_row + i``); the
positive, the background and the silence and noise columns only involve a row's own image (with
the shared ``a_S`` or its own ``a_N_i``), so they are never gathered.
"""

from __future__ import annotations

from keras import ops

from avloc.losses.base import LOSS_TERMS, LossTerm, negative_needs
from avloc.losses.contrastive import positive_mask
from avloc.models.similarity import all_pair_maps, pair_maps, shared_audio_maps
from avloc.runtime.scalars import full_like

EXCLUDED_LOGIT = -1e9


def weighted_map_mean(weights, maps):
    """``sum(w * A) / sum(w)`` over the two trailing (spatial) axes."""
    return ops.sum(weights * maps, axis=(-2, -1)) / ops.sum(weights, axis=(-2, -1))


@LOSS_TERMS.register("lvs")
class SoftThresholdContrastive(LossTerm):
    """LVS: soft positive region vs. the image's background and the other audios' regions
    (optionally also silence's and the image's noise clip's: SSL-SaN's extra negatives)."""

    def __init__(
        self,
        weight: float = 1.0,
        epsilon: float = 0.65,
        epsilon_neg: float = 0.4,
        threshold_tau: float = 0.03,
        tau: float = 0.07,
        hard_negative: bool = True,
        margin: float = 0.0,
        silence_negative: bool = False,
        noise_negative: bool = False,
        start_epoch: int = 0,
    ):
        super().__init__(weight, start_epoch)
        self.epsilon = epsilon
        self.epsilon_neg = epsilon_neg
        self.threshold_tau = threshold_tau
        self.tau = tau
        self.hard_negative = hard_negative
        self.margin = margin
        self.silence_negative = silence_negative
        self.noise_negative = noise_negative
        self.needs = negative_needs(silence_negative, noise_negative)

    def positive_weights(self, maps):
        return ops.sigmoid((maps - self.epsilon) / self.threshold_tau)

    def easy_column(self, maps):
        """``(b, h, w)`` maps of each image with one extra audio -> its ``(b, 1)`` logits."""
        return weighted_map_mean(self.positive_weights(maps), maps)[:, None] / self.tau

    def __call__(self, outputs):
        v_map, a_emb = outputs["v_map"], outputs["a_emb"]
        own = pair_maps(v_map, a_emb)  # (B, h, w)
        positive = weighted_map_mean(self.positive_weights(own), own)  # (B,)
        if self.margin:
            positive = positive - self.margin
        every = all_pair_maps(v_map, self.batch.gather(a_emb))  # (b, G, h, w): image n, audio m
        easy = weighted_map_mean(self.positive_weights(every), every) / self.tau  # (b, G)
        rows, columns = ops.shape(easy)
        first = self.batch.first_row(rows)
        diagonal = positive_mask(rows, columns, first) > 0.5  # operators: no host-made tensor
        easy = ops.where(diagonal, full_like(easy, EXCLUDED_LOGIT), easy)
        columns = [positive[:, None] / self.tau, easy]
        if self.silence_negative:  # the one silence clip, shared by every image
            columns.append(self.easy_column(shared_audio_maps(v_map, outputs["a_silence"][0])))
        if self.noise_negative:  # image i's own noise clip: per row, never gathered
            columns.append(self.easy_column(pair_maps(v_map, outputs["a_noise"])))
        if self.hard_negative:
            background = ops.sigmoid(-(own - self.epsilon_neg) / self.threshold_tau)
            columns.append(weighted_map_mean(background, own)[:, None] / self.tau)
        logits = ops.concatenate(columns, axis=1)
        return -ops.mean(ops.log_softmax(logits, axis=1)[:, 0])
