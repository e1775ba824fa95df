"""What a training job is made of, each in a module named after what it holds.

- :mod:`avloc.training.build`: the task a recipe trains (network + loss terms + optimizer,
  compiled, every variable created);
- :mod:`avloc.training.callbacks`: the Keras callbacks of ``avloc train`` (backups, the loader's
  epoch, the resumed epoch's loss sums, throughput, the stop on a non-finite loss);
- :mod:`avloc.training.environment`: what ``meta.json`` records of the machine and software.

The job itself, read top to bottom, is :func:`avloc.jobs.train.train`; the run directory's
layout and the backup format are :mod:`avloc.runs`.
"""
