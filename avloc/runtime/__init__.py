"""How a job runs on the machine, the same for every backend: kernels, devices, optimizers.

Modules: :mod:`.backend` (the CPU kernel choice: oneDNN where it computes correctly),
:mod:`.cpu_kernels` (oneDNN's instruction-set cap), :mod:`.distribute` (data-parallel training
through each backend's own engine) and :mod:`.optimizers` (a recipe's ``[train]`` optimizer).
"""
