"""ImageNet-style weights for the visual trunk: recipe key ``model.visual.pretrained``.

ImageNet weights (:func:`apply_pretrained`, recipe key ``model.visual.pretrained``): a local
torchvision ``resnet18`` state_dict (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ...;
``fc.*`` is ignored) or its official URL :data:`IMAGENET_URL`, downloaded once into
:func:`cache_dir` and checked against the SHA-256 prefix in the file name.

A trunk written by ``avloc pretrain`` has a sidecar ``FILE.json`` (:func:`sidecar`) that records,
among others, whether the trunk had the stem max pool; a state_dict alone cannot say.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from avloc.errors import DataError, RecipeError
from avloc.models.torch_keys import assign_sources, infer_trunk, load_state_dict, trunk_sources
from avloc.utils.files import cache_dir, file_sha256

IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


def sidecar(path: Path) -> Path:
    """The JSON record beside a pretrained trunk file (``FILE.json``)."""
    return path.with_name(path.name + ".json")


def pretrained_stem_pool(path: Path) -> bool | None:
    """``stem_pool`` recorded beside a pretrained trunk file, None when nothing is recorded."""
    info_path = sidecar(Path(path))
    if not info_path.is_file():
        return None
    try:
        value = json.loads(info_path.read_text()).get("stem_pool")
    except (OSError, ValueError):
        return None
    return bool(value) if isinstance(value, bool) else None


def _hash_prefix(name: str) -> str | None:
    """torch hub's convention: ``name-<first hex digits of the SHA-256>.pth``."""
    m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", name)
    return m.group(1) if m else None


def fetch_url(url: str, where: str = "model.visual.pretrained") -> Path:
    """The cached file of ``url``, downloaded first if needed; SHA-256 prefix checked."""
    name = url.rsplit("/", 1)[-1]
    expected = _hash_prefix(name)
    if not expected:
        raise RecipeError(
            f"{where}: {url} has no SHA-256 prefix in its file name (name-<hash>.pth); "
            "download it yourself and give the local path"
        )
    target = cache_dir() / name
    if target.is_file():
        if not file_sha256(target).startswith(expected):
            raise RecipeError(
                f"{where}: cached {target} does not match its checksum {expected}; delete it "
                "to download again"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (https URL)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                shutil.copyfileobj(response, tmp)
                tmp_path = Path(tmp.name)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RecipeError(
            f"{where}: cannot download {url} ({reason}); fetch it on a connected machine and "
            f"put it at {target}, or set {where} to its local path"
        ) from None
    if not file_sha256(tmp_path).startswith(expected):
        tmp_path.unlink(missing_ok=True)
        raise RecipeError(f"{where}: download of {url} does not match its checksum {expected}")
    os.replace(tmp_path, target)
    return target


def resolve_pretrained(value: str, where: str = "model.visual.pretrained") -> Path:
    """A local path, or an http(s) URL fetched into :func:`cache_dir`."""
    if re.match(r"https?://", value):
        return fetch_url(value, where)
    path = Path(value).expanduser()
    if not path.is_file():
        raise RecipeError(
            f"{where}: no such file {path}; put torchvision's resnet18 ImageNet state_dict "
            f"there (resnet18-f37072fd.pth from {IMAGENET_URL}) or give that URL"
        )
    return path


def load_imagenet_trunk(trunk, pretrained: str, visual_config=None) -> tuple[list[str], Path]:
    """Load a torchvision ``resnet18`` state_dict into a visual trunk; ``fc.*`` is ignored.

    ``visual_config`` (a recipe's ``model.visual``) must describe the file's trunk: width and
    blocks per stage as in the file, and the stem max pool (torchvision always has it).
    """
    where = "model.visual.pretrained"
    path = resolve_pretrained(pretrained, where)
    if visual_config is not None:
        # A state_dict cannot say whether its trunk had the (weightless) stem max pool:
        # avloc pretrain records it beside the file; torchvision's resnet18 always has it.
        recorded = pretrained_stem_pool(path)
        expected = True if recorded is None else recorded
        if bool(visual_config.stem_pool) != expected:
            raise RecipeError(
                f"model.visual.stem_pool: {path} was trained with stem_pool = "
                f"{str(expected).lower()}; set it to {str(expected).lower()} to use {where}"
            )
    state = load_state_dict(path)
    if "conv1.weight" not in state and any(k.startswith("imgnet.") for k in state):
        raise DataError(
            f"{path}: holds a published audio-visual model (imgnet.* keys), not torchvision's "
            "resnet18; import it with avloc import-checkpoint"
        )
    width, blocks = infer_trunk(path, state, "")
    if visual_config is not None:
        if visual_config.width != width:
            raise RecipeError(
                f"model.visual.width: {path} is a width-{width} ResNet, the recipe says "
                f"{visual_config.width}; set model.visual.width = {width}"
            )
        if tuple(visual_config.blocks) != blocks:
            raise RecipeError(
                f"model.visual.blocks: {path} has blocks {list(blocks)}, the recipe says "
                f"{list(visual_config.blocks)}"
            )
    used, _ = assign_sources(path, state, trunk_sources(trunk, ""), (r"fc\.(weight|bias)",))
    return used, path


def apply_pretrained(net, model_config):
    """``model.visual.pretrained`` -> ImageNet weights in ``net``'s visual trunk; returns ``net``.

    A no-op when the recipe leaves it empty. Called by the architecture builders.
    """
    visual = model_config.visual
    if not visual.pretrained:
        return net
    if getattr(model_config, "init", ""):
        raise RecipeError(
            "model.visual.pretrained: model.init already sets every weight; leave pretrained "
            'empty ("")'
        )
    load_imagenet_trunk(net.visual_encoder, visual.pretrained, visual)
    return net
