"""Evaluation with negative audio (docs/protocol.md): scoring, reports, verdicts.

Maps and Uth calibration come from the maps stage (:mod:`avloc.maps`); the job behind
``avloc eval`` is :mod:`avloc.jobs.evaluate`; ground truth, from the shards' rules, is
:mod:`avloc.metrics.ground_truth`. Modules here: :mod:`.scoring` (every metric), :mod:`.report`
(tables and plots), :mod:`.verdict` (the quickstart's targets), :mod:`.floors` (audio-free
rows), :mod:`.vssl_eval` (xavijuanola/vssl_eval's rules).
"""
