"""Where a loss term finds the rows it contrasts: this device's batch, or a global one.

Loss terms (:mod:`avloc.losses`) read their candidate rows through a batch view: ``gather(x)``
maps this device's ``(b, ...)`` tensor to the ``(G, ...)`` tensor of candidates, and
``first_row(b)`` gives the index of this device's first row in it. :data:`LOCAL_BATCH` is the
view of one device (or ``distribute.negatives = "local"``); the data-parallel placements of
:mod:`avloc.runtime.distribute` hand the task a global one.
"""

from __future__ import annotations


class LocalBatch:
    """The rows a term contrasts are its own: one device, or ``distribute.negatives = "local"``.

    ``gather(x)`` maps this device's ``(b, ...)`` tensor to the ``(G, ...)`` batch whose rows
    are the candidates (here the same tensor); ``first_row(b)`` is the index of this device's
    first row in it (here 0, a Python int, so one-device code paths stay as they were).
    """

    spans_devices = False

    def gather(self, x):
        return x

    def first_row(self, rows):
        return 0


LOCAL_BATCH = LocalBatch()
