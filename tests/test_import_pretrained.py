"""Start points for training from PyTorch weights: an ImageNet ResNet-18 in torchvision's layout as
``model.visual.pretrained`` (a file, or a download.pytorch.org URL fetched once and checked
against the hash in its name), checked against the plain-PyTorch trunk of tests/references.py;
and an imported network as ``model.init``."""

from __future__ import annotations

import copy
import hashlib
import io
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import keras_outputs, trunk_output
from references import A_WIDTH, DIM, V_WIDTH, ResNet18, inputs, randomise

from avloc.config import recipe_from_dict
from avloc.errors import DataError, RecipeError
from avloc.models import build_network
from avloc.models.import_torch import import_checkpoint
from avloc.models.layers import kernel_hwio

# ------------------------------------------------------------------------------------------
# ImageNet weights: model.visual.pretrained


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """A torchvision-style resnet18 state_dict (with fc), as ``torch.save(model.state_dict())``."""
    model = randomise(ResNet18(3, width=V_WIDTH, classes=10), seed=4)
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def recipe_model(**model):
    return recipe_from_dict({"model": model}).model


@pytest.mark.parametrize("arch, last_stride", [("ezvsl", 2), ("lvs", 1)])
def test_pretrained_visual_trunk_matches_reference(arch, last_stride, torchvision_file):
    model, path = torchvision_file
    dim = DIM if arch == "ezvsl" else 8 * V_WIDTH
    config = recipe_model(
        arch=arch,
        embed_dim=dim,
        visual={"width": V_WIDTH, "last_stride": last_stride, "pretrained": str(path)},
        audio={"width": A_WIDTH if arch == "ezvsl" else V_WIDTH},
    )
    net = build_network(config)
    image, _ = inputs(seed=4)
    reference_trunk = copy.deepcopy(model).double().eval()
    if last_stride == 1:
        reference_trunk.layer4[0].conv1.stride = (1, 1)
        reference_trunk.layer4[0].downsample[0].stride = (1, 1)
    with torch.no_grad():
        want = reference_trunk(torch.from_numpy(image).double()).numpy()
    got = trunk_output(net, image)
    assert got.shape == want.shape
    assert np.abs(want).max() > 0.1
    assert np.abs(got - want).max() < 1e-4


def test_pretrained_must_fit_the_recipe(torchvision_file, tmp_path):
    _, path = torchvision_file
    with pytest.raises(RecipeError, match=r"model\.visual\.width: .* width-8 .* set model"):
        build_network(recipe_model(embed_dim=DIM, visual={"width": 4, "pretrained": str(path)}))
    with pytest.raises(RecipeError, match=r"model\.visual\.stem_pool"):
        build_network(
            recipe_model(visual={"width": V_WIDTH, "stem_pool": False, "pretrained": str(path)})
        )
    missing = tmp_path / "nowhere" / "resnet18-f37072fd.pth"
    with pytest.raises(RecipeError) as info:
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": str(missing)}))
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and "download.pytorch.org" in message


def test_pretrained_rejects_published_checkpoint(ezvsl_file):
    with pytest.raises(DataError, match="import-checkpoint"):
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": str(ezvsl_file)}))


def _hashed_url(path: Path) -> tuple[str, str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{digest}.pth"
    return f"https://download.pytorch.org/models/{name}", name


def _first_conv(net):
    return kernel_hwio(net.visual_encoder.get_layer("conv1"))


def test_pretrained_url_downloads_once_with_checksum(torchvision_file, tmp_path, monkeypatch):
    model, path = torchvision_file
    monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
    url, name = _hashed_url(path)
    calls = []

    def fake_urlopen(requested, timeout=None):
        calls.append(requested)
        return io.BytesIO(path.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    config = recipe_model(embed_dim=DIM, visual={"width": V_WIDTH, "pretrained": url})
    net = build_network(config)
    want = model.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(_first_conv(net), want)
    assert calls == [url] and (tmp_path / "cache" / name).is_file()
    build_network(config)  # cached: no second download
    assert calls == [url]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [name]


def test_pretrained_url_checksum_and_offline_errors(torchvision_file, tmp_path, monkeypatch):
    _, path = torchvision_file
    cache = tmp_path / "cache"
    monkeypatch.setenv("AVLOC_CACHE", str(cache))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(path.read_bytes()))
    bad = "https://download.pytorch.org/models/resnet18-deadbeef.pth"
    with pytest.raises(RecipeError, match="checksum deadbeef"):
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": bad}))
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing half-trusted kept

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    url, name = _hashed_url(path)
    with pytest.raises(RecipeError) as info:
        build_network(recipe_model(visual={"width": V_WIDTH, "pretrained": url}))
    message = str(info.value)
    assert "\n" not in message and str(cache / name) in message and "unreachable" in message
    # a file put where the message says is used without the network
    cache.mkdir(exist_ok=True)
    shutil.copy(path, cache / name)
    net = build_network(recipe_model(embed_dim=DIM, visual={"width": V_WIDTH, "pretrained": url}))
    assert np.abs(_first_conv(net)).max() > 0


# ------------------------------------------------------------------------------------------
# model.init: an imported network as a training start point


def test_model_init_starts_from_imported_network(ezvsl_file, tmp_path):
    out = tmp_path / "imported.keras"
    imported, _ = import_checkpoint(ezvsl_file, "ezvsl", out)
    config = recipe_model(
        embed_dim=DIM, init=str(out), visual={"width": V_WIDTH}, audio={"width": A_WIDTH}
    )
    net = build_network(config)
    image, audio = inputs(seed=5)
    for got, want in zip(
        keras_outputs(net, image, audio), keras_outputs(imported, image, audio), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(RecipeError, match=r"model\.init: .*shape"):
        build_network(recipe_model(embed_dim=DIM, init=str(out), visual={"width": 4}))
    with pytest.raises(RecipeError, match=r"model\.init: .*weights differ"):
        build_network(
            recipe_model(
                arch="lvs",
                embed_dim=64,
                init=str(out),
                visual={"width": V_WIDTH, "last_stride": 1},
                audio={"width": V_WIDTH},
            )
        )
    with pytest.raises(RecipeError, match=r"model\.init: .*no such checkpoint"):
        build_network(recipe_model(init=str(tmp_path / "absent.keras")))
