"""Universal threshold calibration without labels (SPEC 4.1).

On ``samples`` images of a calibration split (by default the training shards; no labels are
read), the network's maps under the calibration audio are upsampled to the input size and their
per-sample maxima pooled; ``Uth = statistic(maxima)`` (see :func:`avloc.metrics.calibrate_uth`).
The calibration audio (``eval.calibration_audio``) is any of:

- ``silence``: the all-zero clip;
- ``noise``: clipped N(0, 1) noise, a fresh clip per image;
- ``other``: the audio of *another* calibration clip (a fixed derangement of the chosen images).
  It needs no labels; most such pairings are offscreen sounds for the image, some match an
  object that happens to be visible, so a high statistic of these maxima sits between
  "offscreen" and "sounding".

The result is stored in the network's ``calibration`` entry and saved with the checkpoint::

    {"uth": float (raw cosine), "statistic": "q3", "audio": ["silence", "noise"],
     "samples": int, "data": str, "<condition>_max": {"q1", "median", "q3"} per condition}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avloc.backend import inference_mode
from avloc.config import CALIBRATION_AUDIO
from avloc.data.shards import ShardSet
from avloc.evaluation.inference import AudioFrontEnd, _to_numpy, derangement, encode_images
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
    conditions: tuple[str, ...] = CALIBRATION_AUDIO,
) -> dict[str, np.ndarray]:
    """Per-sample maxima (raw cosine) of the maps under each of ``conditions``."""
    unknown = sorted(set(conditions) - set(CALIBRATION_AUDIO))
    if unknown:
        raise ValueError(f"unknown calibration audio {unknown}; expected {CALIBRATION_AUDIO}")
    size = int(net.inputs["image_size"])
    audio = AudioFrontEnd(net, int(shards.attrs.get("sample_rate", 16000)))
    silence = audio.silence_embedding(net) if "silence" in conditions else None
    partner = derangement(len(indices), seed) if "other" in conditions else None
    out: dict[str, list[np.ndarray]] = {c: [] for c in conditions}
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        v = encode_images(net, shards.read(idx, ["image"])["image"])
        maps = {}
        if silence is not None:
            maps["silence"] = np.einsum("bhwd,d->bhw", v, silence)
        specs, parts = [], []
        if "noise" in conditions:
            # Offset the noise seed so calibration never reuses the evaluation's noise clips.
            specs += [audio.noise(seed + 1_000_003, i) for i in idx]
            parts.append("noise")
        if partner is not None:
            other = indices[partner[start : start + len(idx)]]
            specs += [audio(w) for w in shards.read(other, ["audio"])["audio"]]
            parts.append("other")
        if specs:
            with inference_mode():
                a = _to_numpy(net.encode_audio(np.stack(specs)[..., None]))
            for k, name in enumerate(parts):
                maps[name] = np.einsum("bhwd,bd->bhw", v, a[k * len(idx) : (k + 1) * len(idx)])
        for name in conditions:
            out[name].append(upsample(maps[name], size).max(axis=(1, 2)))
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
    audio: tuple[str, ...] = ("silence", "noise"),
) -> dict[str, Any]:
    """Measure Uth for ``net`` on the shards at ``data``; returns the calibration entry."""
    shards = ShardSet(data)
    indices = calibration_indices(len(shards), samples)
    maxima = negative_maxima(
        net,
        shards,
        indices,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        conditions=tuple(audio),
    )
    entry: dict[str, Any] = {
        "uth": calibrate_uth(maxima, statistic),
        "statistic": statistic,
        "audio": list(audio),
        "samples": int(len(indices)),
        "data": str(data),
    }
    for name, values in maxima.items():
        entry[f"{name}_max"] = _quartiles(values)
    return entry
