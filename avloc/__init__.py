"""avloc: visual sound source localization that can say "nothing here is sounding".

Keras 3 models and losses (torch / TensorFlow / JAX backends via ``KERAS_BACKEND``), data
preparation into self-describing HDF5 shards, training with silence and noise negatives
(SSL-SaN), and the negative-audio evaluation protocol.

Importing avloc sets nothing: each job chooses the process's kernels explicitly with
:func:`avloc.runtime.configure` before it builds a network. The Python API (docs/api.md:
``avloc.load``, ``avloc.train``, ``avloc.evaluate``, ``avloc.prepare``) is :mod:`avloc.api`,
imported on first use of one of its names.
"""

__version__ = "0.1.0"

#: The names of :mod:`avloc.api` that ``avloc.NAME`` gives (imported on first use).
_API = ("Localizer", "Result", "evaluate", "load", "prepare", "train")


def __getattr__(name: str):
    if name in _API:
        from avloc import api

        return getattr(api, name)
    raise AttributeError(f"module 'avloc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
