"""Placements: how one process takes part in a run, one class per data-parallel engine.

:class:`Placement` is one device (nothing changes); :class:`TorchDistributed` (torchrun + DDP),
:class:`TensorFlowMirrored` (``tf.distribute.MirroredStrategy``) and :class:`KerasDistribution`
(JAX's ``keras.distribution.DataParallel``) own what differs between engines: the scope the task
is built in, the batch view loss terms gather negatives through (:class:`TorchGlobalBatch`,
:class:`TensorFlowGlobalBatch`: all-gathers with gradient), the loss scale and row groups the
task is built with, what is hooked to the task after a resume, the callbacks every process runs
and how a finished run ends. :func:`avloc.runtime.distribute.setup` starts the engine and
returns its placement; the module docstring there explains how gradients meet.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avloc.runtime.batch import LocalBatch


# --------------------------------------------------------------------------------------------
# Where loss terms gather their negatives from


class TorchGlobalBatch:
    """All-gather over the torch process group, with gradient (backward: reduce-scatter)."""

    spans_devices = True

    def gather(self, x):
        import torch
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # its successor is not public yet
            gathered = torch.cat(all_gather(x.contiguous()), dim=0)
        if gathered.requires_grad:
            # The backward pass sends each device its slice of this gradient; the collective
            # reads raw memory, so the gradient must be dense (einsum/max give strided ones).
            gathered.register_hook(lambda grad: grad.contiguous())
        return gathered

    def first_row(self, rows):
        import torch.distributed as dist

        return dist.get_rank() * int(rows)


class TensorFlowGlobalBatch:
    """All-gather over the replicas of a ``tf.distribute`` strategy, with gradient."""

    spans_devices = True

    def gather(self, x):
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_gather(x, axis=0)

    def first_row(self, rows):
        import tensorflow as tf

        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.cast(replica, tf.int32) * tf.cast(rows, tf.int32)


# --------------------------------------------------------------------------------------------
# The placement of a run


class Placement:
    """How one process takes part in a run: one device (this class), or one of the engines below.

    Each engine is a small class that owns what differs: the scope the task is built in, the
    batch view its loss terms gather negatives through, the loss scale and row groups the task
    is built with (:class:`avloc.task.LocalizationTask` reads them when it is made), what is
    hooked to the task after a resume (:meth:`attach`), the callbacks every process runs, and
    how a finished run ends (:meth:`finish`).
    """

    engine = "none"

    def __init__(
        self,
        negatives: str = "global",
        replicas: int = 1,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self.negatives = negatives
        self.replicas = replicas  # devices in sync, over all processes
        self.process_index = process_index
        self.process_count = process_count

    @property
    def distributed(self) -> bool:
        return self.replicas > 1

    @property
    def is_writer(self) -> bool:
        """True in the one process that writes the run directory."""
        return self.process_index == 0

    @property
    def global_negatives(self) -> bool:
        """Whether loss terms contrast rows of every device (``distribute.negatives``)."""
        return self.distributed and self.negatives == "global"

    def describe(self) -> str:
        if not self.distributed:
            return "one device"
        where = f", {self.process_count} processes" if self.process_count > 1 else ""
        return f"{self.replicas} devices ({self.engine}{where}), {self.negatives} negatives"

    def scope(self):
        """Context in which the task must be built."""
        return contextlib.nullcontext()

    def loader_rows(self, batch_size: int) -> tuple[int, int] | None:
        """The rows of every global batch this process loads (None: all of them)."""
        if self.process_count == 1:
            return None  # one process feeds everything
        rows = batch_size // self.process_count
        return self.process_index * rows, (self.process_index + 1) * rows

    def batch_view(self) -> LocalBatch:
        """Where the loss terms find their candidate rows (a :class:`LocalBatch` look-alike)."""
        from avloc.runtime.batch import LOCAL_BATCH

        return LOCAL_BATCH

    @property
    def loss_scale(self) -> float:
        """The factor on the returned loss an engine that sums device gradients needs."""
        return 1.0

    @property
    def loss_groups(self) -> int:
        """Equal row groups each term is evaluated on separately, then averaged."""
        return 1

    def attach(self, task) -> None:
        """Hook the built and resumed task to the engine (only what must see its final weights)."""

    def finish(self) -> None:
        """End this process's part in a finished run, before the process ends."""

    def callbacks(self) -> list:
        """Keras callbacks every process runs (before the writer's loggers)."""
        return []


class TensorFlowMirrored(Placement):
    """``tf.distribute.MirroredStrategy``: one process feeds the global batch to K replicas."""

    engine = "tf.distribute"

    def __init__(self, strategy, negatives: str = "global"):
        super().__init__(negatives, replicas=strategy.num_replicas_in_sync)
        self.strategy = strategy

    def scope(self):
        return self.strategy.scope()

    def batch_view(self) -> LocalBatch:
        return TensorFlowGlobalBatch() if self.global_negatives else super().batch_view()

    @property
    def loss_scale(self) -> float:
        return 1.0 / self.replicas  # Keras' TensorFlow optimizer sums replica gradients


class KerasDistribution(Placement):
    """JAX's ``keras.distribution.DataParallel``: one program over the sharded global batch,
    which already sees every row (global negatives need no gather)."""

    engine = "keras.distribution"

    @property
    def loss_groups(self) -> int:
        return self.replicas if self.distributed and self.negatives == "local" else 1


class TorchDistributed(Placement):
    """torchrun: one process per device, ``DistributedDataParallel`` around the forward pass."""

    engine = "torch.distributed"

    def __init__(self, negatives, replicas, process_index, local_device=None):
        super().__init__(negatives, replicas, process_index, process_count=replicas)
        self.local_device = local_device  # this process's CUDA device index, or None

    def batch_view(self) -> LocalBatch:
        return TorchGlobalBatch() if self.global_negatives else super().batch_view()

    def attach(self, task) -> None:
        # DDP broadcasts process 0's weights when it is made: after the resume, so every
        # process starts from the backup's weights.
        if self.distributed:
            task.outputs_engine = _torch_data_parallel(task, self.local_device)

    def finish(self) -> None:
        """Every process meets the others at a barrier, then the process group is destroyed.

        The barrier lets gloo's worker threads release the last collective's tensors while
        Python still runs: a process that reaches interpreter shutdown first aborts ("terminate
        called without an active exception") when such a thread then asks for the GIL, failing
        the whole torchrun job after a finished run. Not called after an error, where a barrier
        would wait for processes that are gone.
        """
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def callbacks(self) -> list:
        return [average_logs_over_processes()] if self.process_count > 1 else []


# --------------------------------------------------------------------------------------------
# torch: DistributedDataParallel around the task's forward pass


def _torch_data_parallel(task, local_device):
    """``f(inputs, training)`` running ``task.compute_outputs`` through DDP.

    DDP wraps a small module that holds the task, so its hooks all-reduce (average) the
    gradients of every trainable weight during ``loss.backward()`` inside Keras' own
    ``train_step``. The function is returned instead of the module so that Keras does not
    track DDP as a layer of the task.
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class TaskForward(torch.nn.Module):
        def __init__(self, task):
            super().__init__()
            self.task = task

        def forward(self, inputs, training):
            return self.task.compute_outputs(inputs, training)

    ddp = DistributedDataParallel(
        TaskForward(task),
        device_ids=None if local_device is None else [local_device],
    )
    return functools.partial(_ddp_forward, ddp)


def _ddp_forward(ddp, inputs, training):
    return ddp(inputs, training)


def average_logs_over_processes():
    """torch: a callback making each epoch's logs the mean over the processes.

    Installed before the loggers, so CSV, TensorBoard, the progress line and the history all
    see the global means.
    """
    import keras
    import torch
    import torch.distributed as dist

    class AverageLogsOverProcesses(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not logs:
                return
            keys = sorted(logs)
            cuda = dist.get_backend() == "nccl"
            device = f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"
            values = torch.tensor(
                [float(logs[k]) for k in keys], dtype=torch.float64, device=device
            )
            dist.all_reduce(values)
            values /= dist.get_world_size()
            for key, value in zip(keys, values.tolist(), strict=True):
                logs[key] = value

    return AverageLogsOverProcesses()
