"""The built-in synthetic data set ("synthetic scenes"): pure numpy, deterministic, fast.

There are ``K`` classes (``num_classes``, default 8, at most ``len(CLASSES)`` = 12). A class is a
visual object (a shape with its own colour and texture) paired with a sound (a distinct spectral
signature). A scene is an image with 1..``max_objects`` objects of *different* classes whose
boxes do not intersect, on a cluttered background, and an audio clip with the sound of *one* of
them (the "sounding object") mixed with white or pink noise. Several objects are visible, so
which one sounds can only be told by listening.

Sample ``i`` of a split depends only on ``(seed, split, i)`` (its random streams are spawned from
``np.random.SeedSequence([seed, split_id, i])``), so any range of samples can be made on its own,
in any order or in parallel, and the same arguments give byte-identical arrays.

Arrays of one scene (``S = config.image_size``, ``T = config.num_samples`` =
``round(sample_rate * clip_seconds)``, ``M = config.max_objects``):

============================  ============  ==========================================
key                           dtype, shape  meaning
============================  ============  ==========================================
``image``                     uint8 (S,S,3) RGB, rows top to bottom
``audio``                     float32 (T,)  mono waveform at ``sample_rate`` Hz, peak in
                                            [0.5, 0.95] (so always within [-1, 1])
``label``                     int32 ()      class of the sounding object
``box``                       float32 (4,)  sounding object's tight box ``x1, y1, x2, y2``
                                            in [0, 1]: pixel edges / S, x2 and y2 are the
                                            exclusive edges (``(max index + 1) / S``)
``mask``                      uint8 (S,S)   1 on the sounding object's pixels, else 0
``present``                   int32 (M,)    classes of the objects in the image, -1 padded
``object_boxes``              float32 (M,4) tight boxes of those objects (same order as
                                            ``present``), rows of -1 as padding
``offscreen_audio`` (test)    float32 (T,)  the sound of a class *not* in the image, with
                                            its own noise mix
``offscreen_label`` (test)    int32 ()      that class
============================  ============  ==========================================

Objects are drawn at a random size (the shape's square window is 19%-36% of the image side),
position and a small rotation (+-15 degrees). The background is a smooth random colour
gradient with low-contrast blobs, lines and speckle. The sound of a class varies per sample
(frequency jitter +-5%, phases, modulation offsets, level); the noise is white or pink at an
SNR drawn uniformly from ``config.snr_db`` (signal and noise RMS over the whole clip).

Generating one 128x128 scene with 3 s of 16 kHz audio takes about 2 ms on one CPU core (3 ms
for a test scene, which has two clips; 224x224 adds about 1 ms): :func:`make_scene` is
vectorised numpy throughout. Byte-identical output is guaranteed for the same numpy version and
machine; a different BLAS kernel (the background uses a small matrix product) may change an
image by a grey level here and there.
"""

from __future__ import annotations

from avloc.data.synthetic.classes import (
    CLASS_NAMES,
    CLASSES,
    SPLITS,
    ClassSpec,
    SyntheticConfig,
    scene_fields,
)
from avloc.data.synthetic.scenes import make_scene, make_scenes
from avloc.data.synthetic.sounds import class_sound

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "SPLITS",
    "ClassSpec",
    "SyntheticConfig",
    "class_sound",
    "make_scene",
    "make_scenes",
    "scene_fields",
]
