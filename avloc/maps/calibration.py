"""Universal threshold calibration without labels (docs/protocol.md).

On ``calibration_samples`` images of a calibration split (by default the training shards; no
labels are read), the network's maps under the calibration audio are upsampled to the input
size and their per-sample maxima pooled; ``Uth = statistic(maxima)`` (see
:func:`avloc.metrics.calibrate_uth`). The settings are a recipe's ``[eval]`` section,
:class:`avloc.config.EvalConfig`, whose defaults are the only defaults. The calibration audio
(``eval.calibration_audio``) is any of:

- ``silence``: the all-zero clip;
- ``noise``: clipped N(0, 1) noise, a fresh clip per image (seeded apart from evaluation's
  noise, :data:`avloc.maps.conditions.CALIBRATION_NOISE_OFFSET`);
- ``other``: the audio of *another* calibration clip (a fixed derangement of the chosen images).
  It needs no labels; most such pairings are offscreen sounds for the image, some match an
  object that happens to be visible, so a high statistic of these maxima sits between
  "offscreen" and "sounding".

The result is stored in the network's ``calibration`` entry and saved with the checkpoint::

    {"uth": float (raw cosine), "statistic": str, "audio": [str, ...], "samples": int,
     "data": str, "<audio>_max": {"q1", "median", "q3"} per calibration audio}

:func:`calibrate` measures it (``avloc train`` calls it at the end); :func:`calibrate_checkpoint`
measures it for a saved network and writes it into the file (``avloc eval --calibrate``). The
statistic itself is pure numpy: :func:`avloc.metrics.calibrate_uth`. :func:`choose_uth` is the one
rule every job (``avloc eval``, ``localize``, ``serve``, ``video``) uses to pick the Uth it
applies: ``--uth``, else the calibration, else a one-line error saying how to calibrate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avloc.config import CALIBRATION_AUDIO, EvalConfig, Recipe, validate_calibration_audio
from avloc.errors import AvlocError, DataError
from avloc.maps.conditions import CALIBRATION_NOISE_OFFSET
from avloc.utils.interpolation import upsample

if TYPE_CHECKING:
    from avloc.data.shards import ShardSet

# The shards, the metrics and the recipe checks are imported where calibrating needs them:
# ``avloc localize`` imports this module for :func:`choose_uth` alone and starts faster without.


def choose_uth(
    override: float | None,
    calibrated: float | None,
    *,
    source: str,
    calibrate: str | None = None,
) -> tuple[float, str]:
    """The Uth to apply and where it came from: ``(override, "--uth")`` when one is given, else
    ``(calibrated, "calibration")``; without either, a one-line :class:`AvlocError`.

    Args:
        override: the user's ``--uth`` (raw cosine units), or None.
        calibrated: the calibrated Uth of the network (``net.calibration["uth"]``) or of saved
            results, or None when there is none.
        source: the file the calibration belongs to, named in the errors.
        calibrate: the command that would store a calibration
            (:func:`avloc.runs.calibrate_command`), or None when calibrating cannot help (saved
            per-sample results); the error then only says to pass ``--uth``.

    Raises:
        AvlocError: a non-finite ``override`` (naming ``--uth``); DataError: a non-finite
        calibration (naming ``source``) or none at all, saying how to get one.
    """
    fix = f"run `{calibrate}`, or pass --uth VALUE" if calibrate else "pass --uth VALUE"
    if override is not None:
        value = float(override)
        if not math.isfinite(value):
            raise AvlocError(f"--uth must be a finite number, got {override}")
        return value, "--uth"
    if calibrated is None:
        raise DataError(f"{source}: no calibrated universal threshold (Uth); {fix}")
    value = float(calibrated)
    if not math.isfinite(value):
        raise DataError(f"{source}: its calibrated Uth is {value}, not a finite number; {fix}")
    return value, "calibration"


def calibration_indices(total: int, samples: int) -> np.ndarray:
    """``samples`` indices spread evenly over ``0..total-1`` (all of them if fewer)."""
    if samples >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, samples).round().astype(np.int64))


def negative_maxima(
    net,
    shards: ShardSet,
    indices: np.ndarray,
    *,
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    conditions: tuple[str, ...] = CALIBRATION_AUDIO,
) -> dict[str, np.ndarray]:
    """Per-sample maxima (raw cosine, upsampled maps) under each calibration audio."""
    from avloc.maps.engine import MapsEngine

    unknown = sorted(set(conditions) - set(CALIBRATION_AUDIO))
    if unknown:
        raise ValueError(f"unknown calibration audio {unknown}; expected {CALIBRATION_AUDIO}")
    size = int(net.inputs["image_size"])
    out: dict[str, list[np.ndarray]] = {c: [] for c in conditions}
    batches = MapsEngine(net).condition_batches(
        shards,
        indices,
        conditions,
        seed=seed,
        noise_seed=seed + CALIBRATION_NOISE_OFFSET,
        batch_size=batch_size,
        progress=progress,
    )
    for part in batches:
        for name in conditions:
            out[name].append(upsample(part.maps[name], (size, size)).max(axis=(1, 2)))
    return {k: np.concatenate(v) for k, v in out.items()}


def _quartiles(x: np.ndarray) -> dict[str, float]:
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return {"q1": float(q1), "median": float(q2), "q3": float(q3)}


def calibrate(
    net,
    data: str | Path,
    settings: EvalConfig | None = None,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Measure Uth for ``net`` on the shards at ``data``; returns the calibration entry.

    ``settings``: a recipe's ``[eval]`` (default: :class:`~avloc.config.EvalConfig`'s
    defaults); ``seed``: the run's seed (noise clips and the ``other`` derangement).
    """
    from avloc.data.shards import ShardSet
    from avloc.metrics import calibrate_uth

    settings = settings or EvalConfig()
    shards = ShardSet(data)
    indices = calibration_indices(len(shards), settings.calibration_samples)
    maxima = negative_maxima(
        net,
        shards,
        indices,
        seed=seed,
        batch_size=settings.batch_size,
        progress=progress,
        conditions=tuple(settings.calibration_audio),
    )
    uth = calibrate_uth(maxima, settings.uth_statistic)
    if not math.isfinite(uth):
        raise AvlocError(
            f"{data}: the calibration maps are not finite (Uth = {uth}); the network's weights "
            "are broken, so no Uth is stored"
        )
    entry: dict[str, Any] = {
        "uth": uth,
        "statistic": settings.uth_statistic,
        "audio": list(settings.calibration_audio),
        "samples": int(len(indices)),
        "data": str(data),
    }
    for name, values in maxima.items():
        entry[f"{name}_max"] = _quartiles(values)
    return entry


# --------------------------------------------------------------------------------------------
# A saved network: ``avloc eval --calibrate``


def run_settings(recipe: Recipe | None) -> tuple[EvalConfig, int]:
    """The ``[eval]`` settings and seed of the run whose recipe is ``recipe``; the recipe
    defaults and seed 0 for a network without one (an imported checkpoint)."""
    return (EvalConfig(), 0) if recipe is None else (recipe.eval, recipe.seed)


def calibration_data(
    checkpoint: str | Path, recipe: Recipe | None, explicit: str | Path | None
) -> Path:
    """The calibration split: ``explicit``, else the training shards of ``recipe``."""
    if explicit:
        return Path(explicit)
    if recipe is not None and recipe.data.train:
        return Path(recipe.data.train)
    raise DataError(
        f"{checkpoint}: no recipe next to this checkpoint to find its training data; "
        "pass --calibration-data SHARDS"
    )


def calibrate_checkpoint(
    checkpoint: str | Path,
    recipe: Recipe | None = None,
    *,
    data: str | Path | None = None,
    samples: int | None = None,
    statistic: str | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    audio: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Calibrate Uth for the network in ``checkpoint`` and save it into the file (atomically).

    ``recipe``: the recipe of the run that trained it, or None. Settings left ``None`` come
    from that recipe (its ``[eval]`` and seed, :func:`run_settings`), so that calibrating a
    run's network repeats what training did; ``data`` defaults to the recipe's training shards.
    """
    from avloc.models.io import load_network, save_network
    from avloc.recipe_checks import check_uth_statistic

    settings, run_seed = run_settings(recipe)
    given = {
        "calibration_samples": samples,
        "uth_statistic": statistic,
        "calibration_audio": audio,
        "batch_size": batch_size,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})
    validate_calibration_audio(settings.calibration_audio, "--calibration-audio")
    check_uth_statistic(settings.uth_statistic, "--uth-statistic")
    net = load_network(checkpoint)
    where = calibration_data(checkpoint, recipe, data)
    net.calibration = calibrate(
        net, where, settings, seed=run_seed if seed is None else seed, progress=progress
    )
    save_network(net, checkpoint)
    return net.calibration
