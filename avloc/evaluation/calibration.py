"""Universal threshold calibration without labels (SPEC 4.1).

On ``samples`` images of a calibration split (by default the training shards; no labels are
read), the network's maps under generated silence and noise are upsampled to the input size and
their per-sample maxima pooled; ``Uth = statistic(maxima)`` (third quartile by default, see
:func:`avloc.metrics.calibrate_uth`). The result is stored in the network's ``calibration``
entry and saved with the checkpoint::

    {"uth": float (raw cosine), "statistic": "q3", "samples": int, "data": str,
     "silence_max": {"q1", "median", "q3"}, "noise_max": {"q1", "median", "q3"}}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avloc.backend import inference_mode
from avloc.data.shards import ShardSet
from avloc.evaluation.inference import AudioFrontEnd, _to_numpy, encode_images
from avloc.evaluation.maps import upsample
from avloc.metrics import calibrate_uth


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
) -> dict[str, np.ndarray]:
    """Per-sample maxima (raw cosine) of the silence and noise maps: ``{"silence", "noise"}``."""
    size = int(net.inputs["image_size"])
    audio = AudioFrontEnd(net, int(shards.attrs.get("sample_rate", 16000)))
    silence = audio.silence_embedding(net)
    out: dict[str, list[np.ndarray]] = {"silence": [], "noise": []}
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        v = encode_images(net, shards.read(idx, ["image"])["image"])
        # Offset the noise seed so calibration never reuses the evaluation's noise clips.
        noise = np.stack([audio.noise(seed + 1_000_003, i) for i in idx])[..., None]
        with inference_mode():
            a_noise = _to_numpy(net.encode_audio(noise))
        for name, maps in (
            ("silence", np.einsum("bhwd,d->bhw", v, silence)),
            ("noise", np.einsum("bhwd,bd->bhw", v, a_noise)),
        ):
            out[name].append(upsample(maps, size).max(axis=(1, 2)))
        if progress:
            progress(len(idx))
    return {k: np.concatenate(v) for k, v in out.items()}


def _quartiles(x: np.ndarray) -> dict[str, float]:
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return {"q1": float(q1), "median": float(q2), "q3": float(q3)}


def calibrate(
    net,
    data: str | Path,
    *,
    samples: int = 256,
    statistic: str = "q3",
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Measure Uth for ``net`` on the shards at ``data``; returns the calibration entry."""
    shards = ShardSet(data)
    indices = calibration_indices(len(shards), samples)
    maxima = negative_maxima(
        net, shards, indices, seed=seed, batch_size=batch_size, progress=progress
    )
    return {
        "uth": calibrate_uth(maxima, statistic),
        "statistic": statistic,
        "samples": int(len(indices)),
        "data": str(data),
        "silence_max": _quartiles(maxima["silence"]),
        "noise_max": _quartiles(maxima["noise"]),
    }
