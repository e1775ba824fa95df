"""Pure-numpy metrics for sound source localisation with negative audio (docs/protocol.md).

Heatmaps are float maps of raw audio-visual cosine similarity in ``[-1, 1]``, ``(H, W)`` or
batched ``(N, H, W)`` (224x224 in the benchmarks; any size works).

Units -- one rule everywhere:

* functions whose name ends in ``_pct``, the ``*_summary`` dicts and :func:`floc` /
  :func:`fauc` return **percent** in ``[0, 100]``;
* every other score (``ciou``, ``success_auc``, ``pia_fractions``, ``recall_at_k``,
  ``s4_miou``, ``s4_fscore``, ``iiou``, ``iauc``, ...) is a **fraction** in ``[0, 1]``;
* thresholds, map scores and separability (``calibrate_uth``, ``map_max_scores``,
  ``separability``) are in **raw cosine-similarity units**.

Modules: :mod:`.thresholding` (median / adaptive / universal binarisation),
:mod:`.ground_truth` (the ground-truth rules and maps), :mod:`.localization` (cIoU, cIoU@0.5,
AUC), :mod:`.negatives` (pIA, AUC_N), :mod:`.combined` (FLOC, FAUC), :mod:`.separability`,
:mod:`.uth` (the Uth statistic), :mod:`.retrieval` (R@k), :mod:`.segmentation` (S4 mIoU,
F-score), :mod:`.interactive` (IS3 IIoU, IAUC).
"""

from .combined import fauc, floc, harmonic_mean
from .detection import average_precision, detection_summary, max_f1, top_quarter_confidence
from .ground_truth import ground_truth_maps, gt_flickr, gt_from_boxes_normalized, gt_rule_of
from .interactive import iauc, iiou, interactive_indicator, interactive_summary
from .localization import ciou, localization_summary, map_cious, success_auc, success_curve
from .negatives import auc_n_pct, negative_summary, pia_fractions, pia_pct
from .retrieval import image_embedding_from_map, l2_normalize, recall_at_k, retrieval_summary
from .segmentation import s4_fscore, s4_iou, s4_miou, s4_summary
from .separability import map_max_scores, separability
from .thresholding import (
    THRESHOLD_METHODS,
    binarize,
    binarize_adaptive,
    binarize_median,
    binarize_universal,
    minmax_normalize,
    topk_mask,
)
from .uth import UTH_STATISTICS, calibrate_uth

__all__ = [
    "THRESHOLD_METHODS",
    "UTH_STATISTICS",
    "auc_n_pct",
    "binarize",
    "average_precision",
    "binarize_adaptive",
    "detection_summary",
    "max_f1",
    "top_quarter_confidence",
    "binarize_median",
    "binarize_universal",
    "calibrate_uth",
    "ciou",
    "fauc",
    "floc",
    "ground_truth_maps",
    "gt_flickr",
    "gt_from_boxes_normalized",
    "gt_rule_of",
    "harmonic_mean",
    "iauc",
    "iiou",
    "image_embedding_from_map",
    "interactive_indicator",
    "interactive_summary",
    "l2_normalize",
    "localization_summary",
    "map_cious",
    "map_max_scores",
    "minmax_normalize",
    "negative_summary",
    "pia_fractions",
    "pia_pct",
    "recall_at_k",
    "retrieval_summary",
    "s4_fscore",
    "s4_iou",
    "s4_miou",
    "s4_summary",
    "separability",
    "success_auc",
    "success_curve",
    "topk_mask",
]
