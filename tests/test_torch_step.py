"""The torch training step makes no host round trip between its log pulls.

A step on a GPU that reads a device value on the host (``.item()``, ``float()``, ``if tensor``)
waits for the device; one that makes a tensor from host data (``torch.tensor(0.9)``, a Python
number through ``keras.ops``) copies it to the device and, from pageable memory, waits too. Both
are visible on the CPU as operations of torch's dispatcher: ``aten::_local_scalar_dense``
(``item``, ``float``, ``bool``), ``aten::is_nonzero`` and ``aten::lift_fresh`` (a tensor made
from host data). These tests count them per step of tiny SSL-SaN networks
(:mod:`avloc.runtime.torch_step`); what is counted is shown in the failure message.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
from harness import tiny_task_recipe
from test_task import SSL_SAN, random_batch

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the torch step (other backends keep Keras')"
)

#: dispatcher operations that make the host wait for the device
SYNCS = frozenset({"_local_scalar_dense", "item", "is_nonzero"})
#: dispatcher operations that make a tensor from host data (a host-to-device copy on a GPU)
HOST_MADE = frozenset({"lift_fresh"})

SSL_TIE_SAN = {
    "lvs": {"silence_negative": True, "noise_negative": True},
    "silence_map": {"weight": 0.1},
    "noise_map": {"weight": 0.1},
}
SETTINGS = {
    "SSL-SaN on EZ-VSL, Adam": (SSL_SAN, {}),
    "SSL-SaN on EZ-VSL, preprocessing in the step": (SSL_SAN, {}),
    "SSL-SaN on LVS's loss, Adam with L2 decay": (
        SSL_TIE_SAN,
        {"weight_decay": 1e-4, "weight_decay_mode": "l2"},
    ),
}


def counting_mode():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    return Count()


def steps(
    loss: dict, log_every: int, count: int, on_device: bool = False, **train
) -> list[collections.Counter]:
    """The dispatcher operations of ``count`` training steps (after one uncounted step), each
    step's own, of a tiny task whose logs are pulled every ``log_every`` steps; ``on_device``:
    the batch in the loader's stored form, preprocessed inside the step."""
    import dataclasses

    from avloc.training.build import build_task

    keras.utils.set_random_seed(0)
    recipe = tiny_task_recipe(loss, log_every_steps=log_every, **train)
    recipe = dataclasses.replace(
        recipe, data=dataclasses.replace(recipe.data, preprocess_on_device=on_device)
    )
    task = build_task(recipe)
    if on_device:
        samples = int(recipe.data.sample_rate * recipe.data.clip_seconds)
        raw = task.preprocess.example(4, samples, task.needs_noise)
        rng = np.random.default_rng(0)
        raw["image"] = rng.integers(0, 256, raw["image"].shape).astype(np.uint8)
        raw["audio"] = rng.integers(-3000, 3000, raw["audio"].shape).astype(np.int16)
        raw["noise_seed"] = np.arange(4, dtype=np.int32)
    else:
        raw = random_batch(recipe, task, 4)
    batch = {k: keras.ops.convert_to_tensor(v) for k, v in raw.items()}
    task.make_train_function()
    task.train_function([batch])  # the first step pulls its logs and makes the constants
    counted = []
    for _ in range(count):
        with counting_mode() as mode:
            task.train_function([batch])
        counted.append(mode.ops)
    return counted


def of(kinds: frozenset, ops: collections.Counter) -> dict[str, int]:
    return {name: n for name, n in ops.items() if name in kinds}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_a_step_between_log_pulls_neither_waits_for_the_device_nor_copies_to_it(setting):
    loss, train = SETTINGS[setting]
    on_device = setting.endswith("preprocessing in the step")
    for i, ops in enumerate(steps(loss, log_every=4, count=2, on_device=on_device, **train)):
        assert of(SYNCS, ops) == {}, f"step {i + 2} waits for the device"
        assert of(HOST_MADE, ops) == {}, f"step {i + 2} makes tensors from host data"


def test_a_log_pull_is_one_wait_for_every_tracker():
    """Step 3 of logs every 3 steps pulls the loss and its three terms' means in one transfer."""
    second, third = steps(SSL_SAN, log_every=3, count=2)
    assert of(SYNCS, second) == {}
    assert sum(of(SYNCS, third).values()) <= 1, of(SYNCS, third)


def test_the_guard_sees_an_item_put_back_into_the_step(monkeypatch):
    """The counting above would fail on a step that reads one value on the host."""
    from avloc.runtime import torch_step

    add = torch_step.add_to_mean

    def add_and_read(metric, value, weight=1):
        value.item()
        add(metric, value, weight)

    monkeypatch.setattr(torch_step, "add_to_mean", add_and_read)
    (ops,) = steps(SSL_SAN, log_every=4, count=1)
    assert of(SYNCS, ops).get("_local_scalar_dense", 0) >= 1


def test_logs_pulled_every_few_steps_are_the_trackers_means():
    """The floats a pull returns are the means Keras' own step would log (``every = 1``)."""
    from avloc.training.build import build_task

    logs = {}
    for every in (1, 4):
        keras.utils.set_random_seed(0)
        recipe = tiny_task_recipe(SSL_SAN, log_every_steps=every)
        task = build_task(recipe)
        x = random_batch(recipe, task, 16)
        history = task.fit(x, epochs=1, batch_size=4, verbose=0).history
        logs[every] = {k: v[-1] for k, v in history.items()}
    assert logs[1] == logs[4]
    assert set(logs[1]) == {"loss", "loss_ezvsl", "loss_silence_map", "loss_noise_map"}
    np.testing.assert_allclose(
        logs[1]["loss"],
        logs[1]["loss_ezvsl"] + 0.5 * logs[1]["loss_silence_map"] + 2 * logs[1]["loss_noise_map"],
        rtol=1e-5,
    )


def test_a_step_of_ssl_ties_transformed_view_does_not_wait_for_the_device():
    """The view's size comes from the shape of the batch's ``equivariance_view`` array."""
    from test_ssltie_task import batch_at, tiny_ssltie

    from avloc.training.build import build_task

    keras.utils.set_random_seed(0)
    task = build_task(tiny_ssltie(lvs={}, equivariance={}))
    batch = {k: keras.ops.convert_to_tensor(v) for k, v in batch_at(0.5).items()}
    task.make_train_function()
    task.train_function([batch])
    with counting_mode() as mode:
        task.train_function([batch])
    assert of(HOST_MADE, mode.ops) == {}
    assert of(SYNCS, mode.ops) == {}


# ---- the recorded step (avloc.runtime.step_graph) ----


def trained(recipe, batches: list[dict], step_graph: bool):
    """The task of ``recipe`` after one training step on each batch, recorded or not."""
    import dataclasses

    from avloc.training.build import build_task

    keras.utils.set_random_seed(0)
    recipe = dataclasses.replace(
        recipe, train=dataclasses.replace(recipe.train, step_graph=step_graph)
    )
    task = build_task(recipe)
    task.make_train_function()
    for batch in batches:
        task.train_function([{k: keras.ops.convert_to_tensor(v) for k, v in batch.items()}])
    return task


def state_of(task) -> list[np.ndarray]:
    variables = (*task.variables, *task.optimizer.variables, *task.metrics_variables)
    return [keras.ops.convert_to_numpy(v.value.detach()) for v in variables]


@pytest.mark.parametrize(
    "setting", ["SSL-SaN on EZ-VSL, Adam", "SSL-SaN on LVS's loss, Adam with L2 decay"]
)
def test_replayed_steps_equal_eager_steps_bit_for_bit(setting):
    """Five steps on five different batches: the second is recorded, the next three replay the
    recording on their own data. Every weight, optimizer slot, batch-norm statistic and loss
    tracker equals the eager run's exactly."""
    loss, train = SETTINGS[setting]
    recipe = tiny_task_recipe(loss, **train)
    probe = trained(recipe, [], step_graph=False)
    batches = [random_batch(recipe, probe, 4, seed=seed) for seed in range(5)]
    assert not np.array_equal(batches[2]["image"], batches[3]["image"])
    eager = trained(recipe, batches, step_graph=False)
    recorded = trained(recipe, batches, step_graph=True)
    assert eager.step_graph is None
    assert recorded.step_graph.discarded == []
    assert [g is not None for g in recorded.step_graph.recordings.values()] == [True]
    for a, b in zip(state_of(eager), state_of(recorded), strict=True):
        np.testing.assert_array_equal(a, b)
    before = state_of(trained(recipe, batches[:4], step_graph=False))
    assert any(not np.array_equal(a, b) for a, b in zip(before, state_of(eager), strict=True))


@pytest.mark.parametrize("scales", [(0.5, 0.5, 1.0, 0.5, 1.0, 1.0)])
def test_ssl_ties_two_view_sizes_are_recorded_once_each_and_replay_exactly(scales):
    """SSL-TIE's transformed view has one batch signature per scale: each is recorded at its
    second step and replayed after, and the run equals an eager one bit for bit."""
    from test_ssltie_task import batch_at, tiny_ssltie

    recipe = tiny_ssltie(lvs={}, equivariance={})
    batches = [batch_at(scale, seed) for seed, scale in enumerate(scales)]
    eager = trained(recipe, batches, step_graph=False)
    recorded = trained(recipe, batches, step_graph=True)
    assert recorded.step_graph.discarded == []
    assert len(recorded.step_graph.recordings) == 2
    assert all(g is not None for g in recorded.step_graph.recordings.values())
    for a, b in zip(state_of(eager), state_of(recorded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_step_that_reads_the_device_is_not_recorded_and_stays_exact(monkeypatch):
    """With an ``.item()`` put back into the step, its recording stops there, the state the
    step had changed (batch-norm statistics among it) is put back, and the steps stay eager,
    equal to a run that never tried."""
    from avloc.runtime import torch_step

    add = torch_step.add_to_mean

    def add_and_read(metric, value, weight=1):
        value.item()
        add(metric, value, weight)

    monkeypatch.setattr(torch_step, "add_to_mean", add_and_read)
    loss, train = SETTINGS["SSL-SaN on LVS's loss, Adam with L2 decay"]
    recipe = tiny_task_recipe(loss, **train)
    probe = trained(recipe, [], step_graph=False)
    batches = [random_batch(recipe, probe, 4, seed=seed) for seed in range(4)]
    eager = trained(recipe, batches, step_graph=False)
    with pytest.warns(UserWarning, match="reads a device value on the host"):
        tried = trained(recipe, batches, step_graph=True)
    assert tried.step_graph.discarded
    assert list(tried.step_graph.recordings.values()) == [None]
    for a, b in zip(state_of(eager), state_of(tried), strict=True):
        np.testing.assert_array_equal(a, b)
