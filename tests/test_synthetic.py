"""Tests of the synthetic scenes (:mod:`avloc.data.synthetic`)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from avloc.data.synthetic import (
    CLASS_NAMES,
    CLASSES,
    SyntheticConfig,
    class_sound,
    make_scene,
    make_scenes,
    scene_fields,
)
from avloc.errors import AvlocError, RecipeError

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

CFG = SyntheticConfig()
CFG12 = SyntheticConfig(num_classes=12)


@pytest.fixture(scope="module")
def test_scenes() -> dict[str, np.ndarray]:
    return make_scenes(0, 200, seed=7, split="test", config=CFG)


def _pixel_box(box: np.ndarray, s: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(float(v) * s)) for v in box)
    return x1, y1, x2, y2


def _log_spectrum(x: np.ndarray, n: int = 512) -> np.ndarray:
    """Level-invariant log of the frame-averaged power spectrum."""
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    log = np.log(power + 1e-10)
    return log - log.mean()


def _nearest_centroid_accuracy(x_fit, y_fit, x_test, y_test, k: int) -> float:
    centroids = np.stack([x_fit[y_fit == c].mean(axis=0) for c in range(k)])
    dist = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float(np.mean(np.argmin(dist, axis=1) == y_test))


# --- API, shapes, determinism --------------------------------------------------------------


def test_class_names():
    assert len(CLASS_NAMES) >= 12 and len(CLASS_NAMES) == len(CLASSES)
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert len({c.shape for c in CLASSES}) == len(CLASSES)
    assert len({c.colour for c in CLASSES}) == len(CLASSES)
    assert len({c.sound for c in CLASSES}) == len(CLASSES)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("size", [128, 224])
def test_keys_shapes_dtypes(split, size):
    cfg = SyntheticConfig(image_size=size)
    scene = make_scene(3, seed=0, split=split, config=cfg)
    fields = scene_fields(split, cfg)
    assert set(scene) == set(fields)
    assert ("offscreen_audio" in scene) == (split == "test")
    for key, (shape, dtype) in fields.items():
        assert scene[key].shape == shape, key
        assert scene[key].dtype == dtype, key
    assert scene["image"].shape == (size, size, 3)
    assert scene["audio"].shape == (48000,)


def test_same_arguments_same_arrays():
    a = make_scene(11, seed=3, split="test")
    b = make_scene(11, seed=3, split="test")
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert a[key].tobytes() == b[key].tobytes(), key


def test_different_seed_split_or_index_differ():
    base = make_scene(11, seed=3, split="train")
    for other in (
        make_scene(11, seed=4, split="train"),
        make_scene(11, seed=3, split="test"),
        make_scene(12, seed=3, split="train"),
    ):
        assert not np.array_equal(base["image"], other["image"])
        assert not np.array_equal(base["audio"], other["audio"])


@pytest.mark.parametrize("split", ["train", "test"])
def test_make_scenes_is_stacked_make_scene_and_range_independent(split):
    full = make_scenes(0, 10, seed=5, split=split)
    tail = make_scenes(5, 10, seed=5, split=split)
    singles = [make_scene(i, seed=5, split=split) for i in range(10)]
    assert set(full) == set(singles[0]) == set(tail)
    for key in full:
        assert full[key].shape[0] == 10 and full[key].dtype == singles[0][key].dtype
        assert np.array_equal(full[key], np.stack([s[key] for s in singles])), key
        assert np.array_equal(tail[key], full[key][5:]), key


def test_make_scenes_empty_range():
    empty = make_scenes(4, 4, seed=0, split="test")
    fields = scene_fields("test")
    for key, (shape, dtype) in fields.items():
        assert empty[key].shape == (0, *shape) and empty[key].dtype == dtype


# --- geometry ------------------------------------------------------------------------------


def test_boxes_masks_and_labels(test_scenes):
    s, m = CFG.image_size, CFG.max_objects
    counts = set()
    for i in range(len(test_scenes["label"])):
        mask = test_scenes["mask"][i]
        box = test_scenes["box"][i]
        present = test_scenes["present"][i]
        boxes = test_scenes["object_boxes"][i]
        label = int(test_scenes["label"][i])

        assert set(np.unique(mask)) <= {0, 1} and mask.sum() > 0
        assert np.all((box >= 0) & (box <= 1)) and box[0] < box[2] and box[1] < box[3]
        x1, y1, x2, y2 = _pixel_box(box, s)
        np.testing.assert_allclose(box, np.array([x1, y1, x2, y2]) / s, atol=1e-6)
        ys, xs = np.nonzero(mask)
        # tight: all mask pixels inside, and the mask touches all four sides
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)

        n = int(np.sum(present >= 0))
        counts.add(n)
        assert 1 <= n <= m
        assert np.all(present[:n] >= 0) and np.all(present[:n] < CFG.num_classes)
        assert np.all(present[n:] == -1) and np.all(boxes[n:] == -1)
        assert len(set(present[:n].tolist())) == n
        assert label in present[:n].tolist()
        src = [j for j in range(n) if np.array_equal(boxes[j], box)]
        assert len(src) == 1 and present[src[0]] == label
        for j in range(n):
            a = _pixel_box(boxes[j], s)
            assert 0 <= a[0] < a[2] <= s and 0 <= a[1] < a[3] <= s
            for k in range(j + 1, n):
                b = _pixel_box(boxes[k], s)
                intersect = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                assert not intersect, (i, j, k)
    assert counts == set(range(1, m + 1))  # 1, 2 and 3 objects all occur


def test_offscreen(test_scenes):
    for i in range(len(test_scenes["label"])):
        off = int(test_scenes["offscreen_label"][i])
        assert 0 <= off < CFG.num_classes
        assert off not in test_scenes["present"][i].tolist()
        assert not np.array_equal(test_scenes["offscreen_audio"][i], test_scenes["audio"][i])


# --- audio ---------------------------------------------------------------------------------


def test_audio_range_length_not_silent(test_scenes):
    t = CFG.num_samples
    for key in ("audio", "offscreen_audio"):
        audio = test_scenes[key]
        assert audio.dtype == np.float32 and audio.shape == (200, t)
        assert np.all(np.isfinite(audio)) and np.all(np.abs(audio) <= 1.0)
        peak = np.abs(audio).max(axis=1)
        assert np.all(peak >= 0.5 - 1e-6)
        assert np.all(np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=1)) > 0.01)


def test_class_sound_varies_and_has_right_shape():
    rng = np.random.default_rng(0)
    cfg = SyntheticConfig(num_classes=12, clip_seconds=1.5, sample_rate=22050)
    for k in range(12):
        a, b = class_sound(k, rng, cfg), class_sound(k, rng, cfg)
        assert a.dtype == np.float32 and a.shape == (round(22050 * 1.5),)
        assert np.all(np.abs(a) <= 0.95 + 1e-6) and np.abs(a).max() >= 0.5 - 1e-6
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("cfg", [CFG, CFG12], ids=["8 classes", "12 classes"])
def test_clean_sounds_are_separable(cfg):
    k = cfg.num_classes
    rng = np.random.default_rng(2024)
    feats = np.stack(
        [[_log_spectrum(class_sound(c, rng, cfg)) for _ in range(12)] for c in range(k)]
    )
    labels = np.repeat(np.arange(k), 6)
    fit = feats[:, :6].reshape(k * 6, -1)
    test = feats[:, 6:].reshape(k * 6, -1)
    assert _nearest_centroid_accuracy(fit, labels, test, labels, k) > 0.9


def test_noisy_scene_audio_is_separable(test_scenes):
    feats = np.stack([_log_spectrum(a) for a in test_scenes["audio"]])
    labels = test_scenes["label"]
    acc = _nearest_centroid_accuracy(feats[:100], labels[:100], feats[100:], labels[100:], 8)
    assert acc > 0.6  # chance is 1/8
    off = np.stack([_log_spectrum(a) for a in test_scenes["offscreen_audio"]])
    acc = _nearest_centroid_accuracy(
        feats[:100], labels[:100], off, test_scenes["offscreen_label"], 8
    )
    assert acc > 0.6


# --- images --------------------------------------------------------------------------------


def test_background_is_not_flat(test_scenes):
    s = CFG.image_size
    for i in range(0, 200, 10):
        image = test_scenes["image"][i]
        assert image.dtype == np.uint8
        bg = np.ones((s, s), dtype=bool)
        for box in test_scenes["object_boxes"][i]:
            if box[0] >= 0:
                x1, y1, x2, y2 = _pixel_box(box, s)
                bg[y1:y2, x1:x2] = False
        pixels = image[bg].astype(np.float64)
        assert pixels.std(axis=0).mean() > 4.0
        # and not just noise: local detail on top of a smooth large-scale gradient
        assert np.abs(np.diff(image.astype(np.float64), axis=1))[bg[:, 1:]].mean() > 1.0


@pytest.mark.parametrize("cfg", [CFG, CFG12], ids=["8 classes", "12 classes"])
def test_object_colour_differs_per_class(cfg):
    scenes = make_scenes(0, 150, seed=1, split="train", config=cfg)
    means = {c: [] for c in range(cfg.num_classes)}
    for image, mask, label in zip(scenes["image"], scenes["mask"], scenes["label"], strict=True):
        means[int(label)].append(image[mask.astype(bool)].astype(np.float64).mean(axis=0))
    assert all(len(v) >= 3 for v in means.values())
    centres = np.stack([np.mean(means[c], axis=0) for c in range(cfg.num_classes)])
    spread = max(np.std(means[c], axis=0).max() for c in range(cfg.num_classes))
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    dist[np.diag_indices_from(dist)] = np.inf
    assert dist.min() > 25.0 and dist.min() > 2 * spread


def test_mask_pixels_are_object_colours():
    """The sounding mask lies on the painted object: its pixels are near the class colours."""
    for i in range(20):
        scene = make_scene(i, seed=9, split="train")
        colour = np.array(CLASSES[int(scene["label"])].colour, dtype=np.float64)
        pixels = scene["image"][scene["mask"].astype(bool)].astype(np.float64)
        # primary tone (+-8% brightness, speckle) or the texture's secondary tone
        dist_primary = np.linalg.norm(pixels - colour, axis=1)
        assert np.mean(dist_primary < 60) > 0.3


# --- validation and speed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 16},
        {"sample_rate": 8000},
        {"clip_seconds": 0.0},
        {"num_classes": 1},
        {"num_classes": 13},
        {"max_objects": 0},
        {"max_objects": 8},
        {"snr_db": (10.0, 0.0)},
        {"snr_db": (0.0,)},
        {"image_size": "big"},
        {"clip_seconds": float("nan")},
        {"object_scale": (0.5, 0.3)},
        {"object_scale": (0.01, 0.3)},
        {"object_scale": (0.3, 0.95)},
        {"object_scale": "big"},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(RecipeError):
        SyntheticConfig(**kwargs)
    assert issubclass(RecipeError, AvlocError)


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_scene(0, seed=0, split="val")
    with pytest.raises(ValueError):
        make_scene(-1, seed=0, split="train")
    with pytest.raises(ValueError):
        make_scenes(5, 4, seed=0, split="train")
    with pytest.raises(ValueError):
        class_sound(8, np.random.default_rng(0), CFG)


def test_config_accepts_lists_and_is_hashable():
    cfg = SyntheticConfig(snr_db=[5, 10])
    assert cfg.snr_db == (5.0, 10.0) and hash(cfg) == hash(SyntheticConfig(snr_db=(5.0, 10.0)))


def test_object_scale_sets_the_object_sizes():
    """Single-object scenes (nothing to shrink around): the box's side follows the setting."""

    def sides(scale):
        cfg = SyntheticConfig(max_objects=1, object_scale=scale)
        boxes = np.stack(
            [make_scene(i, seed=0, split="train", config=cfg)["box"] for i in range(40)]
        )
        return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])

    small, large = sides((0.2, 0.25)), sides((0.5, 0.55))
    assert small.max() <= 0.25 + 2 / 128 and large.max() <= 0.55 + 2 / 128  # inside the window
    assert np.median(large) > 1.8 * np.median(small)  # and it follows the window


def _python_lines(config: SyntheticConfig, scenes: int = 4) -> int:
    """Python lines executed (``sys.settrace`` line events) to make ``scenes`` test scenes."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    make_scene(0, seed=0, split="test", config=config)  # imports and caches outside the count
    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local)
    try:
        for i in range(scenes):
            make_scene(i, seed=0, split="test", config=config)
    finally:
        sys.settrace(previous)
    return count


def test_generation_runs_no_python_loop_per_pixel_or_sample():
    """Vectorised throughout (the module docstring's promise, without a wall clock): the Python
    lines a scene executes do not grow with its pixels or audio samples. 64 x 64 px with 0.5 s
    at 16 kHz against 512 x 512 px (64x the pixels) and against 8 s (16x the samples): a loop
    over pixels, rows of pixels or samples would add thousands of lines per scene."""
    small = _python_lines(SyntheticConfig(image_size=64, clip_seconds=0.5))
    assert small > 1000  # the count works: a scene runs some Python
    for large in (
        SyntheticConfig(image_size=512, clip_seconds=0.5),
        SyntheticConfig(image_size=64, clip_seconds=8.0),
    ):
        lines = _python_lines(large)
        assert lines < 1.25 * small, (large.image_size, large.clip_seconds, lines, small)
