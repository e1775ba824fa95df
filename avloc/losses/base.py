"""The loss-term protocol and registry.

A loss term is a registered class whose constructor takes its recipe table (``[loss.<name>]``)
as keyword arguments, always including ``weight``. Calling it on the task's outputs returns a
scalar. ``needs`` names the extra audio inputs the term reads from the outputs:

- ``"silence"``: ``outputs["a_silence"]``, ``(1, D)`` embedding of the silence clip ``a_S``;
- ``"noise"``: ``outputs["a_noise"]``, ``(B, D)`` embeddings of one noise clip per image.

Always present: ``outputs["v_map"]`` ``(B, h, w, D)`` and ``outputs["a_emb"]`` ``(B, D)``,
both L2-normalised (see :mod:`avloc.models.avnet`).
"""

from __future__ import annotations

from avloc.registry import Registry

LOSS_TERMS = Registry("loss term")


class LossTerm:
    """Base class: subclasses set ``needs`` and implement ``__call__(outputs) -> scalar``."""

    needs: frozenset[str] = frozenset()

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def __call__(self, outputs: dict):  # pragma: no cover - interface
        raise NotImplementedError
