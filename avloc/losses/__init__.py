"""Loss terms, registered by name (``[loss.<name>]`` tables in recipes).

Importing this package registers every built-in term:
``ezvsl`` (EZ-VSL / marginNCE / SSL-SaN extra negatives), ``silence_map`` (L_S),
``noise_map`` (L_N), ``fnac_fns1``, ``fnac_fns2``, ``fnac_tne`` (FNAC), ``lvs`` (LVS) and
``equivariance`` (SSL-TIE's transformation equivariance).
Every term takes ``weight`` and ``start_epoch`` (warm-up gate, see :mod:`avloc.losses.base`).
"""

# importing the term modules registers them
from avloc.losses import contrastive, empty_maps, equivariance, fnac, lvs  # noqa: F401
from avloc.losses.base import LOSS_TERMS, LossTerm

__all__ = ["LOSS_TERMS", "LossTerm", "build_terms"]


def build_terms(loss_config: dict) -> dict[str, LossTerm]:
    """``{name: kwargs}`` from a recipe -> ``{name: term}`` (validated, in recipe order)."""
    if not loss_config:
        from avloc.errors import RecipeError

        raise RecipeError("loss: a recipe needs at least one [loss.<term>] table")
    return {
        name: LOSS_TERMS.build(name, kwargs, where=f"loss.{name}")
        for name, kwargs in loss_config.items()
    }
