"""vssl_eval's pieces in avloc (avloc/evaluation/vssl_eval.py, vssl_scoring.py) against scipy,
torch, sklearn and vssl_eval's own loops: the two upsampling conventions, spectrograms without
the log, mel power without decibels, the seeded offscreen clips, cIoU, the curve areas and
vssl_eval's curve grid."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.signal
import torch
from sklearn.metrics import auc as sklearn_auc
from vssl_reference import SEEDS, SR

from avloc.evaluation import vssl_eval as rules
from avloc.evaluation import vssl_scoring as scoring
from avloc.inputs.mel import mel_db_spectrogram
from avloc.inputs.spectrogram import spectrogram
from avloc.utils.interpolation import upsample

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# --------------------------------------------------------------------------------------------
# pieces


@pytest.mark.parametrize("size", [2, 7, 14])
def test_upsampling_conventions_match_torch(size):
    maps = np.random.default_rng(size).random((3, size, size)).astype(np.float32)
    for aligned in (True, False):
        want = torch.nn.functional.interpolate(
            torch.from_numpy(maps)[:, None], size=(224, 224), mode="bilinear",
            align_corners=aligned,
        )[:, 0].numpy()  # fmt: skip
        got = upsample(maps, 224, half_pixel=not aligned)
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("noverlap", [274, 353])
def test_spectrogram_without_the_log_is_scipys_psd(noverlap):
    wave = np.random.default_rng(0).normal(0, 1, 48000)
    want = scipy.signal.spectrogram(wave, SR, nperseg=512, noverlap=noverlap)[2] / 12
    got = spectrogram(wave, SR, noverlap=noverlap, log=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-12)
    np.testing.assert_array_equal(spectrogram(np.zeros(48000), SR, log=False), 0.0)


def test_mel_without_decibels_is_the_power():
    wave = np.random.default_rng(1).normal(0, 1, 20000)
    power = mel_db_spectrogram(wave, SR, db=False)
    db = 10 * np.log10(np.maximum(power, 1e-10))  # AmplitudeToDB with its floor
    np.testing.assert_allclose(db, mel_db_spectrogram(wave, SR), atol=1e-4)


def test_offscreen_clips_are_of_another_class_and_follow_the_seed():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, 3])
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(int(c), []).append(i)
    for seed in SEEDS[:3]:
        random.seed(seed)  # vssl_eval: random.seed(seed), then per sample
        want = []
        for c in labels:
            other = random.choice(sorted(k for k in by_class if k != c))
            want.append(random.choice(by_class[other]))
        got = rules.offscreen_choices(labels, seed)
        np.testing.assert_array_equal(got, want)
        assert np.all(labels[got] != labels)


def naive_ciou(pred, gt, thr):
    """vssl_eval's ``Evaluator_iiou.cal_CIOU``, pixel by pixel."""
    infer = np.zeros((224, 224))
    for y in range(224):
        for x in range(224):
            if pred[y, x] > thr:
                infer[y, x] = 1
    with np.errstate(invalid="ignore"):
        return np.sum(infer * gt) / (np.sum(gt) + np.sum(infer * (gt == 0)))


def test_ciou_and_curve_areas_match_the_reference_loops():
    rng = np.random.default_rng(2)
    pred = rng.random((4, 224, 224))
    gt = np.zeros((4, 224, 224))
    gt[0, 20:80, 30:90] = 1
    gt[1, :, :] = 1
    gt[2, 100:101, 5:200] = 1  # gt[3] empty: NaN -> 0
    thr = np.array([0.5, 0.9, 0.2, 0.7])
    want = np.nan_to_num([naive_ciou(pred[i], gt[i], thr[i]) for i in range(4)])
    np.testing.assert_allclose(scoring.ciou(pred, gt, thr), want)
    values = rng.random(37)
    steps = [0.05 * i for i in range(21)]
    above = sklearn_auc(steps, [np.sum(values >= t) / len(values) for t in steps]) * 100
    below = sklearn_auc(steps, [np.sum(values <= t) / len(values) for t in steps]) * 100
    assert scoring.curve_area(values, above=True) == pytest.approx(above, abs=1e-9)
    assert scoring.curve_area(values, above=False) == pytest.approx(below, abs=1e-9)


def test_the_curve_grid_is_vssl_evals_not_avlocs():
    from avloc import metrics

    # 0.05 * 14 = 0.7000000000000001: a cIoU of exactly 0.7 is under vssl_eval's point 14 and
    # on avloc's, so the areas differ by one trapezoid's share
    steps = [0.05 * i for i in range(21)]
    on_point = np.array([0.7, 0.2])
    want = sklearn_auc(steps, [np.mean(on_point >= t) for t in steps]) * 100
    assert scoring.curve_area(on_point, above=True) == pytest.approx(want, abs=1e-12)
    assert scoring.curve_area(on_point, above=True) < 100 * metrics.success_auc(on_point)
    np.testing.assert_array_equal(scoring.GRID, steps)
