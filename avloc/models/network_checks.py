"""What a network file or an imported checkpoint may declare: checked before anything is built.

A ``.keras`` file's ``config.json`` says how big the network is (widths, blocks, the embedding
size) and how media become its inputs (image size, sample rate, clip length, border), and holds
its calibrated Uth. Every such number shares the type and the range of the recipe key it comes
from (:data:`avloc.config.RANGES`; :data:`RECIPE_KEYS` says which), so a crafted file cannot
make avloc build a network or an input beyond what a recipe could ask for.
:func:`check_network_config` checks a file's config, :func:`check_recipe_value` one number (what
``avloc import-checkpoint`` reads from tensor shapes). The sizes of the file's weights then bound
the network's (:func:`avloc.models.file_limits.check_parameters`).

Errors are one line, a :class:`~avloc.errors.DataError` naming the file and the key:
``net.keras: inputs.image_size: must be between 16 and 2048 (pixels), got 1000000``.
"""

from __future__ import annotations

import functools
import typing
from pathlib import Path
from typing import Any

from avloc.errors import DataError, RecipeError

#: A network config's key -> the recipe key whose type and range it shares.
RECIPE_KEYS = {
    "embed_dim": "model.embed_dim",
    "visual_dropout": "model.visual_dropout",
    "visual.width": "model.visual.width",
    "visual.blocks": "model.visual.blocks",
    "visual.last_stride": "model.visual.last_stride",
    "visual.stem_pool": "model.visual.stem_pool",
    "audio.width": "model.audio.width",
    "audio.blocks": "model.audio.blocks",
    "audio.stem_pool": "model.audio.stem_pool",
    "inputs.image_size": "data.image_size",
    "inputs.sample_rate": "data.sample_rate",
    "inputs.clip_seconds": "data.clip_seconds",
    "inputs.inference_border": "data.inference_border",
}
#: Types of the ``inputs`` keys recipes do not have (their values: the input contract's checks).
CONTRACT_TYPES = {"stft_hop": int, "audio_frontend": str, "image_norm": str}
#: The config's tables: a value there that is not a table is refused.
TABLES = ("visual", "audio", "inputs")


@functools.cache
def recipe_annotation(recipe_key: str) -> Any:
    """The type a recipe key is declared with (``model.visual.width`` -> ``int``)."""
    from avloc.config import Recipe

    annotation: Any = Recipe
    for part in recipe_key.split("."):
        annotation = typing.get_type_hints(annotation)[part]
    return annotation


def check_recipe_value(path: Path, where: str, recipe_key: str, value: Any) -> Any:
    """``value`` (read at ``where`` in the file ``path``) checked against ``recipe_key``'s type
    and range; one-line DataError naming both. Returns the value (tuples for lists)."""
    from avloc.registry import check_value

    try:
        value = check_value(value, recipe_annotation(recipe_key), where)
    except RecipeError as exc:
        raise DataError(f"{path}: {exc}") from None
    problem = range_problem(recipe_key, value)
    if problem:
        shown = list(value) if isinstance(value, tuple) else value
        raise DataError(f"{path}: {where}: must be {problem} (as {recipe_key}), got {shown}")
    return value


def range_problem(recipe_key: str, value: Any) -> str:
    """What ``value`` must be, as ``recipe_key`` in recipes, when it is not; "" when it is."""
    from avloc.config import RANGES

    if recipe_key == "model.visual_dropout":  # checked where the architectures build it
        from avloc.models.avnet import visual_dropout_problem

        return visual_dropout_problem(value)
    ok, words = RANGES.get(recipe_key, (None, ""))
    return words if ok is not None and not ok(value) else ""


def check_network_config(path: Path, config: dict[str, Any]) -> None:
    """One-line DataError naming ``path`` and the key for the first value of a network file's
    config outside its recipe key's type and range, a non-finite calibrated Uth, or inputs the
    input contract refuses (:class:`avloc.inputs.contract.InputContract`). Builds nothing."""
    from avloc.registry import check_value

    for table in TABLES:
        value = config.get(table)
        if value is not None and not isinstance(value, dict):
            raise DataError(f"{path}: {table}: expected a table, got {type(value).__name__}")
    for key, recipe_key in RECIPE_KEYS.items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            check_recipe_value(path, key, recipe_key, node)
    calibration = config.get("calibration")
    if calibration is not None:
        if not isinstance(calibration, dict):
            kind = type(calibration).__name__
            raise DataError(f"{path}: calibration: expected a table, got {kind}")
        if calibration:  # {} means not calibrated, as None
            try:
                check_value(calibration.get("uth"), float, "calibration.uth")
            except RecipeError as exc:
                raise DataError(f"{path}: {exc}") from None
    _check_contract(path, config.get("inputs") or {})


def _check_contract(path: Path, inputs: dict[str, Any]) -> None:
    """What the input contract itself checks (front end, STFT hop, image statistics)."""
    from avloc.inputs.contract import InputContract
    from avloc.models.avnet import DEFAULT_INPUTS
    from avloc.registry import check_value

    for key, kind in CONTRACT_TYPES.items():
        if key in inputs:
            try:
                check_value(inputs[key], kind, f"inputs.{key}")
            except RecipeError as exc:
                raise DataError(f"{path}: {exc}") from None
    try:
        InputContract({**DEFAULT_INPUTS, **inputs})
    except ValueError as exc:
        raise DataError(f"{path}: inputs.{exc}") from None  # its errors start with the key


_ABSENT = object()
