"""Data-parallel loss terms (``[distribute] negatives``): on simulated devices, every loss term
with gathered global negatives averages to its value on the global batch, and with per-device
negatives (JAX's one program) the loss averages each device's group of rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from avloc.losses import build_terms
from avloc.task import row_group

# ------------------------------------------------------------------------------------------
# Loss terms: the devices' mean with gathered negatives is the one-batch value


class RecordingDevice:
    """Device ``index`` on its own: ``gather`` returns its rows and remembers them, in order."""

    spans_devices = True

    def __init__(self, index: int):
        self.index = index
        self.gathered: list = []

    def gather(self, x):
        self.gathered.append(x)
        return x

    def first_row(self, rows):
        return 0


class SimulatedDevice(RecordingDevice):
    """Device ``index``: its ``n``-th gather is the ``n``-th gathered tensor of every device
    (as recorded), with its own live tensor in its place, as an all-gather returns."""

    def __init__(self, index: int, recorded: list[RecordingDevice]):
        super().__init__(index)
        self.recorded = recorded

    def gather(self, x):
        parts = [device.gathered[len(self.gathered)] for device in self.recorded]
        parts[self.index] = x
        self.gathered.append(x)
        return ops.concatenate(parts, axis=0)

    def first_row(self, rows):
        return self.index * int(rows)


def normalised(rng, *shape):
    x = rng.standard_normal(shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")


def random_outputs(rng, batch: int) -> dict:
    return {
        "v_map": normalised(rng, batch, 3, 2, 8),
        "a_emb": normalised(rng, batch, 8),
        "a_noise": normalised(rng, batch, 8),
        "a_silence": normalised(rng, 1, 8),
    }


TERMS = {
    "ezvsl": {"tau": 0.1},
    "marginnce+S+N": {"tau": 0.1, "margin": -0.2, "silence_negative": True, "noise_negative": True},
    "fnac_fns1": {"tau": 0.1},
    "fnac_fns2": {"tau": 0.1},
    "fnac_tne": {"tau": 0.1, "threshold": 0.5},
    "lvs": {"margin": 0.1},
    "lvs-no-hard": {"hard_negative": False},
    "lvs+S+N": {"margin": 0.1, "silence_negative": True, "noise_negative": True},
    "silence_map": {},
    "noise_map": {},
}


@pytest.mark.parametrize("devices", [2, 3])
@pytest.mark.parametrize("name", list(TERMS))
def test_term_with_gathered_negatives_equals_the_global_batch(name, devices):
    registered = name.split("+")[0].split("-no-")[0].replace("marginnce", "ezvsl")
    term = build_terms({registered: TERMS[name]})[registered]
    rng = np.random.default_rng(len(name) + devices)
    batch = 2 * devices
    outputs = random_outputs(rng, batch)
    whole = float(
        ops.convert_to_numpy(term({k: ops.convert_to_tensor(v) for k, v in outputs.items()}))
    )
    rows = batch // devices
    local = [
        {
            k: ops.convert_to_tensor(
                v if k == "a_silence" else v[index * rows : (index + 1) * rows]
            )
            for k, v in outputs.items()
        }
        for index in range(devices)
    ]
    recorded = [RecordingDevice(index) for index in range(devices)]
    for device, rows_of_device in zip(recorded, local, strict=True):
        term.batch = device
        term(rows_of_device)
    values = []
    for index in range(devices):
        term.batch = SimulatedDevice(index, recorded)
        values.append(float(ops.convert_to_numpy(term(local[index]))))
    np.testing.assert_allclose(np.mean(values), whole, rtol=1e-5, atol=1e-6)


def test_lvs_extra_negatives_gather_only_the_audios():
    """lvs's silence and noise columns are per row (the shared a_S, the row's own a_N_i):
    with them on, the term gathers exactly what it gathers without them."""
    outputs = {
        k: ops.convert_to_tensor(v) for k, v in random_outputs(np.random.default_rng(4), 4).items()
    }
    gathered = []
    for extra in ({}, {"silence_negative": True, "noise_negative": True}):
        term = build_terms({"lvs": extra})["lvs"]
        term.batch = RecordingDevice(0)
        term(outputs)
        gathered.append(term.batch.gathered)
    assert len(gathered[0]) == len(gathered[1]) == 1
    assert gathered[1][0] is outputs["a_emb"]


def test_loss_groups_average_each_group_of_rows():
    """JAX with per-device negatives: each term on each device's rows of the global program."""
    term = build_terms({"ezvsl": {"tau": 0.1, "noise_negative": True}})["ezvsl"]
    outputs = {
        k: ops.convert_to_tensor(v) for k, v in random_outputs(np.random.default_rng(5), 6).items()
    }
    groups = [row_group(outputs, g, 3) for g in range(3)]
    assert all(tuple(g["a_silence"].shape) == (1, 8) for g in groups)
    expected = np.mean([float(ops.convert_to_numpy(term(g))) for g in groups])
    from avloc.task import LocalizationTask

    task = LocalizationTask.__new__(LocalizationTask)  # only loss_terms is used
    task.terms, task.loss_groups = {"ezvsl": term}, 3
    got = float(ops.convert_to_numpy(task.loss_terms(outputs)["ezvsl"]))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert abs(got - float(ops.convert_to_numpy(term(outputs)))) > 1e-3  # grouping matters
