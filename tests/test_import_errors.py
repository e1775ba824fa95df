"""Bad checkpoints and the command: strict key accounting (a missing, extra or misshapen key, the
wrong architecture: one-line errors naming the key, nothing written), safe loading (stored code
never runs, wrappers and prefixes unwrapped), and ``avloc import-checkpoint``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from harness import ROOT, import_error
from references import DIM
from typer.testing import CliRunner

from avloc.errors import DataError
from avloc.models.import_torch import import_checkpoint, load_state_dict
from avloc.models.io import load_network

# ------------------------------------------------------------------------------------------
# strict accounting and safe loading: one-line errors naming the key


def test_missing_key_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    del state["module.audnet.layer3.1.bn2.running_var"]
    message = import_error(state, tmp_path)
    assert "missing key audnet.layer3.1.bn2.running_var" in message


def test_extra_key_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    state["module.img_proj_extra.weight"] = torch.zeros(3)
    message = import_error(state, tmp_path)
    assert "unexpected key img_proj_extra.weight" in message


def test_wrong_shape_is_named(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    state["module.imgnet.layer2.0.conv2.weight"] = torch.zeros(16, 16, 3, 1)
    message = import_error(state, tmp_path)
    assert "wrong shape imgnet.layer2.0.conv2.weight (16, 16, 3, 1)" in message
    assert "(16, 16, 3, 3)" in message


def test_wrong_arch_is_reported(ezvsl_state, tmp_path):
    message = import_error(ezvsl_state, tmp_path, arch="slavc")
    assert "img_proj1.weight" in message


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    with pytest.raises(DataError, match=r"notes.pth: not a PyTorch checkpoint \(neither"):
        import_checkpoint(path, "ezvsl", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


_EXECUTED = []


def _mark_executed():
    _EXECUTED.append(True)
    return {}


class Payload:
    """Pickles as a call to :func:`_mark_executed`: loading must not run it."""

    def __reduce__(self):
        return (_mark_executed, ())


def test_loading_never_runs_stored_code(ezvsl_state, tmp_path):
    path = tmp_path / "payload.pth"
    torch.save({"model": dict(ezvsl_state), "extra": Payload()}, path)
    with pytest.raises(DataError, match=r"stores the Python object \S*_mark_executed"):
        load_state_dict(path)
    assert _EXECUTED == []
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(DataError, match="not a state_dict"):
        load_state_dict(tmp_path / "list.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(DataError, match="not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "text.pth")


def test_a_bare_pickle_payload_is_refused_without_torchs_warning(tmp_path):
    """A plain pickle (protocol 4) makes torch warn about the protocol before refusing: the
    refusal is the one thing said."""
    import pickle
    import warnings

    path = tmp_path / "bare.pth"
    path.write_bytes(pickle.dumps(Payload(), protocol=4))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="stores"):
        warnings.simplefilter("always")
        load_state_dict(path)
    assert _EXECUTED == []
    assert [str(w.message) for w in caught] == []


def test_wrappers_and_prefixes_are_unwrapped(ezvsl_model, tmp_path):
    plain = ezvsl_model.state_dict()
    nested = {"model": {f"module.module.{k}": v for k, v in plain.items()}}
    # saved training arguments (argparse.Namespace) are plain data and accepted
    torch.save({"state_dict": nested, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "a.pth")
    torch.save(plain, tmp_path / "b.pth")
    a, b = load_state_dict(tmp_path / "a.pth"), load_state_dict(tmp_path / "b.pth")
    assert sorted(a) == sorted(b) == sorted(plain)
    for key, value in plain.items():
        np.testing.assert_array_equal(a[key], value.numpy())


# ------------------------------------------------------------------------------------------
# the command


def test_cli_import_checkpoint(ezvsl_file, tmp_path):
    from avloc_cli.main import app

    out = tmp_path / "cli.keras"
    result = CliRunner().invoke(
        app, ["import-checkpoint", str(ezvsl_file), "--arch", "ezvsl", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "avloc eval --calibrate --checkpoint" in result.output
    assert load_network(out).embed_dim == DIM


def test_cli_help_lists_every_arch():
    from avloc.models.import_torch import ARCHS
    from avloc_cli.main import app

    result = CliRunner().invoke(app, ["import-checkpoint", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for arch in ARCHS:
        assert f" {arch}" in result.output, arch


@pytest.mark.large  # starts subprocesses
def test_cli_import_checkpoint_error_is_one_line(ezvsl_state, tmp_path):
    state = dict(ezvsl_state)
    del state["module.aud_proj.bias"]
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "avloc_cli.main", "import-checkpoint", str(path), "--arch", "ezvsl"]
        + ["--out", str(tmp_path / "x.keras")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith(("WARNING: All log messages", "I0", "W0", "E0"))
    ]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("avloc: error: ") and "aud_proj.bias" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.keras").exists()
