"""The torch training step without host round trips (the task's ``train_step`` on torch).

Keras' own torch step pulls every metric to the host after each batch (``float()`` on each
tracker: one device synchronisation per metric and step) and updates its trackers with
``keras.ops`` calls that build small tensors from Python numbers on the host, then copy them to
the device. On a GPU that host work, not the convolutions, bounds a small network's step. This
step does the same arithmetic with none of it:

- the loss trackers (``keras.metrics.Mean``: a float32 ``total`` and ``count``) are updated in
  place on the device (:func:`add_to_mean`; the sums are the ones Keras' ``update_state`` forms,
  bit for bit), so they are exact at any moment a backup or an epoch end reads them;
- the logs the step returns are **host floats refreshed every ``every`` steps** (all trackers in
  one transfer, :class:`HostLogs`), and the previous floats in between: Keras' callbacks then
  convert nothing. With ``every = 1`` every step's logs are current (one transfer per step).
  Epoch-end logs always come from the trackers themselves (Keras reads them when the step's log
  keys match its metrics', which these do).

What is left per step on the host side is the batch itself; :mod:`avloc.task` keeps its
constants (the silence spectrogram) on the device and branches on host values only (but for
SSL-TIE's transformed view, which reads the batch's scale). Such a step can be recorded once as
a graph of aten operations and replayed without Keras' per-layer host work
(:mod:`avloc.runtime.step_graph`, ``train.step_graph``): :func:`optimizer_step` is what is
recorded, :func:`train_step` what Keras calls.
``tests/test_torch_step.py`` counts, under torch's dispatcher, the operations that would stop
the host (``aten::_local_scalar_dense``, ``aten::item``, ``aten::is_nonzero``) and the tensors
made from host data (``aten::lift_fresh``) in steps after the first.
"""

from __future__ import annotations

import warnings

import keras
import torch
from keras.src.trainers.data_adapters import data_adapter_utils


def add_to_mean(metric: keras.metrics.Mean, value: torch.Tensor, weight: int | float = 1) -> None:
    """``metric.update_state(value, sample_weight=weight)`` for a scalar ``value``, in place on
    the device: ``total += value * weight``, ``count += weight`` in the metric's dtype (Keras
    forms the same two float32 sums, so the results are equal bit for bit)."""
    total, count = metric.total.value, metric.count.value
    with torch.no_grad():
        value = value.detach().to(total.dtype)
        total.add_(value * weight if weight != 1 else value)
        count.add_(weight)


class HostLogs:
    """The step's logs as host floats, pulled from the trackers every ``every`` steps.

    ``logs(task)`` is called once per step: at the first step and at steps ``every``,
    ``2 every``, ... (counted from 1, as Keras' ``update_freq`` counts) it stacks every metric's
    result into one device tensor and copies it to the host (one synchronisation); in between
    it returns the floats of the last pull.
    """

    def __init__(self, every: int = 1):
        if every < 1:
            raise ValueError(f"logs every {every} steps: must be at least 1")
        self.every = int(every)
        self.calls = 0
        self.due = True  # the first step's logs are pulled
        self.last: dict[str, float] = {}

    def logs(self, task: keras.Model) -> dict[str, float]:
        self.due = self.due or (self.calls + 1) % self.every == 0  # steps every, 2 every, ...
        if self.due:
            self.last, self.due = self.pull(task), False
        self.calls += 1
        return self.last

    def pull_next(self) -> None:
        """Make the next step's logs current (``train_on_batch`` returns them to its caller)."""
        self.due = True

    @staticmethod
    def pull(task: keras.Model) -> dict[str, float]:
        results = task.get_metrics_result()
        names = list(results)
        values = torch.stack([torch.as_tensor(results[n]).float().reshape(()) for n in names])
        return dict(zip(names, values.tolist(), strict=True))


def optimizer_step(task: keras.Model, x, y=None, sample_weight=None) -> None:
    """One optimizer step of ``task`` on inputs ``x``: forward, the composite loss (into the
    trackers, on the device), backward, the optimizer's update. Returns nothing: what the host
    reads comes from the trackers (:class:`HostLogs`). Recorded and replayed by
    :class:`avloc.runtime.step_graph.StepGraph` where ``train.step_graph`` applies."""
    y_pred = task(x, training=True)
    task.zero_grad(set_to_none=True)
    loss = task._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    rows = next(v for v in keras.tree.flatten(x) if v is not None).shape[0]
    add_to_mean(task._loss_tracker, loss, int(rows))
    if task.trainable_weights:
        if task.optimizer is not None:
            loss = task.optimizer.scale_loss(loss)
        loss.backward()
        weights = task.trainable_weights[:]
        with torch.no_grad():
            task.optimizer.apply([v.value.grad for v in weights], weights)
    else:
        warnings.warn("The model does not have any trainable weights.", stacklevel=2)


def train_step(task: keras.Model, data) -> dict[str, float]:
    """The task's ``train_step`` on torch: :func:`optimizer_step` on ``data`` (a batch as
    Keras' torch trainer hands it), replayed from its recording where the task has one
    (``task.step_graph``), then the host logs."""
    x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    recorded = getattr(task, "step_graph", None)
    if recorded is not None and y is None and sample_weight is None and isinstance(x, dict):
        recorded(x)
    else:
        optimizer_step(task, x, y, sample_weight)
    return task.host_logs.logs(task)
