"""Crafted network files and checkpoints (issue 36, items 1 and 3): every value a ``.keras``
config or a ``.pth`` checkpoint declares is checked against the recipes' ranges, and sizes
against what the file stores, before anything is built or converted: one line naming the file
and the key, instead of an out-of-memory kill, a build that never ends or a traceback."""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import import_error, run_avloc
from localize_harness import scene, tiny_net

from avloc.errors import DataError
from avloc.models.import_torch import import_checkpoint
from avloc.models.io import load_network, save_network
from avloc.models.torch_keys import load_state_dict
from avloc.runtime.configure import configure

# ------------------------------------------------------------------------------------------
# .keras network files: config.json rewritten inside a tiny saved network


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    configure(widths=[4])
    net = tiny_net(calibration={"uth": 0.1, "statistic": "test"})
    return save_network(net, tmp_path_factory.mktemp("net") / "tiny.keras")


def crafted(source: Path, target: Path, change) -> Path:
    """``source`` with its network config changed by ``change(config)``, saved as ``target``."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for member in archive.infolist():
            data = archive.read(member.filename)
            if member.filename == "config.json":
                whole = json.loads(data)
                change(whole["config"])
                data = json.dumps(whole).encode()
            out.writestr(member, data)
    return target


def set_key(key: str, value):
    """A ``change`` for :func:`crafted`: the dotted ``key`` of the config set to ``value``."""

    def change(config):
        *tables, last = key.split(".")
        for table in tables:
            config = config.setdefault(table, {})
        config[last] = value

    return change


def load_error(tiny_file: Path, tmp_path: Path, key: str, value) -> str:
    """Loading the tiny network with ``key`` set to ``value`` fails in one line naming the file
    and the key; the message."""
    path = crafted(tiny_file, tmp_path / "crafted.keras", set_key(key, value))
    with pytest.raises(DataError) as info:
        load_network(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and key in message, message
    return message


def test_the_untouched_file_loads(tiny_file, tmp_path):
    path = crafted(tiny_file, tmp_path / "same.keras", lambda config: None)
    assert load_network(path).uth == pytest.approx(0.1)


def test_a_huge_image_size_is_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "inputs.image_size", 1_000_000)
    assert "between 16 and 2048" in message and "1000000" in message


def test_a_hundred_thousand_blocks_are_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "visual.blocks", [100_000, 2, 2, 2])
    assert "1-64 each" in message


def test_a_billion_second_clip_is_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "inputs.clip_seconds", 1e9)
    assert "between 0.05 and 600" in message


def test_a_zero_sample_rate_is_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "inputs.sample_rate", 0)
    assert "between 1000 and 192000" in message


def test_a_negative_border_is_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "inputs.inference_border", -50)
    assert "between 0 and 256" in message


def test_a_text_uth_is_refused(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "calibration.uth", "abc")
    assert "expected float, got str" in message


def test_a_nan_uth_names_the_file_not_the_option(tiny_file, tmp_path):
    message = load_error(tiny_file, tmp_path, "calibration.uth", math.nan)
    assert "--uth" not in message and "finite" in message


def test_a_width_its_weights_cannot_hold_is_refused_before_building(tiny_file, tmp_path):
    # within the recipes' range, but a network of billions of weights from a file of kilobytes
    message = load_error(tiny_file, tmp_path, "visual.width", 4096)
    assert "model.weights.h5 holds" in message and "refused before building" in message


def test_inputs_the_contract_refuses_are_one_line(tiny_file, tmp_path):
    assert "expected 1 to 512" in load_error(tiny_file, tmp_path, "inputs.stft_hop", 0)
    assert "expected int" in load_error(tiny_file, tmp_path, "inputs.stft_hop", "abc")
    assert "expected one of" in load_error(tiny_file, tmp_path, "inputs.image_norm", "x")
    assert "expected a table" in load_error(tiny_file, tmp_path, "calibration", [1])


@pytest.mark.large  # starts a subprocess
def test_localize_with_a_huge_image_size_is_one_line(tiny_file, tmp_path):
    from PIL import Image

    path = crafted(tiny_file, tmp_path / "big.keras", set_key("inputs.image_size", 1_000_000))
    image, audio = tmp_path / "scene.png", tmp_path / "tone.wav"
    Image.fromarray(scene(37, 53)).save(image)
    import soundfile

    soundfile.write(audio, np.zeros(16000, np.float32), 16000)
    result = run_avloc("localize", str(image), str(audio), "--checkpoint", str(path), timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "inputs.image_size" in lines[0], lines
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# .pth checkpoints for avloc import-checkpoint


def replaced(state: dict, key: str, tensor: torch.Tensor) -> dict:
    return {**state, f"module.{key}": tensor}


def test_a_zero_stride_tensor_of_a_trillion_elements_is_refused(ezvsl_state, tmp_path):
    state = replaced(ezvsl_state, "imgnet.bn1.running_var", torch.zeros(1).expand(10**12))
    message = import_error(state, tmp_path)
    assert "imgnet.bn1.running_var declares 1,000,000,000,000 elements" in message


def test_a_zero_stride_embedding_of_1e8_is_refused(ezvsl_state, tmp_path):
    channels = ezvsl_state["module.img_proj.weight"].shape[1]
    huge = torch.zeros(1, 1, 1, 1).expand(10**8, channels, 1, 1)
    message = import_error(replaced(ezvsl_state, "img_proj.weight", huge), tmp_path)
    assert "img_proj.weight declares" in message


def test_an_embedding_size_of_1e6_is_refused(ezvsl_state, tmp_path):
    # real values (4 MB), so the size itself is what is refused: model.embed_dim's range
    state = replaced(ezvsl_state, "img_proj.weight", torch.zeros(10**6, 1, 1, 1))
    message = import_error(state, tmp_path)
    assert "img_proj.weight: must be between 1 and 65536 (as model.embed_dim)" in message


def test_a_width_of_1e6_is_refused(ezvsl_state, tmp_path):
    state = replaced(ezvsl_state, "imgnet.conv1.weight", torch.zeros(10**6, 1, 1, 1))
    message = import_error(state, tmp_path)
    assert "imgnet.conv1.weight: must be between 1 and 4096 (as model.visual.width)" in message
    wide = torch.zeros(1, 1, 1, 1).expand(10**6, 3, 7, 7)  # as zero strides: refused earlier
    message = import_error(replaced(ezvsl_state, "imgnet.conv1.weight", wide), tmp_path)
    assert "imgnet.conv1.weight declares" in message


def test_a_width_its_tensors_cannot_fill_is_refused_before_building(ezvsl_state, tmp_path):
    state = replaced(ezvsl_state, "imgnet.conv1.weight", torch.zeros(4096, 3, 7, 7))
    message = import_error(state, tmp_path)
    assert "visual.width 4096" in message and "refused before building" in message


def test_a_compressed_checkpoint_bomb_is_refused(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(2**22)}, plain)  # 16 MiB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            out.writestr(name, src.read(name))
    with pytest.raises(DataError, match=r"bomb.pth: member \S+ unpacks 16 MiB"):
        load_state_dict(bomb)


class _Storage:
    def __init__(self, numel: int):
        self.numel = numel


class _Tensor:
    """Pickles as torch's record of a float tensor over storage ``0``."""

    def __init__(self, storage: _Storage, size: tuple, stride: tuple):
        self.args = (storage, 0, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None


def handmade(path: Path, tensor: _Tensor, stored: int) -> Path:
    """A ``torch.save``-format checkpoint ``{"w": tensor}`` whose storage holds ``stored``
    float32 values, whatever the pickle declares."""
    pickled = io.BytesIO()
    _Pickler(pickled, protocol=2).dump({"w": tensor})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", pickled.getvalue())
        archive.writestr("a/byteorder", "little")
        archive.writestr("a/version", "3\n")
        archive.writestr("a/data/0", np.zeros(stored, np.float32).tobytes())
    return path


@pytest.mark.parametrize(
    "storage, size, stride, words",
    [
        (4, (10**12,), (1,), "not a PyTorch"),  # beyond its storage (torch refuses it)
        (10**10, (4,), (1,), "not a PyTorch"),  # a storage larger than its record (torch too)
        (4, (10**12,), (0,), "declares 1,000,000,000,000 elements"),  # zero strides
    ],
    ids=["extent", "storage", "stride"],
)
def test_a_handmade_tensor_beyond_its_storage_is_refused(tmp_path, storage, size, stride, words):
    path = handmade(tmp_path / "handmade.pth", _Tensor(_Storage(storage), size, stride), 4)
    fine = handmade(tmp_path / "fine.pth", _Tensor(_Storage(4), (4,), (1,)), 4)
    assert load_state_dict(fine)["w"].shape == (4,)  # the handmade format itself is sound
    with pytest.raises(DataError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and words in message, message
    with pytest.raises(DataError):
        import_checkpoint(path, "ezvsl", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()
