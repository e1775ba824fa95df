"""A naive re-implementation of xavijuanola/vssl_eval's rules, for tests/test_vssl_eval*.py.

It follows vssl_eval's code (``datasets/datasets*.py``, ``eval.py``, ``utils_dir/``) line by
line with scipy, torch and sklearn: its spectrograms, rolls and crops, silence and noise without
the log, ``cv2``-style (half-pixel) and aligned-corner upsampling, the per-sample median and
adaptive thresholds, ``cal_CIOU``, ``compute_AUC`` / ``compute_AUC_pIA`` and the F-scores
(:func:`reference_metrics`). Only the network forward is avloc's.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import scipy.signal
import torch
from sklearn.metrics import auc as sklearn_auc

SR = 16000
SEEDS = (1234, 2345, 3456, 4567, 5678, 6789, 7890, 8901, 9012, 9999)

# --------------------------------------------------------------------------------------------
# the reference: vssl_eval's audio per family


def tile_to(audio, seconds):
    if audio.shape[0] < SR * seconds:
        audio = np.tile(audio, int(SR * seconds / audio.shape[0]) + 1)
    return audio[: int(SR * seconds)]


def psd(audio, noverlap, log):
    spec = scipy.signal.spectrogram(audio, SR, nperseg=512, noverlap=noverlap)[2]
    return np.log(spec + 1e-7) if log else spec


def centre_crop(spec, frames=200):  # torchvision CenterCrop((257, 200))
    top = int(round((spec.shape[1] - frames) / 2.0))
    return spec[:, top : top + frames]


@functools.cache
def mel_bank(n_fft=512, n_mels=257):
    freqs = np.linspace(0, SR // 2, n_fft // 2 + 1)
    high = 2595.0 * math.log10(1.0 + (SR / 2) / 700.0)
    edges = [700.0 * (10 ** (high * i / (n_mels + 1) / 2595.0) - 1.0) for i in range(n_mels + 2)]
    bank = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - left) / (centre - left)
        falling = (right - freqs) / (right - centre)
        bank[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    return torch.from_numpy(bank)


def torchaudio_mel(audio, db):  # MelSpectrogram(n_fft=512, hop=239, n_mels=257, normalized)
    x = torch.from_numpy(np.asarray(audio, np.float64))
    window = torch.hann_window(512, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, 512, hop_length=239, window=window, center=True, pad_mode="reflect",
                      return_complex=True) / window.pow(2).sum().sqrt()  # fmt: skip
    mel = (mel_bank().T @ spec.abs().pow(2)).numpy()
    return 10 * np.log10(np.maximum(mel, 1e-10)) if db else mel


def reference_audio(family, audio, kind, rng=None):
    """vssl_eval's input of one family: ``kind`` is positive, offscreen, silence or noise."""
    if family in ("ezvsl", "fnac"):  # datasets.py load_spectrogram (FNAC: its fall-through)
        dur = 10.0 if family == "ezvsl" else 3.0
        if kind in ("silence", "noise"):
            n = int(SR * dur)
            wave = np.zeros(n) if kind == "silence" else rng.normal(0, 1, n)
            spec = psd(wave, 274, log=False)
        else:
            audio_dur = audio.shape[0] / SR
            wave = tile_to(np.clip(audio, -1, 1), dur)
            if kind == "positive":
                wave = np.roll(wave, int(SR * dur / 2) - int(audio_dur / 2 * SR))
            spec = psd(wave, 274, log=True)
        return (centre_crop(spec) if family == "ezvsl" else spec) / 12
    if family == "lvs":  # datasets_lvs.py
        if kind in ("silence", "noise"):
            wave = np.zeros(48000) if kind == "silence" else rng.normal(0, 1, 48000)
        else:
            wave = tile_to(audio, 10)[int(16000 * 3.5) : int(16000 * 6.5)]
            wave = np.clip(wave, -1, 1)
        return psd(wave, 353, log=True) / 12
    # ssltie: datasets_ssltie.py, the first 10 s; no dB for silence and noise
    if kind in ("silence", "noise"):
        wave = np.zeros(SR * 10) if kind == "silence" else rng.normal(0, 1, SR * 10)
        return torchaudio_mel(wave, db=False)
    return torchaudio_mel(tile_to(audio, 10), db=True)


def cal_ciou(infer, gtmap, thres):
    """``Evaluator_iiou.cal_CIOU``; eval.py appends 0 for NaN."""
    infer_map = np.zeros((224, 224))
    infer_map[infer > thres] = 1
    with np.errstate(invalid="ignore"):
        ciou = np.sum(infer_map * gtmap) / (np.sum(gtmap) + np.sum(infer_map * (gtmap == 0)))
    return 0.0 if np.isnan(ciou) else ciou


def resize(maps, aligned):
    t = torch.from_numpy(np.asarray(maps, np.float32))[:, None]
    out = torch.nn.functional.interpolate(t, size=(224, 224), mode="bilinear",
                                          align_corners=aligned)  # fmt: skip
    return out[:, 0].numpy()


def reference_metrics(net, family, shards_dir, uth):
    """What vssl_eval computes for ``net`` on the shards, pooled over the 10 seeds."""
    from avloc.data.shards import ShardSet
    from avloc.maps.engine import MapsEngine
    from avloc.metrics import gt_from_boxes_normalized

    shards = ShardSet(shards_dir)
    n = len(shards)
    rows = shards.read(np.arange(n), ["image", "audio", "label", "box"])
    engine = MapsEngine(net)
    half_cos = family in ("ezvsl", "fnac")
    scale = (lambda m: (m + 1) / 2) if half_cos else (lambda m: m)

    def maps_of(specs):
        a = engine.audio([np.asarray(s, np.float32) for s in specs])
        return scale(engine.maps(engine.visual(rows["image"]), a))

    pos_raw = maps_of([reference_audio(family, w, "positive") for w in rows["audio"]])
    sil_raw = maps_of([reference_audio(family, None, "silence")] * n)
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(rows["label"]):
        by_class.setdefault(int(c), []).append(i)
    noise_raw, off_raw = [], []
    for seed in SEEDS:
        specs = [
            reference_audio(family, None, "noise", np.random.default_rng((seed, i)))
            for i in range(n)
        ]
        noise_raw.append(maps_of(specs))
        random.seed(seed)
        picks = []
        for c in rows["label"]:
            other = random.choice(sorted(k for k in by_class if k != int(c)))
            picks.append(random.choice(by_class[other]))
        off_raw.append(maps_of([reference_audio(family, rows["audio"][j], "offscreen")
                                for j in picks]))  # fmt: skip
    pos = resize(pos_raw, aligned=half_cos)
    gts = [gt_from_boxes_normalized(rows["box"][i][None], 224) for i in range(n)]
    thresholds = {"0.5": [0.5] * n, "uth": [uth] * n, "median": [], "adaptive": []}
    for i in range(n):
        flat = np.sort(pos[i].flatten())
        thresholds["median"].append(flat[int(224 * 224 * 0.5)])
        gt_nums = int((gts[i] != 0).sum()) or (224 * 224) // 2
        thresholds["adaptive"].append(flat[224 * 224 - gt_nums])
    steps = [0.05 * i for i in range(21)]

    def area(values, above):
        values = np.asarray(values)
        share = [np.sum(values >= t if above else values <= t) / len(values) for t in steps]
        return sklearn_auc(steps, share) * 100

    negatives = {
        "silence": [resize(sil_raw, aligned=False)] * len(SEEDS),
        "noise": [resize(m, aligned=False) for m in noise_raw],
        "offscreen": [resize(m, aligned=False) for m in off_raw],
    }
    out = {}
    for t, thr in thresholds.items():
        ious = [cal_ciou(pos[i], gts[i], thr[i]) for i in range(n)] * len(SEEDS)
        section = {"CIoU": np.mean(ious) * 100, "AUC": area(ious, above=True)}
        for k, passes in negatives.items():
            pias = [(m[i] > thr[i]).astype(int).sum() / m[i].size for m in passes for i in range(n)]
            section[f"pIA_{k}"] = np.mean(pias) * 100
            section[f"AUC_N_{k}"] = area(pias, above=False)
        out[t] = section
    at = out["uth"]

    def hm(a, b):
        return 2 * a * b / (a + b)

    negs = ("silence", "noise", "offscreen")
    out["F"] = {
        "F_pos_neg": hm(at["CIoU"], np.mean([100 - at[f"pIA_{k}"] for k in negs])),
        "F_auc": hm(at["AUC"], np.mean([at[f"AUC_N_{k}"] for k in negs])),
    }
    out["extremes"] = {"positive": {"max_mean": float(pos_raw.reshape(n, -1).max(1).mean())}}
    return out
