"""avloc: visual sound source localization that can say "nothing here is sounding".

Keras 3 models and losses (torch / TensorFlow / JAX backends via ``KERAS_BACKEND``), data
preparation into self-describing HDF5 shards, training with silence and noise negatives
(SSL-SaN), and the negative-audio evaluation protocol.

Importing avloc sets nothing: each job chooses the process's kernels explicitly with
:func:`avloc.runtime.configure` before it builds a network.
"""

__version__ = "0.1.0"
