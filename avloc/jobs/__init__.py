"""Jobs: what a command starts, built from the stages below them.

- :mod:`.train` (``avloc train``): fit a recipe, resumable, then calibrate Uth;
- :mod:`.pretrain` (``avloc pretrain``): the visual trunk's supervised pretraining;
- :mod:`.evaluate` (``avloc eval``): several models on one data set -> tables, JSON, plots;
- :mod:`.localize` (``avloc localize``): user images, audio and videos -> heatmaps or abstention;
- :mod:`.reproduce` (``avloc reproduce``): the paper's claims in miniature.
"""
