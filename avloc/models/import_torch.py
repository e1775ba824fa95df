"""Weights from PyTorch: published audio-visual checkpoints and torchvision's ImageNet ResNet-18.

Reading is safe: ``torch.load(..., weights_only=True)`` never runs code stored in a file (only
``argparse.Namespace``, saved training arguments, is allowed besides tensors and plain data).
:func:`load_state_dict` accepts a bare state_dict or the usual wrappers (``{"model": sd, ...}``,
``{"state_dict": sd}``, ``{"model_state_dict": sd}``, nested) and strips the ``module.`` prefixes
that (Distributed)DataParallel adds.

Published checkpoints (:func:`import_checkpoint`, ``avloc import-checkpoint``):

=============  ==================================================================================
``--arch``     torch keys -> avloc network (``model.arch``)
=============  ==================================================================================
ezvsl          ``imgnet.*`` visual trunk, ``audnet.*`` audio trunk, ``img_proj.*`` (1x1 conv),
fnac           ``aud_proj.*`` (Linear) -> ``ezvsl``. FNAC and marginNCE are EZ-VSL code forks
marginnce      with the same keys (their dropouts hold no weights).
slavc          ``imgnet.*``, ``audnet.*`` and one projection pair ``img_proj{H}`` / ``aud_proj{H}``
               (``--head H``, default 1) -> ``ezvsl``; with ``--momentum`` the ``momentum_*``
               copies are read instead. **Ignored** (listed in the report): the other projection
               pair and the other encoder copy. SLAVC's own map averages the maps of its two
               heads; avloc's network has one head, so the imported map is head H's map.
lvs            ``imgnet.*`` (last stage at stride 1), ``audnet.*`` with the audio stem
               ``audnet.conv1_a`` (``audnet.conv1`` when there is no ``conv1_a``), no projections
               -> ``lvs``. **Ignored**: the stems the published ResNet holds for the other
               modalities (``imgnet.conv1_a``, ``imgnet.conv1_flow``, ``audnet.conv1``,
               ``audnet.conv1_flow``) and the unused classifiers ``imgnet.fc.*``, ``audnet.fc.*``.
=============  ==================================================================================

Widths, blocks per stage and the embedding size D are read from the tensor shapes, so full-size
(width 64, D 512) and smaller checkpoints both import. The network records the published input
setting (224 px, 16 kHz, 3 s clips) and no Uth calibration.

ImageNet weights (:func:`apply_pretrained`, recipe key ``model.visual.pretrained``): a local
torchvision ``resnet18`` state_dict (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ...;
``fc.*`` is ignored) or its official URL :data:`IMAGENET_URL`, downloaded once into
:func:`cache_dir` and checked against the SHA-256 prefix in the file name.

Training start points (:func:`apply_init`, recipe key ``model.init``): every weight of a saved
``.keras`` network (an imported one, or a run's ``model.keras``) is copied into the recipe's
network, which must have the same weights and shapes.

Layouts: convolutions ``(out, in, kh, kw)`` -> Keras ``(kh, kw, in, out)``; Linear ``(out, in)``
-> ``(in, out)``; batch norm ``weight, bias, running_mean, running_var`` -> ``gamma, beta,
moving_mean, moving_variance`` (both use epsilon 1e-5, see :mod:`avloc.models.resnet`; momentum
only matters in training). ``*.num_batches_tracked`` counters are ignored: Keras' batch norm has
no such counter.

Accounting is strict: every Keras weight must come from exactly one tensor of the right shape and
every tensor must be used or on the architecture's ignore list above. Anything else is a one-line
:class:`~avloc.errors.DataError` naming the file and the keys.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import DataError, RecipeError
from avloc.utils.files import cache_dir, file_sha256

ARCHS = ("ezvsl", "slavc", "fnac", "marginnce", "lvs")
IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
#: The setting the published models were trained and evaluated with.
PUBLISHED_INPUTS = {"image_size": 224, "sample_rate": 16000, "clip_seconds": 3.0}
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
MAX_LISTED = 4  # keys named per category in an error line


# --------------------------------------------------------------------------------------------
# reading


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch checkpoint safely and return its state_dict as float32/int NumPy arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    import argparse
    import pickle

    import torch

    try:
        # argparse.Namespace (training arguments saved next to the weights) is plain data
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"the Python object {found.group(1)}" if found else "Python objects"
        raise DataError(
            f"{path}: stores {what}, not only tensors; avloc reads checkpoints with "
            "torch.load(weights_only=True) and never runs code stored in a file"
        ) from None
    except Exception as exc:  # torch raises many types for foreign or truncated files
        raise DataError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__})") from None
    state = _unwrap(obj, path)
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = key
        while name.startswith("module."):
            name = name[len("module.") :]
        if name in out:
            raise DataError(f"{path}: key {name} appears twice (with and without 'module.')")
        if value.is_floating_point():
            value = value.detach().to(torch.float32)
        out[name] = value.detach().cpu().numpy()
    return out


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    for _ in range(4):  # wrappers nest at most a few levels
        if not isinstance(obj, dict):
            raise DataError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            odd = next((k for k, v in obj.items() if not isinstance(v, torch.Tensor)), None)
            keys = ", ".join(sorted(map(str, obj))[:MAX_LISTED]) or "none"
            raise DataError(
                f"{path}: no state_dict found: expected tensors or one of the entries "
                f"{'/'.join(WRAPPER_KEYS)}; entry {odd!r} is not a tensor (top-level keys: {keys})"
            )
        obj = inner
    raise DataError(f"{path}: state_dict wrapped too deeply")


# --------------------------------------------------------------------------------------------
# key mapping


@dataclass(frozen=True)
class Source:
    """Where one Keras weight comes from: a torch key and its layout."""

    key: str
    variable: Any  # keras.Variable
    kind: str  # "conv" Keras (kh, kw, in, out) | "conv_oihw" | "linear" (in, out) | "vector"

    def torch_shape(self) -> tuple[int, ...]:
        shape = tuple(int(d) for d in self.variable.shape)
        if self.kind == "conv":  # a Keras-layout kernel; "conv_oihw" already is torch's
            kh, kw, cin, cout = shape
            return (cout, cin, kh, kw)
        if self.kind == "linear":
            cin, cout = shape
            return (cout, cin)
        return shape

    def convert(self, tensor: np.ndarray) -> np.ndarray:
        """A torch-layout array -> the Keras variable's layout (float32)."""
        if self.kind == "conv":
            tensor = tensor.transpose(2, 3, 1, 0)
        elif self.kind == "linear":
            tensor = tensor.T
        return np.ascontiguousarray(tensor, dtype="float32")

    def to_torch(self, value: np.ndarray) -> np.ndarray:
        """The Keras variable's value -> torch's layout (float32): the inverse of ``convert``."""
        if self.kind == "conv":
            value = value.transpose(3, 2, 0, 1)
        elif self.kind == "linear":
            value = value.T
        return np.ascontiguousarray(value, dtype="float32")


BN_NAMES = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)


def layer_sources(layer, module: str) -> list[Source]:
    """The torch keys of one Keras layer whose torch module is called ``module``."""
    from keras import layers

    if isinstance(layer, layers.BatchNormalization):
        return [Source(f"{module}.{t}", getattr(layer, k), "vector") for t, k in BN_NAMES]
    if isinstance(layer, (layers.Conv2D, layers.Dense)):
        kind = "conv" if isinstance(layer, layers.Conv2D) else "linear"
        if getattr(layer, "kernel_layout", "hwio") == "oihw":
            kind = "conv_oihw"  # avloc's Conv2D on torch keeps the kernel in torch's layout
        out = [Source(f"{module}.weight", layer.kernel, kind)]
        if layer.use_bias:
            out.append(Source(f"{module}.bias", layer.bias, "vector"))
        return out
    raise TypeError(f"no torch layout known for Keras layer {layer.name} ({type(layer).__name__})")


def trunk_sources(trunk, prefix: str, renames: dict[str, str] | None = None) -> list[Source]:
    """A :func:`avloc.models.resnet.resnet` trunk under torch prefix ``prefix`` ("" = top level).

    Keras layer names are torchvision's with ``.`` written ``_`` (``layer2_0_downsample_1``);
    ``renames`` maps a Keras layer name to another torch module name (LVS' ``conv1_a``).
    """
    renames = renames or {}
    sources = []
    for layer in trunk.layers:
        if not layer.weights:
            continue
        module = renames.get(layer.name, layer.name.replace("_", "."))
        sources += layer_sources(layer, f"{prefix}.{module}" if prefix else module)
    return sources


@dataclass(frozen=True)
class ArchSpec:
    """How a published state_dict lays out avloc's network."""

    arch: str  # the name given on the command line
    avloc_arch: str  # the registered avloc architecture it becomes
    visual: str  # torch prefix of the visual trunk
    audio: str  # torch prefix of the audio trunk
    img_proj: str | None = None  # torch module of the 1x1-conv visual projection
    aud_proj: str | None = None  # torch module of the Linear audio projection
    audio_stem: str = "conv1"  # torch module of the audio trunk's first convolution
    last_stride: int = 2
    ignored: tuple[str, ...] = ()  # full-match patterns of keys with no place in avloc's network
    notes: tuple[str, ...] = ()  # said to the user after an import


def arch_spec(
    arch: str, *, head: int = 1, momentum: bool = False, state: dict | None = None
) -> ArchSpec:
    """The mapping for ``arch``; ``head`` and ``momentum`` choose SLAVC's branch."""
    if arch not in ARCHS:
        raise DataError(f"--arch {arch}: expected one of {', '.join(ARCHS)}")
    if arch != "slavc" and (head != 1 or momentum):
        raise DataError(f"--head/--momentum: only --arch slavc has several heads (got {arch})")
    if arch in ("ezvsl", "fnac", "marginnce"):
        return ArchSpec(arch, "ezvsl", "imgnet", "audnet", "img_proj", "aud_proj")
    if arch == "slavc":
        if head not in (1, 2):
            raise DataError(f"--head {head}: SLAVC has projection heads 1 and 2")
        other = 3 - head
        pre = "momentum_" if momentum else ""
        unused = "" if momentum else "momentum_"
        return ArchSpec(
            arch,
            "ezvsl",
            f"{pre}imgnet",
            f"{pre}audnet",
            f"{pre}img_proj{head}",
            f"{pre}aud_proj{head}",
            ignored=(
                rf"{pre}(img|aud)_proj{other}\.(weight|bias)",
                rf"{unused}(imgnet|audnet)\..+",
                rf"{unused}(img|aud)_proj[12]\.(weight|bias)",
            ),
            notes=(
                f"SLAVC head {head} of 2 ({'momentum' if momentum else 'main'} encoders): "
                "SLAVC's own map is the mean of both heads' maps",
            ),
        )
    # lvs
    stem = "conv1_a" if state is None or "audnet.conv1_a.weight" in state else "conv1"
    return ArchSpec(
        arch,
        "lvs",
        "imgnet",
        "audnet",
        audio_stem=stem,
        last_stride=1,
        ignored=(
            r"imgnet\.(conv1_a|conv1_flow)\.weight",
            r"audnet\.(conv1|conv1_flow)\.weight",
            r"(imgnet|audnet)\.fc\.(weight|bias)",
        ),
    )


def network_sources(net, spec: ArchSpec) -> list[Source]:
    sources = trunk_sources(net.visual_encoder, spec.visual)
    sources += trunk_sources(net.audio_encoder, spec.audio, {"conv1": spec.audio_stem})
    if net.projection:
        sources += layer_sources(net.visual_proj, spec.img_proj)
        sources += layer_sources(net.audio_proj, spec.aud_proj)
    return sources


@dataclass
class ImportReport:
    """What an import used and what it left out on purpose."""

    path: Path
    arch: str
    used: list[str]
    ignored: list[str]  # keys on the architecture's ignore list (num_batches_tracked excluded)
    config: dict[str, Any]
    notes: tuple[str, ...] = ()


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")


def assign_sources(
    path: Path,
    state: dict[str, np.ndarray],
    sources: list[Source],
    ignored: tuple[str, ...] = (),
    hint: str = "",
) -> tuple[list[str], list[str]]:
    """Check every key and shape, then assign; returns (used keys, ignored keys).

    Nothing is assigned unless everything fits. Errors are one line naming ``path`` and the keys.
    """
    wanted = {}
    for source in sources:
        if source.key in wanted:  # a bug in a mapping table, not a user error
            raise RuntimeError(f"torch key {source.key} mapped twice")
        wanted[source.key] = source
    missing = [k for k in wanted if k not in state]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {wanted[k].torch_shape()})"
        for k in wanted
        if k in state and tuple(state[k].shape) != wanted[k].torch_shape()
    ]
    leftover = [k for k in state if k not in wanted]
    skipped = [k for k in leftover if any(re.fullmatch(p, k) for p in ignored)]
    unexpected = [
        k
        for k in leftover
        if k not in skipped and not (k.endswith(".num_batches_tracked") and state[k].size == 1)
    ]
    problems = []
    if missing:
        problems.append(f"missing key {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected key {_listing(unexpected)}")
    if shapes:
        problems.append(f"wrong shape {_listing(shapes)}")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems) + (f" ({hint})" if hint else ""))
    for key, source in wanted.items():
        source.variable.assign(source.convert(state[key]))
    return list(wanted), skipped


# --------------------------------------------------------------------------------------------
# structure from shapes


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def infer_trunk(
    path: Path, state: dict[str, np.ndarray], prefix: str, stem: str = "conv1"
) -> tuple[int, tuple[int, ...]]:
    """(width, blocks per stage) of a torchvision-style ResNet trunk under ``prefix``."""
    key = _join(prefix, f"{stem}.weight")
    if key not in state:
        raise DataError(f"{path}: missing key {key} (the first convolution of a ResNet trunk)")
    if state[key].ndim != 4:
        raise DataError(f"{path}: wrong shape {key} {tuple(state[key].shape)} (expected 4-D)")
    width = int(state[key].shape[0])
    blocks = []
    while True:
        pattern = re.compile(re.escape(_join(prefix, f"layer{len(blocks) + 1}.")) + r"(\d+)\.")
        indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
        if not indices:
            break
        blocks.append(max(indices) + 1)
    if not blocks:
        raise DataError(f"{path}: missing key {_join(prefix, 'layer1.0.conv1.weight')}")
    return width, tuple(blocks)


def _embed_dim(path: Path, state: dict[str, np.ndarray], module: str) -> int:
    key = f"{module}.weight"
    if key not in state:
        raise DataError(f"{path}: missing key {key} (the visual projection)")
    return int(state[key].shape[0])


# --------------------------------------------------------------------------------------------
# published checkpoints


def import_checkpoint(
    path: str | Path,
    arch: str,
    out: str | Path | None = None,
    *,
    head: int = 1,
    momentum: bool = False,
):
    """Build avloc's network from a published checkpoint; save it to ``out`` when given.

    Returns ``(net, report)``. The network's ``inputs`` are :data:`PUBLISHED_INPUTS` and it is not
    calibrated (run ``avloc eval --calibrate``).
    """
    from avloc.config import AudioEncoderConfig, DataConfig, ModelConfig, VisualConfig
    from avloc.models.avnet import build_network, trunk_channels

    path = Path(path)
    arch_spec(arch, head=head, momentum=momentum)  # a wrong option fails before reading
    state = load_state_dict(path)
    spec = arch_spec(arch, head=head, momentum=momentum, state=state)
    v_width, v_blocks = infer_trunk(path, state, spec.visual)
    a_width, a_blocks = infer_trunk(path, state, spec.audio, spec.audio_stem)
    if spec.img_proj:
        embed_dim = _embed_dim(path, state, spec.img_proj)
    else:
        embed_dim = trunk_channels(v_width, v_blocks)
        audio_channels = trunk_channels(a_width, a_blocks)
        if audio_channels != embed_dim:
            raise DataError(
                f"{path}: --arch {arch} has no projections, but {spec.visual} outputs "
                f"{embed_dim} channels and {spec.audio} {audio_channels}"
            )
    model_config = ModelConfig(
        arch=spec.avloc_arch,
        embed_dim=embed_dim,
        visual=VisualConfig(width=v_width, blocks=v_blocks, last_stride=spec.last_stride),
        audio=AudioEncoderConfig(width=a_width, blocks=a_blocks),
    )
    data_config = DataConfig(
        image_size=PUBLISHED_INPUTS["image_size"],
        sample_rate=PUBLISHED_INPUTS["sample_rate"],
        clip_seconds=PUBLISHED_INPUTS["clip_seconds"],
    )
    net = build_network(model_config, data_config)
    hint = ""
    if not any(k.startswith(f"{spec.visual}.") for k in state):
        hint = f"is this an --arch {arch} checkpoint?"
    used, ignored = assign_sources(path, state, network_sources(net, spec), spec.ignored, hint)
    if out is not None:
        from avloc.models.io import save_network

        save_network(net, out)
    config = {
        "arch": spec.avloc_arch,
        "embed_dim": embed_dim,
        "visual": {"width": v_width, "blocks": list(v_blocks), "last_stride": spec.last_stride},
        "audio": {"width": a_width, "blocks": list(a_blocks)},
    }
    return net, ImportReport(path, arch, used, ignored, config, spec.notes)


# --------------------------------------------------------------------------------------------
# ImageNet weights for the visual trunk (model.visual.pretrained)


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
        from avloc.jobs.pretrain import pretrained_stem_pool

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


# --------------------------------------------------------------------------------------------
# starting training from a saved network (model.init)


def named_weights(net) -> list[tuple[str, Any]]:
    """``(component/layer/weight, variable)`` for every weight of an AudioVisualNet."""
    named = [(f"visual_encoder/{v.path}", v) for v in net.visual_encoder.weights]
    named += [(f"audio_encoder/{v.path}", v) for v in net.audio_encoder.weights]
    if net.projection:
        named += [(v.path, v) for v in net.visual_proj.weights + net.audio_proj.weights]
    return named


def apply_init(net, model_config):
    """``model.init`` -> copy every weight of a saved ``.keras`` network into ``net``.

    The file (``avloc import-checkpoint`` output, or a run's ``model.keras``) must hold the
    network the recipe describes: the same weights with the same shapes. Returns ``net``.
    """
    init = getattr(model_config, "init", "")
    if not init:
        return net
    from avloc.models.io import load_network

    try:
        source = load_network(init)
    except DataError as exc:
        raise RecipeError(f"model.init: {exc}") from None
    ours, theirs = named_weights(net), named_weights(source)
    described = (
        f"{init} has embed_dim {source.embed_dim}, projection {source.projection}, "
        f"visual {source.visual_config}, audio {source.audio_config}"
    )
    if [n for n, _ in ours] != [n for n, _ in theirs]:
        extra = sorted({n for n, _ in theirs} ^ {n for n, _ in ours})
        raise RecipeError(
            f"model.init: does not fit the recipe's network (weights differ: "
            f"{_listing(extra)}); {described}"
        )
    for (name, mine), (_, saved) in zip(ours, theirs, strict=True):
        if tuple(mine.shape) != tuple(saved.shape):
            raise RecipeError(
                f"model.init: {name} has shape {tuple(saved.shape)}, the recipe's network "
                f"{tuple(mine.shape)}; {described}"
            )
    for (_, mine), (_, saved) in zip(ours, theirs, strict=True):
        mine.assign(saved.numpy())
    return net
