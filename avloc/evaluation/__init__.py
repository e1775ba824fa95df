"""Evaluation with negative audio (docs/protocol.md): scoring, reports, verdicts.

Maps and Uth calibration come from the maps stage (:mod:`avloc.maps`); the job behind
``avloc eval`` is :mod:`avloc.jobs.evaluate`. Modules here: :mod:`.ground_truth` (ground truth
at full resolution), :mod:`.scoring` (every metric), :mod:`.report` (tables and plots),
:mod:`.verdict` (the quickstart's targets).
"""
