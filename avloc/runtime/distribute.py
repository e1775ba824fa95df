"""Data-parallel training through each backend's own engine (``[distribute]`` in a recipe).

``train.batch_size`` is the **global** batch: each step, the ``G`` rows are split evenly over the
``K`` devices (``b = G / K`` rows each), every device runs the same network on its rows, and the
gradients are combined so that one step equals one step of a single device on the ``G`` rows.

What runs where:

| backend    | one machine, K devices                      | several machines                    |
|------------|---------------------------------------------|-------------------------------------|
| tensorflow | ``tf.distribute.MirroredStrategy`` over K   | not available: Keras 3's trainer    |
|            | GPUs (K logical CPU devices without GPUs);  | fails under MultiWorkerMirrored-    |
|            | one process feeds the global batch          | Strategy with dict inputs (an error)|
| torch      | ``torchrun --nproc_per_node K``: one process | ``torchrun --nnodes M ...``; the    |
|            | per device, ``DistributedDataParallel``;     | same code (``nccl`` on GPUs,        |
|            | each process loads only its ``b`` rows       | ``gloo`` on CPUs)                   |
| jax        | ``keras.distribution.DataParallel`` over K   | ``keras.distribution.initialize()`` |
|            | devices: one program on the sharded global   | from ``KERAS_DISTRIBUTION_*``; each |
|            | batch (CPU: ``XLA_FLAGS=--xla_force_host_    | process loads its rows              |
|            | platform_device_count=K``)                   |                                     |

How the gradients meet, and what the loss of one device is:

- **Negatives** (``distribute.negatives``). ``"global"``: a contrastive term computes its own
  ``b`` rows against all ``G`` rows, whose embeddings are all-gathered with gradient
  (``torch.distributed.nn.functional.all_gather``; ``ReplicaContext.all_gather`` under
  ``tf.distribute``; JAX's program already sees the ``G`` rows), so the mean over devices of the
  per-device losses is the loss of the global batch (:mod:`avloc.losses.base`). ``"local"``:
  each device contrasts its own ``b`` rows (JAX: each device's rows of the global program).
- **Scaling.** DDP averages the devices' gradients, so a process's loss is its own mean.
  Keras' TensorFlow optimizer sums them, so the task returns its loss times ``1/K`` (the logged
  terms stay unscaled). In both cases the all-gather's backward pass sums the other devices'
  contributions into each device's embeddings, which gives exactly the single-device gradient.
- **Logs.** TensorFlow and JAX metrics are global already; under torch every epoch's logs are
  averaged over the processes before they are written.
- **Batch norm** statistics are per device on torch and TensorFlow (as PyTorch DDP without
  ``SyncBatchNorm``, the reference setting): with ``b`` rows per device they differ from a single
  device's ``G``-row statistics, so a K-device run equals a single-device run only with batch
  norm in inference mode (what ``tests/test_distribute.py`` checks). JAX's one program computes
  them over the global batch. torch saves process 0's moving averages.
- **Writing.** Only process 0 writes (recipe, meta, logs, backups, checkpoints, the final
  network); every process resumes from the same backup, so the run directory must be on a file
  system all machines share.

:func:`setup` picks the engine from the backend, the recipe and the launcher's environment and
returns its :class:`Placement` (one class per engine: :class:`TorchDistributed`,
:class:`TensorFlowMirrored`, :class:`KerasDistribution`); on one device it is the base class, a
no-op placement, and training is unchanged. The task is built with it
(:class:`avloc.task.LocalizationTask`'s ``placement``).
"""

from __future__ import annotations

import contextlib
import os
import sys

from avloc.config import DistributeConfig
from avloc.errors import AvlocError
from avloc.runtime.placement import (
    KerasDistribution,
    Placement,
    TensorFlowMirrored,
    TorchDistributed,
)

#: Environment variables a launcher sets.
TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"  # torchrun sets this for every process it starts
JAX_PROCESSES_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"


# --------------------------------------------------------------------------------------------
# Engines


def prepare_host(devices: int) -> None:
    """Before Keras starts: let a machine without GPUs offer ``devices`` CPU devices.

    TensorFlow's logical CPU devices and JAX's host device count can only be set before the
    framework starts, i.e. before ``import keras``; the backend is read from ``KERAS_BACKEND``.
    Nothing changes on one device, under torch, or where GPUs are present.
    """
    backend = os.environ.get("KERAS_BACKEND", "")
    if devices <= 1:
        return
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            count = f"--xla_force_host_platform_device_count={devices}"
            os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()
    elif backend == "tensorflow":
        from avloc.utils.quiet import silenced_fd2

        with silenced_fd2():  # TensorFlow's start-up notices
            import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError):  # started already: setup() says so
                _split_cpu(tf, devices)


def setup(config: DistributeConfig, batch_size: int) -> Placement:
    """Start the engine the backend, ``config`` and the launcher's environment call for."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        placement = _setup_torch(config)
    elif backend == "tensorflow":
        placement = _setup_tensorflow(config)
    elif backend == "jax":
        placement = _setup_jax(config)
    else:
        placement = Placement()
    if placement.distributed and batch_size % placement.replicas:
        raise AvlocError(
            f"train.batch_size = {batch_size} (the global batch) does not split evenly over "
            f"{placement.replicas} devices"
        )
    return placement


def launched_by_torchrun() -> bool:
    return TORCHRUN_ENV in os.environ and "WORLD_SIZE" in os.environ


def torchrun_command(devices: int, argv: list[str]) -> list[str] | None:
    """The command that re-runs ``avloc ARGV`` as ``devices`` torch processes, or None.

    None unless the backend is torch, ``devices > 1`` and this process was not started by
    torchrun (then it is one of the workers already).
    """
    import keras

    if keras.backend.backend() != "torch" or devices <= 1 or launched_by_torchrun():
        return None
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={devices}",
        "-m",
        "avloc_cli.main",
        *argv,
    ]


def _setup_torch(config: DistributeConfig) -> Placement:
    if not launched_by_torchrun():
        if config.devices > 1:
            raise AvlocError(
                f"distribute.devices = {config.devices} on torch runs one process per device: "
                f"start it with torchrun --nproc_per_node {config.devices} (avloc train --devices "
                f"{config.devices} does this for you)"
            )
        return Placement(negatives=config.negatives)
    import torch
    import torch.distributed as dist

    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    if config.devices > 1 and config.devices != per_machine:
        raise AvlocError(
            f"distribute.devices = {config.devices}, but torchrun started {per_machine} "
            "processes per machine; make them agree (or leave distribute.devices at 1)"
        )
    local_device = None
    if torch.cuda.is_available():
        local_device = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if local_device is not None else "gloo")
    return TorchDistributed(
        config.negatives, dist.get_world_size(), dist.get_rank(), local_device=local_device
    )


def _setup_tensorflow(config: DistributeConfig) -> Placement:
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # Keras 3's TensorFlow trainer fails under MultiWorkerMirroredStrategy with dict inputs
        # (its pre-fit build reduces the first batch with strategy.reduce, which that strategy
        # only does for single tensors; its per-replica metric reduction fails next).
        raise AvlocError(
            "TF_CONFIG is set, but several TensorFlow workers (MultiWorkerMirroredStrategy) "
            "cannot train avloc's dict inputs with Keras 3's trainer; use torch (torchrun "
            "--nnodes) or JAX (KERAS_DISTRIBUTION_*) for several machines"
        )
    if config.devices == 1:
        return Placement(negatives=config.negatives)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < config.devices:
            raise AvlocError(
                f"distribute.devices = {config.devices}, but TensorFlow sees {len(gpus)} GPU(s)"
            )
        names = [f"/gpu:{i}" for i in range(config.devices)]
    else:
        names = [device.name for device in _logical_cpus(tf, config.devices)]
    return TensorFlowMirrored(tf.distribute.MirroredStrategy(names), config.negatives)


def _logical_cpus(tf, count: int) -> list:
    """``count`` logical CPU devices (configured here if TensorFlow has not started yet)."""
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < count:
        try:
            _split_cpu(tf, count)
        except RuntimeError:
            raise AvlocError(
                f"distribute.devices = {count}: no GPUs, and TensorFlow started with "
                f"{len(cpus)} CPU device(s) before avloc could split the CPU"
            ) from None
        cpus = tf.config.list_logical_devices("CPU")
    return cpus[:count]


def _split_cpu(tf, count: int) -> None:
    physical = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        physical, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def _setup_jax(config: DistributeConfig) -> Placement:
    import jax
    import keras

    processes = int(os.environ.get(JAX_PROCESSES_ENV, "1") or 1)
    if processes > 1:
        keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_* (coordinator, id, count)
    elif config.devices == 1:
        return Placement(negatives=config.negatives)
    devices = keras.distribution.list_devices()
    local = jax.local_device_count()
    if processes == 1:
        if len(devices) < config.devices:
            hint = (
                f" (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count={config.devices})"
                if jax.default_backend() == "cpu"
                else ""
            )
            raise AvlocError(
                f"distribute.devices = {config.devices}, but JAX sees {len(devices)} device(s)"
                + hint
            )
        devices = devices[: config.devices]
    elif config.devices > 1 and config.devices != local:
        raise AvlocError(
            f"distribute.devices = {config.devices}, but this JAX process has {local} device(s)"
        )
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return KerasDistribution(
        config.negatives, len(devices), jax.process_index(), jax.process_count()
    )
