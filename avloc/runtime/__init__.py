"""The runtime a job runs on: kernels, devices, optimizers.

- :func:`configure` (:mod:`avloc.runtime.configure`): the process's CPU/GPU kernels, chosen
  explicitly by each job before it builds a network; nothing is set at import;
- :mod:`avloc.runtime.cpu_kernels`: oneDNN's instruction-set cap;
- :mod:`avloc.runtime.backend`: backend facts (GPU or not, bf16 on a capped CPU, inference mode);
- :mod:`avloc.runtime.batch`, :mod:`avloc.runtime.placement`, :mod:`avloc.runtime.distribute`:
  the rows loss terms contrast, data-parallel placements and
  the engines behind them;
- :mod:`avloc.runtime.optimizers`: the recipe's optimizer and learning-rate schedule;
- :mod:`avloc.runtime.seeding`: one seed for Python, NumPy, Keras and the backend.

Importing this package imports no framework.
"""

from avloc.runtime.configure import RuntimeSettings, check_width, configure

__all__ = ["RuntimeSettings", "check_width", "configure"]
