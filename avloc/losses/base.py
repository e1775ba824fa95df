"""The loss-term protocol and registry.

A loss term is a registered class whose constructor takes its recipe table (``[loss.<name>]``)
as keyword arguments, always including ``weight``. Calling it on the task's outputs returns a
scalar. ``needs`` names the extra audio inputs the term reads from the outputs:

- ``"silence"``: ``outputs["a_silence"]``, ``(1, D)`` embedding of the silence clip ``a_S``;
- ``"noise"``: ``outputs["a_noise"]``, ``(B, D)`` embeddings of one noise clip per image.

Always present: ``outputs["v_map"]`` ``(B, h, w, D)`` and ``outputs["a_emb"]`` ``(B, D)``,
both L2-normalised (see :mod:`avloc.models.avnet`).

Every term also takes ``start_epoch`` (0-based): before that epoch the task multiplies the term
by 0, so it contributes neither to the total nor to the gradient (a warm-up, e.g. FNAC's three
epochs of EZ-VSL alone). The gate is a 0/1 factor computed with ``keras.ops`` from the task's
epoch variable, so it works inside compiled train steps; see :mod:`avloc.task`.

Negatives across devices: a term that contrasts rows with each other (``ezvsl``, ``fnac_*``,
``lvs``) reads the batch through ``self.batch``, a :class:`LocalBatch` unless the task was built
for data-parallel training with global negatives (:mod:`avloc.runtime.distribute`). Such a term
computes
the rows of its ``(b, G)`` matrices for its own ``b`` rows against all ``G`` gathered rows
(``batch.gather``), where its positives sit at columns ``batch.first_row(b) + i``; averaged over
devices this is exactly the loss of the ``G``-row batch on one device. Terms that only look at a
row's own maps (``silence_map``, ``noise_map``) need nothing: their per-device means average to
the global mean because every device holds the same number of rows.
"""

from __future__ import annotations

from avloc.registry import Registry
from avloc.runtime.batch import LOCAL_BATCH, LocalBatch

LOSS_TERMS = Registry("loss term")


class LossTerm:
    """Base class: subclasses set ``needs`` and implement ``__call__(outputs) -> scalar``.

    Subclasses list ``weight`` and ``start_epoch`` in their own signature (the registry checks
    recipe keys against it) and pass both on to ``LossTerm.__init__``.
    """

    needs: frozenset[str] = frozenset()
    #: Where the candidate rows come from (set by the task for global negatives).
    batch: LocalBatch = LOCAL_BATCH

    def __init__(self, weight: float = 1.0, start_epoch: int = 0):
        self.weight = weight
        #: First 0-based epoch in which the term counts (0 = from the start).
        self.start_epoch = start_epoch

    def __call__(self, outputs: dict):  # pragma: no cover - interface
        raise NotImplementedError


def negative_needs(silence_negative: bool, noise_negative: bool) -> frozenset[str]:
    """The ``needs`` of a contrastive term with SSL-SaN's extra negatives switched on."""
    return frozenset(
        name
        for name, wanted in (("silence", silence_negative), ("noise", noise_negative))
        if wanted
    )
