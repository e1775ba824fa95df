"""Single-object images of the synthetic world: the data of the visual trunk's pretraining.

The synthetic twins start their visual encoder from a supervised classification pretraining, as
the paper's recipes start from ImageNet (:mod:`avloc.jobs.pretrain`). Its images are made here:
one object of one of the ``num_classes`` classes of :data:`avloc.data.synthetic.CLASSES` (the
scene classes come first; classes beyond a scene set's ``num_classes`` act as distractors) on
the same cluttered background as the scenes, with the same speckle.

Image ``i`` depends only on ``(seed, i)``: its random stream is spawned from
``np.random.SeedSequence([seed, PRETRAIN_SPLIT_ID, i])``. ``PRETRAIN_SPLIT_ID`` differs from
every scene split's id (:data:`avloc.data.synthetic.SPLITS`), so no pretraining image is ever an
audio-visual training or test scene, whatever the seeds.

Arrays (``S = image_size``): ``image`` uint8 ``(S, S, 3)`` RGB; ``label`` int32 ``()`` class index.
Objects are larger on average than in the scenes (the square window is ``object_scale`` of the
side, 19%-60% by default), as ImageNet's objects are larger than VGG-SS's sounding objects.
"""

from __future__ import annotations

import numpy as np

from avloc.data.synthetic.classes import CLASSES, SPLITS
from avloc.data.synthetic.images import background, draw_object
from avloc.data.synthetic.sounds import uniform

#: Seed-sequence id of the pretraining images (scene splits use 0 and 1).
PRETRAIN_SPLIT_ID = 7
assert PRETRAIN_SPLIT_ID not in SPLITS.values()


def make_object_image(
    index: int,
    *,
    seed: int,
    image_size: int = 112,
    num_classes: int = len(CLASSES),
    object_scale: tuple[float, float] = (0.19, 0.6),
) -> tuple[np.ndarray, int]:
    """Image ``index``: ``(uint8 (S, S, 3), label)``, the label uniform over ``num_classes``."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in [2, {len(CLASSES)}], got {num_classes}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), PRETRAIN_SPLIT_ID, int(index)]))
    s = int(image_size)
    label = int(rng.integers(num_classes))
    side = max(6, int(round(rng.uniform(*object_scale) * s)))
    x0, y0 = (int(v) for v in rng.integers(0, s - side + 1, 2))
    img = background(rng, s)
    draw_object(img, label, (x0, y0, side), rng)
    amp = np.float32(rng.uniform(3.0, 10.0))
    img += uniform(rng, (s, s, 3), np.uint8) * (2 * amp) + (np.float32(0.5) - amp)
    return np.clip(img, 0, 255, out=img).astype(np.uint8), label


def make_object_images(
    start: int, stop: int, *, seed: int, image_size: int = 112, num_classes: int = len(CLASSES)
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. stop-1``: uint8 ``(N, S, S, 3)`` and int32 labels ``(N,)``."""
    images = np.empty((stop - start, image_size, image_size, 3), np.uint8)
    labels = np.empty(stop - start, np.int32)
    for j, i in enumerate(range(start, stop)):
        images[j], labels[j] = make_object_image(
            i, seed=seed, image_size=image_size, num_classes=num_classes
        )
    return images, labels
