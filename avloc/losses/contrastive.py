"""Multiple-instance contrastive terms of the EZ-VSL family (docs/method.md), in ``keras.ops``.

``ezvsl`` (EZ-VSL, marginNCE and SSL-SaN's extra negatives in one term):

    l[n, m] = max_{h,w} S(v_n, a_m) / tau                       (B, B) MIL logits
    l[i, i] = (max_{h,w} S(v_i, a_i) - margin) / tau           marginNCE; margin 0 = EZ-VSL
    L = CE(l_img->aud, I) + CE(l^T, I)

where the image-to-audio candidates are the B real audios, plus the silence clip ``a_S`` when
``silence_negative`` and the B noise clips ``a_N_j`` when ``noise_negative`` (the SSL-SaN paper);
the audio-to-image direction is unchanged. CE is the mean softmax cross-entropy with the
diagonal as the target. Shapes: ``v_map (B, h, w, D)``, ``a_emb (B, D)``; returns a scalar.

Data parallel with global negatives (:mod:`avloc.runtime.distribute`): a device holding ``b`` of the
``G`` rows computes its ``b`` image rows against all ``G`` audios (and noise clips) and its ``b``
audio rows against all ``G`` images, targets at columns ``first_row + i``; the mean of the
devices' values is the ``G``-row loss above.
"""

from __future__ import annotations

from keras import ops

from avloc.losses.base import LOSS_TERMS, LossTerm, negative_needs
from avloc.models.similarity import all_pair_maps


def mil_logits(v_map, a_emb):
    """``max_{h,w} S(v_n, a_m)``: ``(N, h, w, D) x (M, D) -> (N, M)``."""
    return ops.max(all_pair_maps(v_map, a_emb), axis=(2, 3))


def positive_mask(rows, columns, first_row=0, dtype="float32"):
    """``(rows, columns)``: 1 at ``[i, first_row + i]`` (the positives), 0 elsewhere."""
    if isinstance(first_row, int) and first_row == 0:
        return ops.eye(rows, columns, dtype=dtype)
    return ops.one_hot(first_row + ops.arange(rows), columns, dtype=dtype)


def diagonal_cross_entropy(logits, first_row=0):
    """Mean over rows i of ``-log softmax(logits[i])[first_row + i]``; ``logits`` ``(B, C)``."""
    batch = ops.shape(logits)[0]
    columns = ops.shape(logits)[1]
    log_probs = ops.log_softmax(logits, axis=1)
    target = positive_mask(batch, columns, first_row, log_probs.dtype)
    if isinstance(batch, int):  # a static batch: a Python divisor, no tensor made from it
        return -ops.sum(log_probs * target) / batch
    return -ops.sum(log_probs * target) / ops.cast(batch, log_probs.dtype)


@LOSS_TERMS.register("ezvsl")
class MILContrastive(LossTerm):
    """EZ-VSL MIL contrastive loss with optional marginNCE margin and SSL-SaN negatives."""

    def __init__(
        self,
        weight: float = 1.0,
        tau: float = 0.03,
        margin: float = 0.0,
        silence_negative: bool = False,
        noise_negative: bool = False,
        start_epoch: int = 0,
    ):
        super().__init__(weight, start_epoch)
        self.tau = tau
        self.margin = margin
        self.silence_negative = silence_negative
        self.noise_negative = noise_negative
        self.needs = negative_needs(silence_negative, noise_negative)

    def __call__(self, outputs):
        v_map, a_emb = outputs["v_map"], outputs["a_emb"]
        batch = self.batch
        first = batch.first_row(ops.shape(a_emb)[0])
        image_rows = mil_logits(v_map, batch.gather(a_emb))  # (b, G): own images, every audio
        if batch.spans_devices:
            audio_rows = ops.transpose(mil_logits(batch.gather(v_map), a_emb))  # (b, G)
        else:
            audio_rows = ops.transpose(image_rows)  # one device: the same (B, B) matrix
        if self.margin:
            rows, columns = ops.shape(image_rows)
            positive = self.margin * positive_mask(rows, columns, first, image_rows.dtype)
            image_rows = image_rows - positive
            audio_rows = audio_rows - positive
        logits = image_rows / self.tau
        candidates = [logits]
        if self.silence_negative:
            candidates.append(mil_logits(v_map, outputs["a_silence"]) / self.tau)  # (b, 1)
        if self.noise_negative:
            noise = batch.gather(outputs["a_noise"])
            candidates.append(mil_logits(v_map, noise) / self.tau)  # (b, G)
        image_to_audio = ops.concatenate(candidates, axis=1) if len(candidates) > 1 else logits
        return diagonal_cross_entropy(image_to_audio, first) + diagonal_cross_entropy(
            audio_rows / self.tau, first
        )
