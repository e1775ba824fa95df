"""Moved: ground truth lives in :mod:`avloc.metrics.ground_truth` (one module for the rules, the
shards' rule and the maps). This name stays only until ``scripts/rescore_upsampling.py`` and
``scripts/test_time_border.py`` import the new one; nothing in ``avloc`` imports it."""

from avloc.metrics.ground_truth import ground_truth_maps

__all__ = ["ground_truth_maps"]
