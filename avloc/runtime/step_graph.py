"""The torch training step recorded once as a graph of aten operations, then replayed.

On torch, Keras runs a step through its layer machinery: about 140 layer calls per step, each
flattening its arguments, entering name scopes and checking dtypes, plus the optimizer's
per-variable Python. That host work costs more than the arithmetic of a small network on a CPU
and keeps a GPU waiting (benchmarks/RESULTS.md). None of it is needed to repeat a step whose
arithmetic is fixed: :class:`StepGraph` runs the first step of each batch signature eagerly
(constants the step makes once are made then), records the second with ``torch.fx``'s
``make_fx`` (``tracing_mode="real"``: the step runs for real while every aten operation it
dispatches is written down, the backward pass included) and replays that recording for every
later batch of the same signature, under ``torch.no_grad`` (the recording holds the gradient
arithmetic itself).

What a replay does: the same operations, in the same order, on the same tensors. The weights,
the optimizer's slots and iteration counter, the batch-norm statistics, the loss trackers and
the task's epoch counter are held by reference and updated in place, as the eager step updates
them, so a replayed run equals an eager one bit for bit (``tests/test_torch_step.py``), and
anything that reads or assigns those variables between steps (a backup, a resume, Keras'
callbacks) sees and sets what the next replay uses.

When a recording is not valid, and what then happens: a recording fixes every decision the
step's Python took. That is right only for a step that takes no decision on a device value
and reads no host value that changes between steps, i.e. the sync-free step of
:mod:`avloc.runtime.torch_step`. A step that reads a device value on the host
(``aten::_local_scalar_dense``: ``item``, ``float``, ``if tensor``) stops its recording; the
state it had changed by then is put back from a copy taken before, and it runs eagerly. A
finished recording that holds a tensor made from host data (``lift_fresh``: a value fixed when
it was recorded) is discarded (its step ran for real, so it counts). Either way the steps of
that signature stay eager, with one notice. SSL-TIE's transformed view is recorded: its size
is a host value (the shape of the batch's ``equivariance_view``), so its two sizes are two
signatures, each recorded once.

Speed: replayed op by op from Python, a recording costs the host about what Keras' layers do
(a CPU benchmark of tiny shapes measured the two within 4 %: benchmarks/RESULTS.md), so it is
off by default; it is the form a compiled or CUDA-graph replay starts from.

Where it applies (``train.step_graph``, :func:`applies`): torch, one process (a data-parallel
run's collectives are not recorded), the step not compiled by ``torch.compile``
(``train.jit_compile``). Shapes: any; every batch of one signature (keys, shapes, dtypes,
devices) shares a recording, and the loader's batches all have one (its last partial batch is
dropped), so a run records once (its second step), and a resumed run once more in its new
process. torch is imported when a step is recorded, not at import.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: aten operations that make the host wait for the device (the guard's list)
HOST_READS = frozenset({"_local_scalar_dense", "item", "is_nonzero"})
#: aten operations that make a tensor from host data (a value fixed at recording time)
HOST_MADE = frozenset({"lift_fresh", "lift_fresh_copy"})


def signature(batch: dict) -> tuple:
    """What a recording is valid for: every input's key, shape, dtype and device."""
    return tuple(
        (key, tuple(value.shape), str(value.dtype), str(value.device))
        for key, value in sorted(batch.items())
    )


def host_round_trips(graph: torch.fx.GraphModule) -> list[str]:
    """The names of the recording's operations that read a device value on the host or fix a
    host value (sorted, each once); empty for a recording that may be replayed."""
    found = set()
    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(getattr(node.target, "overloadpacket", None), "__name__", None)
        if name in HOST_READS or name in HOST_MADE:
            found.add(name)
    return sorted(found)


class StepGraph:
    """``step(batch)`` runs ``update(batch)`` (one optimizer step, nothing returned): eagerly
    the first time a batch signature is seen, recorded the second time, replayed afterwards
    (module docstring).

    ``recordings`` maps each signature to its graph, or to None where the recording was
    discarded (that signature's steps run ``update`` itself); ``discarded`` lists why.
    """

    def __init__(
        self,
        update: Callable[[dict], None],
        before_recording: Callable[[], None],
        state: Callable[[], list],
    ):
        self.update = update
        #: every tensor a step may change in place (weights, optimizer slots, trackers)
        self.state = state
        #: called before a recording (the task drops its gradients: they are the eager step's)
        self.before_recording = before_recording
        self.recordings: dict[tuple, torch.fx.GraphModule | None] = {}
        self.discarded: list[str] = []

    def __call__(self, batch: dict) -> None:
        key = signature(batch)
        if key not in self.recordings:  # first sight: eager (lazily made constants appear)
            self.recordings[key] = RECORD_NEXT
            self.update(batch)
            return
        graph = self.recordings[key]
        if graph is RECORD_NEXT:
            self.recordings[key] = self.record(batch)
            return
        if graph is None:
            self.update(batch)
            return
        import torch

        with torch.no_grad():
            graph(batch)

    def record(self, batch: dict) -> torch.fx.GraphModule | None:
        """Run this step for real while recording it; the recording, or None if it cannot be
        replayed (the step stays eager for this signature).

        Recording stops at an operation that reads a device value on the host; the state the
        step had changed by then (batch-norm statistics, random generators) is put back from a
        copy taken before, and the step runs eagerly instead. A finished recording that fixed
        a host value is discarded (its step ran for real, so it counts)."""
        import torch
        from torch.fx.experimental.proxy_tensor import make_fx

        state = [value.detach().clone() for value in self.state()]
        generators = rng_states()
        self.before_recording()
        try:
            graph = make_fx(self.update, tracing_mode="real")(batch)
        except RuntimeError as error:
            if "value out of a tracing tensor" not in str(error):
                raise
            with torch.no_grad():
                for value, saved in zip(self.state(), state, strict=True):
                    value.copy_(saved)
            set_rng_states(generators)
            self.discard("the step reads a device value on the host")
            self.update(batch)
            return None
        finally:
            self.before_recording()  # the recorded step's gradients are not needed again
        found = host_round_trips(graph)
        if found:
            self.discard(f"the step makes tensors from host data ({', '.join(found)})")
            return None
        return graph

    def discard(self, reason: str) -> None:
        self.discarded.append(reason)
        warnings.warn(
            f"train.step_graph: {reason}; this batch signature's steps stay eager", stacklevel=3
        )


#: a signature seen once: its next step is recorded
RECORD_NEXT = object()


def rng_states() -> tuple:
    """torch's random generators' states (CPU, and every CUDA device when there is one)."""
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.get_rng_state(), cuda


def set_rng_states(states: tuple) -> None:
    import torch

    cpu, cuda = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def applies(setting: bool, compiled: bool) -> bool:
    """``train.step_graph`` for this process: on where it is ``true`` (default ``false``) and
    applies, i.e. on torch, in a single process, the step not compiled by ``torch.compile``."""
    import keras

    if not setting or keras.backend.backend() != "torch" or compiled:
        return False
    import torch

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return not distributed
