"""``inputs["inference_border"]``: the maps stage frames every image with its mean colour (zeros
after normalisation) before the visual trunk, wherever it makes maps, and the network keeps the
setting through a save and a load; the larger map is drawn onto the image as any map is."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness import QUICKSTART, TINY_NET
from keras import ops

from avloc.config import load_recipe
from avloc.errors import RecipeError
from avloc.inputs.contract import InputContract, batch
from avloc.inputs.images import preprocess_test
from avloc.jobs import localize as lz
from avloc.maps.engine import MapsEngine
from avloc.models import AudioVisualNet
from avloc.models.build import build_network
from avloc.models.io import load_network, save_network

INPUTS = {"image_size": 32, "sample_rate": 16000, "clip_seconds": 0.5}


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (30 + 7 * i, 41, 3), dtype=np.uint8) for i in range(n)]


def test_the_frame_is_zeros_around_the_normalised_image():
    images = _images(3)
    plain = InputContract(INPUTS).images(images)
    framed = InputContract({**INPUTS, "inference_border": 8}).images(images)
    assert plain.shape == (3, 32, 32, 3) and framed.shape == (3, 48, 48, 3)
    np.testing.assert_array_equal(framed[:, 8:40, 8:40], plain)
    outside = np.ones(framed.shape, bool)
    outside[:, 8:40, 8:40] = False
    assert not framed[outside].any()
    # zero is the mean colour: an image of ImageNet's mean normalises to about 0 everywhere
    mean_rgb = np.broadcast_to(np.uint8([124, 116, 104]), (32, 32, 3)).copy()
    assert np.abs(preprocess_test(mean_rgb, 32)).max() < 0.01


def test_a_negative_border_is_refused():
    with pytest.raises(ValueError, match="inference_border -1"):
        InputContract({**INPUTS, "inference_border": -1})


def _network(border: int) -> AudioVisualNet:
    keras.utils.set_random_seed(3)
    return AudioVisualNet(
        embed_dim=8,
        inputs={**INPUTS, "inference_border": border},
        calibration={"uth": 0.125, "statistic": "test"},
        visual=dict(width=4, stem_pool=False),
        audio=dict(width=4),
        name="avnet",
    )


def test_maps_of_a_framed_network_by_hand_and_after_a_reload(tmp_path, monkeypatch):
    net = _network(8)
    images = _images(2)
    waves = [np.random.default_rng(i).uniform(-0.5, 0.5, 9000).astype(np.float32) for i in (0, 1)]
    got = MapsEngine(net).pair_maps(images, waves)
    assert got.shape == (2, 3, 3)  # a stride-16 trunk: 48 px framed -> 3 x 3 (32 px -> 2 x 2)

    plain = np.stack([preprocess_test(i, 32) for i in images])
    v = ops.convert_to_numpy(net.encode_image(np.pad(plain, ((0, 0), (8, 8), (8, 8), (0, 0)))))
    contract = InputContract(INPUTS)
    a = ops.convert_to_numpy(net.encode_audio(batch([contract.spectrogram(w) for w in waves])))
    np.testing.assert_allclose(got, np.einsum("bhwd,bd->bhw", v, a), rtol=1e-5, atol=1e-6)

    loaded = load_network(save_network(net, tmp_path / "net.keras"))
    assert loaded.inputs["inference_border"] == 8
    np.testing.assert_allclose(MapsEngine(loaded).pair_maps(images, waves), got, atol=1e-6)
    result = lz.localize_pair(loaded, images[1], waves[1])  # drawn onto the image's own size
    assert result.heatmap.shape == images[1].shape[:2]

    if keras.backend.backend() == "torch":  # the Keras-free path of `avloc localize` frames too
        monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
        lz.load_model(checkpoint=tmp_path / "net.keras")
        torch_net = lz.load_cached_model(checkpoint=tmp_path / "net.keras")
        assert torch_net.inputs["inference_border"] == 8
        np.testing.assert_allclose(MapsEngine(torch_net).pair_maps(images, waves), got, atol=2e-6)


def test_a_recipe_records_its_border_in_the_network():
    framed = load_recipe(QUICKSTART, [*TINY_NET, "data.inference_border=8"])
    assert build_network(framed.model, framed.data).inputs["inference_border"] == 8
    plain = load_recipe(QUICKSTART, [*TINY_NET, "data.inference_border=0"])
    assert "inference_border" not in build_network(plain.model, plain.data).inputs
    with pytest.raises(RecipeError, match="data.inference_border"):
        load_recipe(QUICKSTART, [*TINY_NET, "data.inference_border=-2"])
