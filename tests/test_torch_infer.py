"""The Keras-free torch path of ``avloc localize``: same maps as the Keras network, a cache keyed
by the file's content, no Keras import on a cached start, and Keras for anything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avloc.jobs import localize as lz
from avloc.maps import torch_engine as ti
from avloc.maps.engine import MapsEngine
from avloc.models import AudioVisualNet
from avloc.models.io import save_network
from avloc.models.resnet import BN_EPSILON

ROOT = Path(__file__).resolve().parents[1]
INPUTS = {"image_size": 64, "sample_rate": 16000, "clip_seconds": 1.0}
ON_TORCH = keras.backend.backend() == "torch"
CONFIGS = {
    "ezvsl-like": dict(visual=dict(width=4, stem_pool=False), audio=dict(width=4)),
    "stride-1-last": dict(
        visual=dict(width=4, blocks=(1, 2, 1, 1), last_stride=1),
        audio=dict(width=4, blocks=(1, 1, 1, 1), stem_pool=False),
    ),
}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AVLOC_TORCH_INFER", raising=False)


def _network(config: dict, seed: int = 0, projection: bool = True) -> AudioVisualNet:
    """A tiny network with non-trivial batch-norm statistics and a calibration."""
    keras.utils.set_random_seed(seed)
    net = AudioVisualNet(
        embed_dim=8,
        inputs=INPUTS,
        projection=projection,
        calibration={"uth": 0.125, "statistic": "test"},
        name="avnet",
        **config,
    )
    rng = np.random.default_rng(seed)
    for variable in net.weights:
        if any(k in variable.path for k in ("moving", "gamma", "beta")):
            variable.assign(rng.uniform(0.5, 1.5, size=variable.shape).astype("float32"))
    return net


def _pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (37 + 5 * i, 53, 3), dtype=np.uint8) for i in range(n)]
    waves = [rng.uniform(-0.5, 0.5, 16000 + 3000 * i).astype(np.float32) for i in range(n)]
    return images, waves


def test_constants_are_the_keras_paths():
    from avloc.models import torch_ref

    assert torch_ref.BN_EPSILON == BN_EPSILON


@pytest.mark.parametrize("name", list(CONFIGS))
def test_torch_net_gives_the_keras_networks_maps(tmp_path, name):
    path = save_network(_network(CONFIGS[name]), tmp_path / "net.keras")
    assert lz.load_cached_model(checkpoint=path) is None  # nothing cached yet
    keras_net = lz.load_model(checkpoint=path)
    torch_net = lz.load_cached_model(checkpoint=path)
    if not ON_TORCH:
        assert torch_net is None and not (tmp_path / "cache").exists()
        return
    assert isinstance(torch_net, ti.TorchNet)
    assert torch_net.inputs == keras_net.inputs and torch_net.uth == keras_net.uth == 0.125
    images, waves = _pairs(3)
    want = MapsEngine(keras_net).pair_maps(images, waves)
    got = MapsEngine(torch_net).pair_maps(images, waves)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    for image, wave in zip(images, waves, strict=True):  # upsampled maps and decisions
        a = lz.localize_pair(keras_net, image, wave)
        b = lz.localize_pair(torch_net, image, wave)
        assert b.heatmap.shape == image.shape[:2]
        np.testing.assert_allclose(b.heatmap, a.heatmap, rtol=1e-5, atol=2e-6)
        assert b.peak == a.peak and b.sounding == a.sounding


@pytest.mark.skipif(not ON_TORCH, reason="the torch path is used with the torch backend only")
def test_cache_follows_the_files_content_and_survives_damage(tmp_path):
    path = tmp_path / "net.keras"
    save_network(_network(CONFIGS["ezvsl-like"], seed=1), path)
    lz.load_model(checkpoint=path)
    first = lz.load_cached_model(checkpoint=path)
    save_network(_network(CONFIGS["ezvsl-like"], seed=2), path)  # same name, new weights
    assert lz.load_cached_model(checkpoint=path) is None
    lz.load_model(checkpoint=path)
    second = lz.load_cached_model(checkpoint=path)
    images, waves = _pairs(1)
    maps = [MapsEngine(net).pair_maps(images, waves) for net in (first, second)]
    assert not np.allclose(*maps)

    weights, config = ti.cache_paths(path)
    weights.write_bytes(b"not an npz")
    assert lz.load_cached_model(checkpoint=path) is None  # damaged: back to Keras
    lz.load_model(checkpoint=path)
    assert isinstance(lz.load_cached_model(checkpoint=path), ti.TorchNet)
    assert json.loads(config.read_text())["calibration"]["uth"] == 0.125


def test_networks_without_projections_stay_on_keras(tmp_path):
    net = _network(CONFIGS["ezvsl-like"], projection=False)
    assert not ti.supported(net)
    path = save_network(net, tmp_path / "lvs-like.keras")
    assert ti.write_cache(path, net) is False
    lz.load_model(checkpoint=path)
    assert lz.load_cached_model(checkpoint=path) is None


@pytest.mark.skipif(not ON_TORCH, reason="the torch path is used with the torch backend only")
def test_switch_off_with_avloc_torch_infer_0(tmp_path, monkeypatch):
    path = save_network(_network(CONFIGS["ezvsl-like"]), tmp_path / "net.keras")
    lz.load_model(checkpoint=path)
    monkeypatch.setenv("AVLOC_TORCH_INFER", "0")
    assert lz.load_cached_model(checkpoint=path) is None


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(not ON_TORCH, reason="the torch path is used with the torch backend only")
def test_cli_second_start_skips_keras_and_says_the_same(tmp_path):
    path = save_network(_network(CONFIGS["ezvsl-like"]), tmp_path / "net.keras")
    image, wave = tmp_path / "scene.png", tmp_path / "tone.wav"
    images, waves = _pairs(1)
    Image.fromarray(images[0]).save(image)
    sf.write(wave, waves[0], 16000)
    # In one fresh process per start: run the CLI, then report whether Keras got imported.
    script = (
        "import json, sys\n"
        "from avloc_cli.main import app\n"
        "try:\n"
        "    app(prog_name='avloc', args=sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps({'keras_imported': 'keras' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outputs = []
    for start in ("first", "second"):
        out = tmp_path / f"{start}.png"
        args = ["localize", str(image), str(wave), "--checkpoint", str(path), "-o", str(out)]
        result = subprocess.run(
            [sys.executable, "-c", script, *args, "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        record, flags = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
        assert out.is_file()
        outputs.append((record, flags["keras_imported"]))
    (first, keras_first), (second, keras_second) = outputs
    assert keras_first and not keras_second
    assert second["sounding"] == first["sounding"] and second["peak_xy"] == first["peak_xy"]
    assert second["max_score"] == pytest.approx(first["max_score"], abs=1e-5)
