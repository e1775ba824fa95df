"""Every metric of docs/protocol.md from :class:`SampleRecords` and a universal threshold, in numpy.

Maps are upsampled to ``map_size`` and scored ``chunk`` samples at a time, so memory stays
bounded whatever the data set size. :func:`score_records` returns

- ``per_sample``: float64 arrays, one value per sample: ``ciou/<family>`` for the positive audio
  (fractions), ``ciou_shuffled/<family>`` for the control, ``pia/<negative>`` (fractions),
  ``max/<condition>`` (raw cosine), ``s4_iou/<family>`` for mask ground truth,
  ``ciou/slavc`` (the positive map at cos >= 0) and ``confidence/<condition>`` (SLAVC's
  top-quarter confidence) for the positive and the non-sounding conditions;
- ``metrics``: a nested dict, percentages except where named (``uth``, Separability in raw
  cosine units)::

    positive:   {median|adaptive|universal: {ciou_at_05, ciou_mean, auc}}
    silence|noise|offscreen: {pia, auc_n}
    global:     {floc, fauc, sep, q1_pos, q3_neg}
    retrieval:  {a2i_semantic_R@1, ..., i2a_instance_R@10}
    s4:         {miou_median, miou_adaptive, miou_universal, fscore}     (mask ground truth)
    slavc:      {ap, max_f1, precision_all}      (visible pairs vs offscreen + silence pairs)
    interactive: {<family>: {iiou, iauc}}                                  (grouped samples)
    shuffled:   {<family>: {ciou_at_05, ciou_mean, auc}}                   (the control)

Threshold families (docs/protocol.md): ``median`` (min-max normalised map at its median),
``adaptive``
(top-k pixels of the raw map, k = ground-truth area), ``universal`` (raw map > Uth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avloc.maps.conditions import OFFSCREEN, SILENCE
from avloc.maps.records import POSITIVE, SampleRecords
from avloc.metrics import (
    auc_n_pct,
    binarize,
    ciou,
    detection_summary,
    fauc,
    floc,
    ground_truth_maps,
    interactive_summary,
    localization_summary,
    retrieval_summary,
    s4_iou,
    separability,
    top_quarter_confidence,
)
from avloc.metrics.segmentation import s4_fscore_totals
from avloc.utils.interpolation import upsample

FAMILIES = ("median", "adaptive", "universal")
#: SLAVC's non-sounding pairs (avloc.metrics.detection): its source not visible, or no sound
NON_SOUNDING = (OFFSCREEN, SILENCE)


@dataclass
class Scores:
    metrics: dict[str, Any]
    per_sample: dict[str, np.ndarray]


def _cious(maps: np.ndarray, gts: np.ndarray, uth: float) -> dict[str, np.ndarray]:
    return {
        family: np.atleast_1d(ciou(binarize(maps, family, gt=gts, uth=uth), gts))
        for family in FAMILIES
    }


def _interactive(cious: np.ndarray, groups: np.ndarray) -> dict[str, float] | None:
    """IIoU / IAUC over images (groups) that have exactly two sounds; None if there are none."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    pairs = [np.sort(np.nonzero(inverse == g)[0]) for g in np.nonzero(counts == 2)[0]]
    if not pairs:
        return None
    return interactive_summary(cious[np.array(pairs)])


def score_records(records: SampleRecords, uth: float, chunk: int = 64) -> Scores:
    """All metrics for one model at universal threshold ``uth`` (raw cosine units)."""
    size = records.map_size
    has_gt = bool(records.gt_rule)
    conditions = list(records.maps)
    negatives = records.negative_conditions
    per: dict[str, list[np.ndarray]] = {}

    def add(key: str, values) -> None:
        per.setdefault(key, []).append(np.atleast_1d(np.asarray(values, np.float64)))

    fs_total, fs_count = 0.0, 0
    for start in range(0, len(records), chunk):
        idx = np.arange(start, min(start + chunk, len(records)))
        gts = ground_truth_maps(records, idx, size) if has_gt else None
        for condition in conditions:
            maps = upsample(records.maps[condition][idx], size)
            add(f"max/{condition}", maps.max(axis=(1, 2)))
            if condition == POSITIVE or condition in NON_SOUNDING:
                add(f"confidence/{condition}", top_quarter_confidence(maps))
            if condition == POSITIVE and gts is not None:
                add("ciou/slavc", ciou(maps >= 0.0, gts))
            if condition in negatives:
                add(f"pia/{condition}", np.mean(maps > uth, axis=(1, 2)))
            elif gts is not None:
                prefix = "ciou" if condition == POSITIVE else f"ciou_{condition}"
                for family, values in _cious(maps, gts, uth).items():
                    add(f"{prefix}/{family}", values)
            if condition == POSITIVE and gts is not None and records.gt_rule == "mask":
                for family in FAMILIES:
                    add(f"s4_iou/{family}", s4_iou(binarize(maps, family, gt=gts, uth=uth), gts))
                total, count = s4_fscore_totals(maps, gts)
                fs_total, fs_count = fs_total + total, fs_count + count
    per_sample = {k: np.concatenate(v) for k, v in per.items()}

    metrics: dict[str, Any] = {"uth": float(uth)}
    if has_gt:
        metrics[POSITIVE] = {
            family: localization_summary(per_sample[f"ciou/{family}"]) for family in FAMILIES
        }
    for condition in negatives:
        fractions = per_sample[f"pia/{condition}"]
        metrics[condition] = {
            "pia": 100.0 * float(np.mean(fractions)),
            "auc_n": auc_n_pct(fractions),
        }
    glob: dict[str, float] = {}
    if has_gt and negatives:
        universal = metrics[POSITIVE]["universal"]
        glob["floc"] = floc(universal["ciou_mean"], [metrics[c]["pia"] for c in negatives])
        glob["fauc"] = fauc(universal["auc"], [metrics[c]["auc_n"] for c in negatives])
    if negatives:
        glob.update(
            separability(
                per_sample[f"max/{POSITIVE}"], {c: per_sample[f"max/{c}"] for c in negatives}
            )
        )
    metrics["global"] = glob
    labels = records.labels
    if labels is not None and np.any(np.asarray(labels) < 0):
        labels = None
    if len(records) >= 2:
        metrics["retrieval"] = retrieval_summary(records.audio_emb, records.image_emb, labels)
    if has_gt and records.gt_rule == "mask":
        s4 = {f"miou_{f}": 100.0 * float(np.mean(per_sample[f"s4_iou/{f}"])) for f in FAMILIES}
        s4["fscore"] = 100.0 * float(np.max(fs_total / fs_count)) if fs_count else 0.0
        metrics["s4"] = s4
    if has_gt and records.groups is not None:
        interactive = {
            family: _interactive(per_sample[f"ciou/{family}"], records.groups)
            for family in FAMILIES
        }
        if all(v is not None for v in interactive.values()):
            metrics["interactive"] = interactive
    non_sounding = [c for c in NON_SOUNDING if c in negatives]
    if has_gt and non_sounding:
        count = len(records)
        metrics["slavc"] = detection_summary(
            np.repeat([True, False], [count, count * len(non_sounding)]),
            np.concatenate([per_sample["ciou/slavc"], np.zeros(count * len(non_sounding))]),
            np.concatenate([per_sample[f"confidence/{c}"] for c in [POSITIVE, *non_sounding]]),
        )
    controls = [c for c in conditions if c not in negatives and c != POSITIVE]
    for control in controls:
        if has_gt:
            metrics[control] = {
                family: localization_summary(per_sample[f"ciou_{control}/{family}"])
                for family in FAMILIES
            }
    return Scores(metrics, per_sample)
