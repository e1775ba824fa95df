"""Audio conditions: what an image is paired with, and the one seeding rule (docs/protocol.md).

- ``positive``: the sample's own audio;
- ``silence``: the all-zero clip (one embedding shared by every image);
- ``noise``: clipped N(0, 1) noise, one clip per sample drawn from
  ``default_rng((noise_seed, index))``, so a sample gets the same noise whatever the batch size,
  the model or the order; calibration uses ``noise_seed = seed + CALIBRATION_NOISE_OFFSET`` so it
  never reuses the evaluation's clips;
- ``offscreen``: the shard's ``offscreen_audio`` (a class absent from the image);
- ``shuffled`` (evaluation's control) and ``other`` (calibration audio): the audio of another
  sample of the same set, the fixed derangement :func:`derangement` ``(len(indices), seed)``.
"""

from __future__ import annotations

import numpy as np

from avloc.errors import DataError

POSITIVE = "positive"
SILENCE = "silence"
NOISE = "noise"
OFFSCREEN = "offscreen"
SHUFFLED = "shuffled"
OTHER = "other"
#: Conditions whose audio is another sample's own audio (a derangement of the chosen samples).
PARTNER_CONDITIONS = frozenset({SHUFFLED, OTHER})
CONDITIONS = (POSITIVE, SILENCE, NOISE, OFFSCREEN, SHUFFLED, OTHER)
#: Added to the seed of calibration noise so that calibration and evaluation clips differ.
CALIBRATION_NOISE_OFFSET = 1_000_003


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point (``perm[i] != i``) for ``n >= 2``; deterministic."""
    if n < 2:
        raise DataError("audio of another sample (shuffled / other) needs at least 2 samples")
    rng = np.random.default_rng((seed, 7))
    perm = rng.permutation(n)
    # Rotate by one within the permutation's cycle order: i -> next element never equals i.
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.roll(perm, -1)
    return out


def noise_rng(noise_seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``'s noise clip."""
    return np.random.default_rng((int(noise_seed), int(index)))
