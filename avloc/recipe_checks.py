"""Recipe checks that need a stage, run by every job before it writes anything.

:func:`avloc.config.load_recipe` parses and type-checks; :func:`check_recipe` then asks the
stages that build from the recipe: every ``[loss.<term>]`` table against its registered term
(:mod:`avloc.losses`) and against what the training task feeds (:data:`avloc.task.FEEDS`),
``model.arch`` against the registered architectures
(:mod:`avloc.models.avnet`) and ``eval.uth_statistic`` against :func:`avloc.metrics.calibrate_uth`.
Errors are one-line :class:`~avloc.errors.RecipeError`\\ s that name the TOML path (and the
recipe file when given).
"""

from __future__ import annotations

from pathlib import Path

from avloc.config import Recipe
from avloc.errors import RecipeError


def check_loss_terms(loss: dict) -> None:
    """Every ``[loss.<term>]`` table against the registered term's signature."""
    from avloc.losses import LOSS_TERMS  # imports Keras

    for name, kwargs in loss.items():
        where = f"loss.{name}"
        if not isinstance(kwargs, dict):
            raise RecipeError(f"{where}: expected a table, got {type(kwargs).__name__}")
        LOSS_TERMS.check_kwargs(name, kwargs, where)


def check_terms_are_fed(loss: dict) -> None:
    """Every term's ``needs`` is an input the training task makes (:data:`avloc.task.FEEDS`)."""
    from avloc.losses import LOSS_TERMS
    from avloc.task import FEEDS

    for name, kwargs in loss.items():
        missing = sorted(set(LOSS_TERMS.build(name, kwargs, f"loss.{name}").needs) - FEEDS)
        if missing:
            raise RecipeError(
                f"loss.{name}: needs {', '.join(missing)}, which avloc train does not make; "
                f"remove [loss.{name}] from the recipe"
            )


def check_training_inputs(data) -> None:
    """Augmentations with a numpy path only are not asked to run inside the step."""
    if data.image_augment != "crop_flip" and data.preprocess_on_device is True:
        raise RecipeError(
            f"data.preprocess_on_device: data.image_augment = {data.image_augment!r} runs in "
            "the loader only; set data.preprocess_on_device = false"
        )


def check_architecture(arch: str) -> None:
    from avloc.models.avnet import ARCHITECTURES  # imports Keras

    ARCHITECTURES.get(arch, "model.arch")


def check_uth_statistic(statistic: str, where: str = "eval.uth_statistic") -> str:
    """RecipeError naming ``where`` unless ``statistic`` is a known Uth statistic."""
    from avloc.metrics import UTH_STATISTICS, calibrate_uth

    try:
        calibrate_uth([0.0], statistic)
    except ValueError:
        raise RecipeError(f"{where}: {statistic!r} is not one of {UTH_STATISTICS} or pXX") from None
    return statistic


def check_recipe(recipe: Recipe, path: str | Path | None = None) -> Recipe:
    """Every stage-level check; returns ``recipe``. ``path`` prefixes the error."""
    try:
        check_loss_terms(recipe.loss)
        check_terms_are_fed(recipe.loss)
        check_architecture(recipe.model.arch)
        check_uth_statistic(recipe.eval.uth_statistic)
        check_training_inputs(recipe.data)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}" if path else str(exc)) from None
    return recipe
