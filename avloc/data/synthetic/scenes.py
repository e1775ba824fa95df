"""Scenes: an image with several objects and the sound of one of them (see the package)."""

from __future__ import annotations

import numpy as np

from avloc.data.synthetic.classes import SyntheticConfig, scene_fields, split_number
from avloc.data.synthetic.images import background, draw_object, place, tight_box
from avloc.data.synthetic.sounds import noisy_sound, uniform


def make_scene(
    index: int, *, seed: int, split: str, config: SyntheticConfig = SyntheticConfig()
) -> dict[str, np.ndarray]:
    """Scene ``index`` of ``split`` ("train" or "test"); keys, shapes and dtypes as in the module
    docstring (test scenes add ``offscreen_audio`` and ``offscreen_label``).

    Depends only on ``(seed, split, index)`` and ``config``; ``seed`` and ``index`` are
    non-negative integers.
    """
    split_id = split_number(split)
    if int(index) != index or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    r_img, r_audio, r_off = (
        np.random.default_rng(child)
        for child in np.random.SeedSequence([int(seed), split_id, int(index)]).spawn(3)
    )
    s, m, k = config.image_size, config.max_objects, config.num_classes

    # layout: classes, windows, which one sounds
    n = int(r_img.integers(1, m + 1))
    windows = place(r_img, n, s, config.object_scale)
    n = len(windows)
    labels = r_img.choice(k, size=n, replace=False)
    source = int(r_img.integers(n))

    img = background(r_img, s)
    masks = [draw_object(img, int(c), w, r_img) for c, w in zip(labels, windows, strict=True)]
    # speckle over everything: uniform in +-amp levels per pixel and channel; then round
    amp = np.float32(r_img.uniform(3.0, 10.0))
    img += uniform(r_img, (s, s, 3), np.uint8) * (2 * amp) + (np.float32(0.5) - amp)
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)

    present = np.full(m, -1, dtype=np.int32)
    present[:n] = labels
    object_boxes = np.full((m, 4), -1.0, dtype=np.float32)
    for i, mk in enumerate(masks):
        object_boxes[i] = tight_box(mk)

    label = int(labels[source])
    out = {
        "image": image,
        "audio": noisy_sound(label, r_audio, config),
        "label": np.asarray(label, dtype=np.int32),
        "box": object_boxes[source].copy(),
        "mask": masks[source],
        "present": present,
        "object_boxes": object_boxes,
    }
    if split == "test":
        absent = np.setdiff1d(np.arange(k), labels)
        off = int(r_off.choice(absent))
        out["offscreen_audio"] = noisy_sound(off, r_off, config)
        out["offscreen_label"] = np.asarray(off, dtype=np.int32)
    return out


def make_scenes(
    start: int, stop: int, *, seed: int, split: str, config: SyntheticConfig = SyntheticConfig()
) -> dict[str, np.ndarray]:
    """Scenes ``start .. stop-1`` of ``split`` stacked along a new leading axis ``(N, ...)``.

    Identical to stacking :func:`make_scene` for each index, so ranges can be made separately
    (shards, workers, resuming) and concatenated.
    """
    if int(start) != start or int(stop) != stop or not 0 <= start <= stop:
        raise ValueError(f"need integers 0 <= start <= stop, got start={start!r}, stop={stop!r}")
    fields = scene_fields(split, config)
    out = {key: np.empty((stop - start, *shape), dtype) for key, (shape, dtype) in fields.items()}
    for j, i in enumerate(range(start, stop)):
        scene = make_scene(i, seed=seed, split=split, config=config)
        for key in fields:
            out[key][j] = scene[key]
    return out
