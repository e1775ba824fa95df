"""``configure(source)``: the process's kernels, chosen once, explicitly, before a network is built.

Nothing in avloc sets process-wide state when it is imported. Each job (``avloc train``,
``pretrain``, the network loader behind ``eval``, ``localize``, ``serve`` and ``reproduce``,
``import-checkpoint``) calls :func:`configure` with what it is about to build, before it builds
it; ``avloc.jobs.train.train()`` called from Python makes the same call as ``avloc train``, so
both run the same kernels. ``source`` is a recipe, a ``[model]`` config, a network, a network
file's config dict, or nothing (widths given with ``widths=``, or none known).

What it sets (:class:`RuntimeSettings` reports it; ``meta.json`` records it):

- **oneDNN's instruction-set cap** (``ONEDNN_MAX_CPU_ISA``, read by oneDNN once, at its first
  use): AVX2 when the narrowest first-stage width is below 16, every instruction set otherwise
  (:mod:`avloc.runtime.cpu_kernels`; only the first call with widths decides; an exported value
  is kept).
- **torch's oneDNN switch** (``torch.backends.mkldnn.enabled``, on the torch backend): on while
  every network configured in the process is at least as wide as the cap computes correctly
  (8 under AVX2, 16 uncapped), off for good once a narrower one is (the evidence is in
  :mod:`avloc.runtime.backend`).
- **TensorFlow's oneDNN switch** (``TF_ENABLE_ONEDNN_OPTS``, read when TensorFlow is imported):
  before the import, 1 when every width is one oneDNN computes correctly and 0 otherwise, 0 when
  no width is known yet; an exported value is kept. After the import it cannot change: the
  switch in force is checked, and a network too narrow for it is refused in one line (export
  ``TF_ENABLE_ONEDNN_OPTS=0`` before TensorFlow starts, or call :func:`configure` first).
- **cuDNN's algorithm search** (``gpu_autotune=True``, torch with CUDA: training feeds fixed
  shapes); GPU runs are then not bit-repeatable (CPU runs are).
- **TensorFlow's op determinism** (``repeatable=True``, what training asks for, on TensorFlow
  without a GPU): without it two identical CPU runs differ in the last bit of a few weights
  (measured: 2 of 120 variables of a tiny SSL-SaN run, by 2e-10), so a resumed run could not end
  bit for bit as an uninterrupted one; with it they are equal (its cost is not benchmarked).
  It imports TensorFlow (after its oneDNN switch is set). On a GPU it is left off, as on torch:
  some of TensorFlow's GPU kernels have no deterministic variant.

:func:`check_width` is what building a trunk asks (it changes nothing): whether the kernels in
force compute a layer of that width correctly; a network built without a :func:`configure` that
covers it is refused in one line naming the call.

Importing this module imports no framework (the Keras-free ``avloc localize`` path uses it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avloc.errors import AvlocError
from avloc.runtime.cpu_kernels import (
    CAP_VARIABLE,
    MIN_WIDTH_AVX2,
    MIN_WIDTH_AVX512,
    NARROW_CAP,
    TF_SWITCH,
    cap_in_force,
    capped_below_avx512,
    choose_isa_for,
    onednn_min_width,
)

#: A trunk's first-stage width when a config does not say (:func:`avloc.models.resnet.resnet`).
DEFAULT_WIDTH = 64
#: The narrowest width configured in this process so far (None: none yet).
_narrowest: int | None = None
#: Whether the user exported TensorFlow's switch (decided at the first configure).
_tf_switch_from_user: bool | None = None


@dataclass(frozen=True)
class RuntimeSettings:
    """The kernels in force after :func:`configure` (what ``meta.json`` records)."""

    backend: str
    narrowest_width: int | None
    onednn_cap: str
    torch_onednn: bool | None  # None: not the torch backend (or torch not started yet)
    tensorflow_onednn: bool | None  # None: not the TensorFlow backend
    gpu_autotune: bool
    tensorflow_deterministic: bool | None = None  # None: not TensorFlow, or not asked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keras_backend_name() -> str:
    """The backend Keras loads (or has loaded), read without importing it: ``KERAS_BACKEND``,
    else ``~/.keras/keras.json`` (``KERAS_HOME``), else Keras' default, TensorFlow."""
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except AttributeError:  # keras is being imported right now
            pass
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return str(json.loads(config.read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def widths_of(source: Any) -> list[int]:
    """First-stage widths of every trunk ``source`` describes: a recipe (its ``model``), a
    ``[model]`` config, a network (``AudioVisualNet``), a network file's config dict (``visual``
    / ``audio`` entries with ``width``), an int, or None (no widths)."""
    if source is None:
        return []
    if isinstance(source, int):
        return [source]
    model = getattr(source, "model", source)  # a Recipe -> its ModelConfig
    found = []
    for part in ("visual", "audio"):
        if isinstance(model, dict):
            entry = model.get(part, model.get(f"{part}_config"))
        else:
            entry = getattr(model, f"{part}_config", getattr(model, part, None))
        if isinstance(entry, dict):
            width = entry.get("width", DEFAULT_WIDTH)
        else:
            width = getattr(entry, "width", None)
        if width is not None:
            found.append(int(width))
    return found


def tensorflow_onednn_in_force() -> bool:
    """Whether TensorFlow runs (or, imported now, would run) oneDNN's kernels: its switch is on
    unless set to 0 / false (on by default on x86-64 Linux)."""
    return os.environ.get(TF_SWITCH, "1").strip().lower() not in ("0", "false")


def configure(
    source: Any = None,
    *,
    widths: Iterable[int] = (),
    gpu_autotune: bool = False,
    repeatable: bool = False,
) -> RuntimeSettings:
    """Choose this process's kernels for the networks ``source`` (and ``widths``) describe,
    before they are built; callable any number of times (the narrowest width seen decides).
    ``repeatable``: bit-repeatable CPU kernels on TensorFlow too (training; once on, on for the
    process). Raises a one-line :class:`AvlocError` when TensorFlow already runs kernels that
    compute a width given here wrong. Returns the settings in force."""
    global _narrowest, _tf_switch_from_user
    given = [*widths_of(source), *(int(w) for w in widths)]
    if _tf_switch_from_user is None:
        _tf_switch_from_user = TF_SWITCH in os.environ
    if given:
        _narrowest = min(given) if _narrowest is None else min(_narrowest, *given)
    backend = keras_backend_name()
    if given and backend in ("torch", "tensorflow"):  # JAX's XLA kernels need no cap
        choose_isa_for(min(given))  # oneDNN's cap: only the first call with widths decides
    torch_onednn = _configure_torch(gpu_autotune) if backend == "torch" else None
    tensorflow_onednn = _configure_tensorflow() if backend == "tensorflow" else None
    deterministic = _tensorflow_determinism() if backend == "tensorflow" and repeatable else None
    return RuntimeSettings(
        backend=backend,
        narrowest_width=_narrowest,
        onednn_cap=cap_in_force(),
        torch_onednn=torch_onednn,
        tensorflow_onednn=tensorflow_onednn,
        gpu_autotune=bool(gpu_autotune and backend == "torch" and _cuda()),
        tensorflow_deterministic=deterministic,
    )


def _configure_torch(gpu_autotune: bool) -> bool | None:
    if _narrowest is None and not gpu_autotune and "torch" not in sys.modules:
        return None  # nothing to set, and no reason to start torch (``avloc prepare``)
    import torch

    if _narrowest is not None:
        torch.backends.mkldnn.enabled = _narrowest >= onednn_min_width()
    if gpu_autotune and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    return bool(torch.backends.mkldnn.enabled)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _tensorflow_determinism() -> bool:
    """TensorFlow's op determinism on, unless it sees a GPU; whether it is on."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    tf.config.experimental.enable_op_determinism()
    return True


def _configure_tensorflow() -> bool:
    safe = _narrowest is None or _narrowest >= onednn_min_width()
    if "tensorflow" not in sys.modules:
        if not _tf_switch_from_user:
            os.environ[TF_SWITCH] = "1" if safe and _narrowest is not None else "0"
        return tensorflow_onednn_in_force()
    on = tensorflow_onednn_in_force()
    if on and not safe:
        raise AvlocError(
            f"TensorFlow was imported with oneDNN's kernels on ({TF_SWITCH} unset or 1), which "
            f"compute layers narrower than {onednn_min_width()} channels wrong (this network's "
            f"narrowest is {_narrowest}); export {TF_SWITCH}=0, or call "
            "avloc.runtime.configure(...) before importing keras"
        )
    return on


def child_environment(
    environ: dict[str, str], backend: str, width: int, exported: Iterable[str] = ()
) -> dict[str, str]:
    """The kernel variables a fresh process of ``backend`` whose narrowest network is ``width``
    gets from :func:`configure` before any framework starts, applied to a copy of ``environ``
    (for starting children that run the same kernels, e.g. benchmarks). Variables named in
    ``exported`` are the user's and kept as they are."""
    env = dict(environ)
    if CAP_VARIABLE not in exported:
        if backend in ("torch", "tensorflow") and width < MIN_WIDTH_AVX512:
            env[CAP_VARIABLE] = NARROW_CAP
        else:
            env.pop(CAP_VARIABLE, None)
    if backend == "tensorflow" and TF_SWITCH not in exported:
        capped = capped_below_avx512(env.get(CAP_VARIABLE, "DEFAULT"))
        env[TF_SWITCH] = "1" if width >= (MIN_WIDTH_AVX2 if capped else MIN_WIDTH_AVX512) else "0"
    return env


def check_width(width: int) -> None:
    """Refuse, in one line, to build a trunk of ``width`` under kernels that compute it wrong:
    :func:`configure` was not called for it. Changes nothing."""
    backend = keras_backend_name()
    if backend == "torch":
        import torch

        if torch.backends.mkldnn.enabled and width < onednn_min_width():
            raise AvlocError(
                f"a trunk of width {width} under oneDNN's kernels (cap {cap_in_force()}) computes "
                f"wrong results; call avloc.runtime.configure(widths=[{width}]) before building it"
            )
    elif backend == "tensorflow" and "tensorflow" in sys.modules:
        if tensorflow_onednn_in_force() and width < onednn_min_width():
            raise AvlocError(
                f"a trunk of width {width} under TensorFlow's oneDNN kernels computes wrong "
                f"results; export {TF_SWITCH}=0 before TensorFlow starts, or call "
                f"avloc.runtime.configure(widths=[{width}]) before importing keras"
            )
