"""PyTorch state_dicts <-> avloc's Keras weights: reading files and mapping keys.

Reading is safe: ``torch.load(..., weights_only=True)`` never runs code stored in a file (only
``argparse.Namespace``, saved training arguments, is allowed besides tensors and plain data).
:func:`load_state_dict` accepts a bare state_dict or the usual wrappers (``{"model": sd, ...}``,
``{"state_dict": sd}``, ``{"model_state_dict": sd}``, nested) and strips the ``module.`` prefixes
that (Distributed)DataParallel adds. Sizes are checked before anything is converted
(:mod:`avloc.models.file_limits`): a zip bomb, or a tensor declaring more elements than its
storage holds (a zero stride), is refused in one line.

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

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import DataError
from avloc.models.file_limits import check_archive, check_tensors

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
MAX_LISTED = 4  # keys named per category in an error line


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch checkpoint safely and return its state_dict as float32/int NumPy arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    import argparse
    import pickle
    import warnings

    import torch

    if zipfile.is_zipfile(path):  # torch reads compressed members too: no zip bombs
        check_archive(path, "PyTorch checkpoint")
    try:
        # argparse.Namespace (training arguments saved next to the weights) is plain data
        # torch's own warnings (e.g. about a pickle protocol) would precede the one line
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save: a zip, or legacy pickle
            raise DataError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a "
                            "pickle)") from None  # fmt: skip
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"the Python object {found.group(1)}" if found else "Python objects"
        raise DataError(
            f"{path}: stores {what}, not only tensors; avloc reads checkpoints with "
            "torch.load(weights_only=True) and never runs code stored in a file"
        ) from None
    except Exception as exc:  # torch raises many types for foreign or truncated files
        lines = str(exc).strip().splitlines()  # e.g. a storage smaller than a tensor's extent
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise DataError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    state = _unwrap(obj, path)
    check_tensors(path, state)  # every declared element stored: nothing huge to convert
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


@dataclass
class ImportReport:
    """What an import used and what it left out on purpose."""

    path: Path
    arch: str
    used: list[str]
    ignored: list[str]  # keys on the architecture's ignore list (num_batches_tracked excluded)
    config: dict[str, Any]
    notes: tuple[str, ...] = ()


def key_listing(keys: list[str]) -> str:
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
        problems.append(f"missing key {key_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected key {key_listing(unexpected)}")
    if shapes:
        problems.append(f"wrong shape {key_listing(shapes)}")
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
