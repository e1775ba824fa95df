"""avloc: visual sound source localization that can say "nothing here is sounding".

Keras 3 models and losses (torch / TensorFlow / JAX backends via ``KERAS_BACKEND``), data
preparation into self-describing HDF5 shards, training with silence and noise negatives
(SSL-SaN), and the negative-audio evaluation protocol.
"""

import os

# oneDNN, the CPU kernels of torch and TensorFlow, fails on layers narrower than its vector width
# (AVX-512 segfaults on the width-8 networks of the quickstart and the synthetic recipes; see
# avloc/backend.py). oneDNN reads this cap once, at its first use, so it is set here, before any
# framework runs. Export ONEDNN_MAX_CPU_ISA=DEFAULT for the AVX-512 kernels: about 1.4x faster at
# the paper's width 64, which they train without a fault.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# TensorFlow's switch for the same kernels is process-wide and read at import, so TensorFlow keeps
# its own kernels (the test suite's width-2 and width-4 networks need them); export
# TF_ENABLE_ONEDNN_OPTS=1 for oneDNN with networks of width 8 or more.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
