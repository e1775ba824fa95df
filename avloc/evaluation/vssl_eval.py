"""The conventions of xavijuanola/vssl_eval: ``--protocol vssl_eval``.

vssl_eval (the code of the ICASSP 2025 negative-audio paper, commit ``e8ebbc9``) evaluates the
published models with rules that differ from avloc's default protocol (docs/protocol.md,
"Other evaluators' conventions"). This module reproduces them, per model family
(:data:`FAMILIES`; :func:`family_of` reads it from what the network records: the published
model it was imported as, else avloc's architecture it was built as):

Audio (one waveform per stored clip, taken as the file; 16 kHz):

- ``ezvsl`` / ``slavc`` (and marginNCE, and avloc's own ``ezvsl`` networks): the first 10 s
  (tiled when shorter), rolled so that the clip's middle sits at 5 s, ``log(PSD + 1e-7)``
  (512-sample frames, hop 238), the middle 200 frames, ``/ 12``; the offscreen clip is not rolled;
- ``fnac``: the first 3 s (tiled), rolled by ``int(1.5 sr) - int(duration / 2 * sr)``, the same
  spectrogram (200 frames, no crop); the offscreen clip is not rolled;
- ``lvs`` (and SSL-Align, and avloc's own ``lvs`` networks): 3.5-6.5 s of the first 10 s,
  clipped to [-1, 1], hop 159 (299 frames), ``log(PSD + 1e-7) / 12``;
- ``ssltie`` (and SSL-SaN, SSL-TIE's network): the first 10 s as SSL-TIE's mel spectrogram in
  dB (:mod:`avloc.inputs.mel`).

Silence is the all-zero waveform, noise unclipped N(0, 1), both as long as the positive clip and
through the same spectrogram, except that the EZ-VSL family and FNAC skip the log (``PSD / 12``)
and SSL-TIE skips the dB step. Noise of seed ``s`` for sample ``i`` comes from
``default_rng((s, i))``.

Offscreen audio: for each of the 10 seeds :data:`SEEDS`, ``random.Random(seed)`` draws, sample
by sample, a class other than the sample's (``choice(sorted(classes))``) and then a clip of that
class (``choice(ids)``) from the test set's own labelled clips. The 10 passes are pooled: the
negatives' metrics are over 10 x N samples; positives and silence are the same in every pass, so
pooling leaves their metrics unchanged and they are computed once.

Maps: ``(cos + 1) / 2`` for the EZ-VSL family and FNAC (SLAVC: of the mean of its two heads),
the raw cosine for LVS and SSL-TIE. Upsampled to 224 x 224: positive maps bilinear with aligned
corners for the EZ-VSL family and FNAC (and LVS on IS3), half-pixel (``cv2.resize``) otherwise;
every negative map half-pixel.

Metrics (strict ``>`` everywhere), for each threshold of :data:`THRESHOLDS`: ``0.5``; ``uth``
(a fixed per-model threshold; vssl_eval's ``th_maxq3`` constants, :data:`PUBLISHED_UTH`, for
the models vssl_eval scores, :data:`SCORED_BY_VSSL_EVAL`; else ``--uth`` or the calibration);
``median`` (the positive map's value at sorted index ``int(0.5 * H * W)``, per sample) and
``adaptive`` (sorted index ``H * W - gt_pixels``, half the image when the box is empty):

- ``CIoU``: mean over samples of ``|P & G| / (|G| + |P - G|)`` x 100 (NaN -> 0), **not** the
  share of samples above 0.5; ``AUC``: the 21-point trapezoid of ``share(IoU >= 0.05 k)`` x 100;
- ``pIA_<negative>``: the mean share of pixels above the threshold x 100 (lower is better);
  ``AUC_N_<negative>`` (vssl_eval's ``AOC``): the 21-point trapezoid of ``share(pIA <= 0.05 k)``
  x 100 (higher is better);
- at ``uth``, vssl_eval's F-scores: ``F_pos_neg = HM(CIoU, mean_k(100 - pIA_k))``, ``F_pos_<k>``,
  ``F_auc = HM(AUC, mean_k AUC_N_k)``, with ``HM(a, b) = 2ab / (a + b)``;
- the mean and median of the raw maps' maxima and minima per condition (before upsampling).

Not reproduced: the object-saliency ("OGL") variants, the pairwise ``IoU_Pos_<k>`` maps and the
legacy ``CIoU`` key that mixes five thresholds. Ground truth: the union of the boxes,
``int(clip(v, 0, 1) * 224)`` (VGG-SS and IS3; vssl_eval has no Flickr or mask rule).

Shared with avloc (:mod:`avloc.metrics`, where the rules agree): the cIoU of a binary map
(:func:`~avloc.metrics.ciou`; vssl_eval's NaN for an empty ground truth and an empty map, which it
appends as 0, is avloc's 0), the strict ``map > threshold`` binarisation
(:func:`~avloc.metrics.binarize_universal`) and pIA (:func:`~avloc.metrics.pia_fractions`,
:func:`~avloc.metrics.pia_pct`), each given one threshold per sample; the curve areas
(:func:`~avloc.metrics.success_auc`, :func:`~avloc.metrics.auc_n_pct`) on vssl_eval's grid; the
F-scores, which are avloc's FLOC and FAUC (:func:`~avloc.metrics.floc`,
:func:`~avloc.metrics.fauc`: ``F_pos_neg`` is FLOC, ``F_auc`` FAUC, ``F_pos_<k>`` / ``F_auc_<k>``
the same with one negative); the box ground truth (:mod:`avloc.metrics.ground_truth`); the table
(:func:`avloc.evaluation.report.vssl_table`).

Differs from avloc's (kept here, on purpose, to reproduce vssl_eval's numbers):

- the grid of the curve areas, :data:`GRID`, is ``0.05 * k``, not avloc's ``k / 20``, because
  that is how vssl_eval builds it: 7 of its points lie one ulp above ``k / 20``, so a cIoU of
  exactly ``0.7`` (7 pixels shared of 10) counts at avloc's point ``0.7`` and not at vssl_eval's
  ``0.7000000000000001``;
- the ``median`` threshold is the raw map's sorted-index median with ``>``, where avloc's median
  family (:func:`avloc.metrics.binarize_median`) keeps ``>=`` of it (on the min-max map, the same
  order): vssl_eval leaves the median pixel itself out;
- the ``adaptive`` threshold is ``> sorted[H W - gt_pixels]``, which keeps ``gt_pixels - 1``
  pixels of a map without ties, where avloc's (:func:`avloc.metrics.binarize_adaptive`) keeps
  exactly ``gt_pixels`` (the top k, ties broken by position);
- the negatives are scored at every threshold, the ``median`` and ``adaptive`` ones taken from
  the sample's positive map, where avloc scores them at Uth only; and the ``CIoU`` it reports
  is avloc's ``ciou_mean``, not ``cIoU@0.5``;
- the map scale, the upsampling, the audio and the pooled offscreen seeds above.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avloc.errors import DataError
from avloc.inputs.mel import mel_db_spectrogram
from avloc.inputs.spectrogram import spectrogram
from avloc.media.audio import resample
from avloc.metrics.ground_truth import ground_truth_maps, gt_rule_of, stored_boxes

SEEDS = (1234, 2345, 3456, 4567, 5678, 6789, 7890, 8901, 9012, 9999)
MAP_SIZE = 224
RATE = 16000  #: vssl_eval reads files at their own rate and assumes 16 kHz
THRESHOLDS = ("0.5", "uth", "median", "adaptive")
NEGATIVES = ("silence", "noise", "offscreen")

#: vssl_eval's ``th_maxq3`` per family (``eval.py`` lines 258-287), on its map scale.
PUBLISHED_UTH = {
    "ezvsl": 0.6382,
    "slavc": 0.5450,
    "fnac": 0.5538,
    "lvs": 0.6077,
    "ssltie": 0.3338,
    "sslalign": 0.3175,
}


@dataclass(frozen=True)
class Family:
    """How vssl_eval feeds and scores one kind of model."""

    name: str
    window: str  # "roll10_crop200" | "fnac_roll3" | "lvs_3p5" | "first10_mel"
    half_cosine: bool  # maps are (cos + 1) / 2
    negatives_log: bool  # silence and noise go through the log (dB) too
    positive_aligned: bool  # positive maps upsampled with aligned corners


FAMILIES = {
    "ezvsl": Family("ezvsl", "roll10_crop200", True, False, True),
    "slavc": Family("slavc", "roll10_crop200", True, False, True),
    "fnac": Family("fnac", "fnac_roll3", True, False, True),
    "lvs": Family("lvs", "lvs_3p5", False, True, False),
    "sslalign": Family("sslalign", "lvs_3p5", False, True, False),
    "ssltie": Family("ssltie", "first10_mel", False, False, False),
}
#: Seconds of the clip each window gives (and of generated silence and noise).
CLIP_SECONDS = {"roll10_crop200": 10.0, "fnac_roll3": 3.0, "lvs_3p5": 3.0, "first10_mel": 10.0}
#: ``import-checkpoint --arch`` names -> family (recorded as ``inputs["published_as"]``).
#: SSL-SaN is SSL-TIE's network with SSL-TIE's test loader, so it gets SSL-TIE's rules.
PUBLISHED_FAMILY = {"marginnce": "ezvsl", "sslsan": "ssltie", **{name: name for name in FAMILIES}}
#: Published models that vssl_eval itself scores, whose family's ``th_maxq3`` is their Uth
#: (:data:`PUBLISHED_UTH`). vssl_eval has no constant for SSL-SaN, and SSL-TIE's is a threshold
#: for SSL-TIE's weights, not SSL-SaN's, so SSL-SaN takes ``--uth`` or its calibration.
SCORED_BY_VSSL_EVAL = frozenset(PUBLISHED_FAMILY) - {"sslsan"}
#: avloc's architectures (``model.arch``, recorded as ``net.arch``) -> family
ARCH_FAMILY = {"ezvsl": "ezvsl", "lvs": "lvs"}


def family_of(net, run_arch: str | None = None) -> Family:
    """The family of a network, from what it records, never guessed from its layout.

    An imported network records the published model it is (``inputs["published_as"]``, the
    ``--arch`` of ``avloc import-checkpoint``: :data:`PUBLISHED_FAMILY`); one of avloc's own the
    architecture it was built as (``net.arch``: :data:`ARCH_FAMILY`). Networks saved before they
    recorded it take ``run_arch``, the ``model.arch`` of the recipe of the run that trained them.
    Anything else is a one-line :class:`DataError` naming what the network is.
    """
    scored = f"it scores {', '.join(PUBLISHED_FAMILY)} and avloc's {', '.join(ARCH_FAMILY)}"
    published = net.inputs.get("published_as")
    if published is not None:
        if published in PUBLISHED_FAMILY:
            return FAMILIES[PUBLISHED_FAMILY[published]]
        raise DataError(f"vssl_eval has no rules for the published model {published} ({scored})")
    arch = getattr(net, "arch", "") or run_arch or ""
    if arch in ARCH_FAMILY:
        return FAMILIES[ARCH_FAMILY[arch]]
    if arch:
        raise DataError(f"vssl_eval has no rules for the architecture {arch} ({scored})")
    raise DataError(
        "the network records neither the published model it was imported as nor the "
        "architecture it was built as (saved by an older avloc): import it again with "
        "`avloc import-checkpoint`, or give the run directory whose recipe says model.arch"
    )


# --------------------------------------------------------------------------------------------
# Audio


def _tile(wave: np.ndarray, samples: int) -> np.ndarray:
    """The first ``samples`` of ``wave`` repeated from its start (vssl_eval's ``np.tile``)."""
    reps = int(np.ceil(samples / max(len(wave), 1)))
    return np.tile(wave, reps)[:samples] if reps > 1 else wave[:samples]


def _centre_samples(samples: int, frames: int = 200, nperseg: int = 512, hop: int = 238) -> slice:
    """The samples of torchvision's ``CenterCrop`` of ``frames`` spectrogram frames (the crop
    starts at frame ``int(round((T - frames) / 2))``); frames are independent, so the
    spectrogram of these samples is the cropped spectrogram of them all."""
    total = (samples - nperseg) // hop + 1
    top = int(round((total - frames) / 2.0))
    return slice(top * hop, (top + frames - 1) * hop + nperseg)


class AudioRules:
    """A family's waveform -> spectrogram rules (see the module)."""

    def __init__(self, family: Family, rate: int = RATE):
        self.family = family
        self.rate = int(rate)
        self.samples = int(round(CLIP_SECONDS[family.window] * self.rate))

    def waveform(self, wave: np.ndarray, rolled: bool) -> np.ndarray:
        """The family's clip of a mono waveform at :attr:`rate` (``rolled``: the positive)."""
        wave = np.asarray(wave, np.float64)
        sr, window = self.rate, self.family.window
        if window in ("roll10_crop200", "fnac_roll3"):  # datasets.py load_spectrogram
            seconds = CLIP_SECONDS[window]
            clip = _tile(np.clip(wave, -1, 1), int(seconds * sr))
            if rolled:  # the clip's middle to the window's middle
                clip = np.roll(clip, int(sr * seconds / 2) - int(len(wave) / sr / 2 * sr))
            return clip
        if window == "lvs_3p5":  # datasets_lvs.py cuts at 16 kHz whatever the file's rate
            clip = _tile(wave, 10 * sr)[int(RATE * 3.5) : int(RATE * 6.5)]
            return np.clip(clip, -1, 1)
        return _tile(wave, 10 * sr)  # first10_mel

    def spectrogram(self, clip: np.ndarray, log: bool = True) -> np.ndarray:
        """``(F, T)`` float32 of a clip from :meth:`waveform` or a generated one."""
        window = self.family.window
        if window == "first10_mel":
            return mel_db_spectrogram(clip, self.rate, db=log)
        if window == "lvs_3p5":
            return spectrogram(clip, self.rate, nperseg=512, noverlap=353, log=log)
        if window == "roll10_crop200":  # only the samples of the middle 200 frames
            clip = clip[_centre_samples(len(clip))]
        return spectrogram(clip, self.rate, nperseg=512, noverlap=274, log=log)

    def clip(self, wave: np.ndarray, rolled: bool) -> np.ndarray:
        return self.spectrogram(self.waveform(wave, rolled))

    def silence(self) -> np.ndarray:
        return self.spectrogram(np.zeros(self.samples), log=self.family.negatives_log)

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        wave = rng.normal(0.0, 1.0, self.samples)
        return self.spectrogram(wave, log=self.family.negatives_log)


def offscreen_choices(labels: np.ndarray, seed: int) -> np.ndarray:
    """Index of each sample's offscreen clip for one seed (a clip of another class)."""
    labels = np.asarray(labels)
    classes: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        if label >= 0:
            classes.setdefault(int(label), []).append(i)
    if len(classes) < 2:
        raise DataError("vssl_eval's offscreen audio needs clips of at least two classes")
    draw = random.Random(seed)
    out = np.empty(len(labels), np.int64)
    for i, label in enumerate(labels):
        others = sorted(c for c in classes if c != int(label))
        out[i] = draw.choice(classes[draw.choice(others)])
    return out


# --------------------------------------------------------------------------------------------
# Maps


@dataclass
class VsslRecords:
    """Raw maps of one model under vssl_eval's rules (on its map scale, before upsampling)."""

    ids: np.ndarray  # (N,) str
    family: str
    positive: np.ndarray  # (N, h, w)
    silence: np.ndarray  # (N, h, w)
    noise: np.ndarray  # (S, N, h, w)
    offscreen: np.ndarray  # (S, N, h, w)
    gt: np.ndarray  # (N, 224, 224) float32 in {0, 1}
    positive_aligned: bool
    meta: dict[str, Any] = field(default_factory=dict)


def box_ground_truth(shards, indices: np.ndarray) -> np.ndarray:
    """``(N, 224, 224)`` float32: the union of each sample's boxes (vssl_eval's VGG-SS/IS3 rule,
    avloc's ``"boxes"`` rule: :mod:`avloc.metrics.ground_truth`)."""
    from types import SimpleNamespace

    rule = gt_rule_of(shards)
    if rule != "boxes":
        raise DataError(
            f"{shards.location}: --protocol vssl_eval scores box ground truth (VGG-SS, IS3); "
            f"this data set's is {rule or 'missing'!r}"
        )
    stored = "boxes" if "boxes" in shards.fields else "box"
    boxes = stored_boxes(shards.read(indices, [stored]))
    truth = SimpleNamespace(gt_rule="boxes", boxes=boxes, box_group=None)
    return ground_truth_maps(truth, np.arange(len(indices)), MAP_SIZE)


def collect(
    net,
    shards,
    indices: np.ndarray,
    *,
    dataset: str = "",
    seeds: Sequence[int] = SEEDS,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    family: Family | None = None,
) -> VsslRecords:
    """vssl_eval's maps of ``net`` on ``shards[indices]`` (``dataset``: its name, for IS3).

    ``family``: the network's (:func:`family_of` when None).
    """
    from avloc.maps.engine import MapsEngine

    family = family_of(net) if family is None else family
    engine = MapsEngine(net)
    rules = AudioRules(family, int(net.inputs.get("sample_rate", RATE)))
    stored_rate = int(shards.attrs.get("sample_rate", RATE))
    if "label" not in shards.fields:
        raise DataError(f"{shards.location}: vssl_eval's offscreen audio needs class labels")
    labels = shards.read(indices, ["label"])["label"]
    choices = np.stack([offscreen_choices(labels, s) for s in seeds])  # (S, N) positions

    def mono(wave):
        wave = np.asarray(wave, np.float32)
        return resample(wave, stored_rate, rules.rate) if stored_rate != rules.rate else wave

    scale = (lambda m: (m + 1.0) / 2.0) if family.half_cosine else (lambda m: m)
    silence = engine.audio([rules.silence()])[0]
    parts: dict[str, list] = {"positive": [], "silence": [], "noise": [], "offscreen": []}
    for start in range(0, len(indices), batch_size):
        rows = np.arange(start, min(start + batch_size, len(indices)))
        idx = indices[rows]
        data = shards.read(idx, ["image", "audio"])
        v = engine.visual(data["image"])
        a = engine.audio([rules.clip(mono(w), rolled=True) for w in data["audio"]])
        parts["positive"].append(scale(engine.maps(v, a)))
        parts["silence"].append(scale(engine.maps(v, silence)))
        noise, offscreen = [], []
        for s, seed in enumerate(seeds):
            specs = [rules.noise(np.random.default_rng((seed, int(i)))) for i in idx]
            noise.append(scale(engine.maps(v, engine.audio(specs))))
            other = indices[choices[s, rows]]
            waves = shards.read(other, ["audio"])["audio"]
            specs = [rules.clip(mono(w), rolled=False) for w in waves]
            offscreen.append(scale(engine.maps(v, engine.audio(specs))))
        parts["noise"].append(np.stack(noise))
        parts["offscreen"].append(np.stack(offscreen))
        if progress:
            progress(len(idx))
    aligned = family.positive_aligned or (family.window == "lvs_3p5" and "is3" in dataset)
    return VsslRecords(
        ids=np.asarray(shards.read(indices, ["id"])["id"]),
        family=family.name,
        positive=np.concatenate(parts["positive"]),
        silence=np.concatenate(parts["silence"]),
        noise=np.concatenate(parts["noise"], axis=1),
        offscreen=np.concatenate(parts["offscreen"], axis=1),
        gt=box_ground_truth(shards, indices),
        positive_aligned=aligned,
    )
