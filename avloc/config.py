"""Recipes: TOML files -> frozen, typed config objects.

A recipe has the sections ``[data]``, ``[model]`` (with ``[model.visual]``, ``[model.audio]``),
``[loss.<term>]`` (one table per registered loss term, see :mod:`avloc.losses`), ``[train]``,
``[distribute]`` (data-parallel training, see :mod:`avloc.runtime.distribute`) and ``[eval]``.
Unknown keys and wrong types (``typing.Literal`` where a value is one of a set) are rejected at
load with a one-line :class:`~avloc.errors.RecipeError` that names the TOML path
(``train.batch_size: expected int``), and numbers outside their ranges (:data:`RANGES`; the
loss terms' temperatures and weights: :data:`LOSS_RANGES`) the same way. This module only parses
and checks values: checks that need a stage (the loss terms' signatures, the architecture, the
Uth statistic) run at job start, in :mod:`avloc.recipe_checks`, still before any output.

Overrides use dotted paths: ``load_recipe(path, ["train.batch_size=8"])``; the value is parsed
as a TOML value (``8``, ``1e-4``, ``true``, ``"text"``, ``[2, 2]``), falling back to a plain
string. Relative data paths are kept as written and resolved against the working directory.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

from avloc.errors import RecipeError
from avloc.registry import check_value

#: What ``eval.calibration_audio`` may name (see :mod:`avloc.maps.calibration`).
CalibrationAudio = Literal["silence", "noise", "other"]
CALIBRATION_AUDIO: tuple[str, ...] = typing.get_args(CalibrationAudio)


@dataclass(frozen=True)
class DataConfig:
    """Where the shards are and how samples become model inputs (docs/method.md)."""

    train: str = ""  # shard directory (or a single .h5 file) for training
    test: str = ""  # shard directory for evaluation
    image_size: int = 224  # model input side, pixels (docs/method.md)
    train_resize: int = 246  # shorter side before the random crop (docs/method.md)
    sample_rate: int = 16000  # Hz (docs/method.md)
    clip_seconds: float = 3.0  # seconds of audio per sample (docs/method.md)
    # pixels of mean colour framed around every image after its test-time resize, wherever the
    # network makes maps (calibration, eval, localize, video); recorded in the network as
    # inputs["inference_border"]. Half the trunk's stride puts the map's corner cells where
    # aligned-corners upsampling draws them (docs/method.md, "Where the map is drawn")
    inference_border: int = 0
    workers: int = 2  # loader workers (threads unless use_multiprocessing)
    use_multiprocessing: bool = False
    max_queue_size: int = 8
    limit: int = 0  # use only the first N training samples (0 = all): a small-run switch
    # training's noise negatives: white (the paper's), pink or brown
    # (avloc.inputs.noise.NOISE_COLORS)
    noise_color: Literal["white", "pink", "brown"] = "white"
    # true: the loader only reads rows (uint8 frames, int16 PCM) and draws the crops and noise
    # seeds; the training step resizes, crops, flips and normalises the images, makes the noise
    # and both spectrograms (avloc.inputs.training). The same inputs but for rare
    # one-level pixel differences, and other noise draws. "auto": true when training on a GPU,
    # false on a CPU, where it measured 0.96x end to end (benchmarks/RESULTS.md, "Loader")
    preprocess_on_device: bool | Literal["auto"] = "auto"
    # the training (and test) audio front end, recorded in the network: "log_psd", avloc's log
    # power spectrogram (EZ-VSL's), or "mel_db", SSL-TIE's 257-band mel spectrogram in dB
    # (avloc.inputs.frontends)
    audio_frontend: Literal["log_psd", "mel_db"] = "log_psd"
    # training image augmentation: "crop_flip" (resize to train_resize, random crop, flip; EZ-VSL)
    # or "moco_v2" (SSL-TIE's: random resized crop, colour jitter, grayscale, blur, flip;
    # avloc.inputs.moco)
    image_augment: Literal["crop_flip", "moco_v2"] = "crop_flip"
    # SpecAugment on the training audio (SSL-TIE: 0.8): the probability that a clip's spectrogram
    # gets one time and one frequency mask, at most spec_time_mask frames and spec_freq_mask bins
    # wide (avloc.inputs.specaugment)
    spec_augment: float = 0.0
    spec_time_mask: int = 180
    spec_freq_mask: int = 35


@dataclass(frozen=True)
class VisualConfig:
    """ResNet-18 visual encoder (docs/method.md)."""

    width: int = 64  # channels of the first stage; stages use width * (1, 2, 4, 8)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # basic blocks per stage
    last_stride: int = 2  # 2 -> 7x7 maps at 224 (EZ-VSL family); 1 -> 14x14 (LVS family)
    stem_pool: bool = True  # the 3x3/2 max pool after the stem
    pretrained: str = ""  # path to a torchvision resnet18 state_dict ("" = random init)


@dataclass(frozen=True)
class AudioEncoderConfig:
    """ResNet-18 audio encoder on the 1-channel log spectrogram, from scratch (docs/method.md)."""

    width: int = 64
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_pool: bool = True


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "ezvsl"  # registered architecture name (avloc.models): "ezvsl" or "lvs"
    embed_dim: int = 512  # D, the shared embedding size
    visual_dropout: float = 0.0  # dropout on the visual trunk's map, training only (FNAC: 0.9)
    init: str = ""  # a .keras network whose weights start training (avloc import-checkpoint)
    visual: VisualConfig = field(default_factory=VisualConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128  # global batch
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-4
    # "constant", or "cosine": decay from learning_rate to 0 over the run's optimizer steps
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0
    # "decoupled": Keras' AdamW-style decay of the weights; "l2": wd * w added to the gradients
    # before Adam's moments, as torch.optim.Adam(weight_decay=...) does (FNAC)
    weight_decay_mode: Literal["decoupled", "l2"] = "decoupled"
    steps_per_epoch: int = 0  # 0 = one pass over the (limited) training set
    backup_every_steps: int = 20  # resumable backup cadence, in optimizer steps
    # torch: the step's logs (loss and terms) are copied to the host every this many steps
    # (avloc.runtime.torch_step); each copy waits for the device. Epoch rows are always exact.
    log_every_steps: int = 10
    # compile the training step: "auto" = XLA on JAX (always) and on TensorFlow with a GPU, off
    # on torch (torch.compile takes minutes) and on TensorFlow on a CPU (avloc.runtime.backend)
    jit_compile: bool | Literal["auto"] = "auto"
    # torch: record the second training step as a graph of aten operations and replay it for
    # every later batch, without Keras' per-layer host work (avloc.runtime.step_graph); the
    # replay equals the eager step bit for bit. Single process, step not jit-compiled. Off by
    # default: replayed op by op from Python it is no faster than Keras' own step on a CPU
    # (benchmarks/RESULTS.md); it is what a compiled or CUDA-graph replay will start from.
    step_graph: bool = False
    # "mixed_bfloat16": layers compute in bfloat16, weights, optimizer and losses stay float32
    # (Keras' mixed policy; for GPUs with bf16 units). The network keeps the policy it was
    # trained with when saved.
    precision: Literal["float32", "mixed_bfloat16"] = "float32"
    tensorboard: bool = True


@dataclass(frozen=True)
class DistributeConfig:
    """Data-parallel training (:mod:`avloc.runtime.distribute`); ``train.batch_size`` is the
    global batch.

    Several machines need no recipe field: the launcher's environment says how many there are
    (torchrun's variables, ``TF_CONFIG``, or Keras' ``KERAS_DISTRIBUTION_*`` for JAX).
    """

    devices: int = 1  # devices per machine; the global batch is split evenly over all of them
    # "global": contrastive negatives from every device (embeddings all-gathered, as one device
    # would see the whole batch); "local": each device contrasts its own rows only
    negatives: Literal["global", "local"] = "global"


@dataclass(frozen=True)
class EvalConfig:
    """Label-free Uth calibration at the end of training (avloc.maps.calibration)."""

    uth_statistic: str = "q3"  # statistic of the calibration maps' maxima that sets Uth
    calibration_samples: int = 256  # training images used for label-free Uth calibration
    # audio whose map maxima are pooled: "silence", "noise", "other" (another training clip)
    calibration_audio: tuple[CalibrationAudio, ...] = ("silence", "noise")
    batch_size: int = 32


@dataclass(frozen=True)
class Recipe:
    name: str = "unnamed"
    description: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict[str, dict[str, Any]] = field(default_factory=dict)  # term name -> kwargs
    train: TrainConfig = field(default_factory=TrainConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


#: Keys that were renamed: old dotted path -> new key in the same table. Recipes saved in run
#: folders before the rename still load.
RENAMED_KEYS = {"data.spectrogram_on_device": "preprocess_on_device"}


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'recipe'}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if path in RENAMED_KEYS and RENAMED_KEYS[path] not in data:
            key = RENAMED_KEYS[path]
        if key not in names:
            allowed = ", ".join(sorted(names))
            raise RecipeError(f"{path}: unknown key (allowed: {allowed})")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = from_dict(annotation, value, path)
        else:
            kwargs[key] = check_value(value, annotation, path)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.batch_size=8"`` -> (["train", "batch_size"], 8)."""
    if "=" not in text:
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. train.batch_size=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {text}: invalid key {key!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted-path overrides into a nested dict (creating tables as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {text}: {'.'.join(path[: i + 1])} is not a table")
            node = child
        node[path[-1]] = value
    return raw


#: Sane ranges of the recipe's numbers: dotted path -> (test, what it must be). Checked at load,
#: so a nonsensical value never creates a run directory. The same ranges bound what a network
#: file or an imported checkpoint may declare (:mod:`avloc.models.network_checks`): upper bounds
#: keep a crafted file from making avloc allocate without limit.
RANGES: dict[str, tuple[Any, str]] = {
    "seed": (lambda v: v >= 0, "at least 0"),
    "data.image_size": (lambda v: 16 <= v <= 2048, "between 16 and 2048 (pixels)"),
    "data.train_resize": (lambda v: 16 <= v <= 4096, "between 16 and 4096 (pixels)"),
    "data.inference_border": (lambda v: 0 <= v <= 256, "between 0 and 256 (pixels)"),
    "data.sample_rate": (lambda v: 1000 <= v <= 192000, "between 1000 and 192000 (Hz)"),
    "data.clip_seconds": (lambda v: 0.05 <= v <= 600, "between 0.05 and 600 (seconds)"),
    "data.workers": (lambda v: v >= 0, "at least 0"),
    "data.max_queue_size": (lambda v: v >= 1, "at least 1"),
    "data.limit": (lambda v: v >= 0, "at least 0 (0 = all samples)"),
    "data.spec_augment": (lambda v: 0.0 <= v <= 1.0, "between 0 and 1 (a probability)"),
    "data.spec_time_mask": (lambda v: v >= 0, "at least 0 (frames)"),
    "data.spec_freq_mask": (lambda v: v >= 0, "at least 0 (frequency bins)"),
    "model.embed_dim": (lambda v: 1 <= v <= 65536, "between 1 and 65536"),
    "model.visual.width": (lambda v: 1 <= v <= 4096, "between 1 and 4096"),
    "model.visual.blocks": (lambda v: len(v) >= 1 and all(1 <= b <= 64 for b in v), "1-64 each"),
    "model.visual.last_stride": (lambda v: v in (1, 2), "1 or 2"),
    "model.audio.width": (lambda v: 1 <= v <= 4096, "between 1 and 4096"),
    "model.audio.blocks": (lambda v: len(v) >= 1 and all(1 <= b <= 64 for b in v), "1-64 each"),
    "train.epochs": (lambda v: v >= 1, "at least 1"),
    "train.batch_size": (lambda v: v >= 1, "at least 1"),
    "train.learning_rate": (lambda v: v > 0, "above 0"),
    "train.weight_decay": (lambda v: v >= 0, "at least 0"),
    "train.steps_per_epoch": (lambda v: v >= 0, "at least 0 (0 = one pass over the data)"),
    "train.backup_every_steps": (lambda v: v >= 1, "at least 1"),
    "train.log_every_steps": (lambda v: v >= 1, "at least 1"),
    "eval.calibration_samples": (lambda v: v >= 1, "at least 1"),
    "eval.batch_size": (lambda v: v >= 1, "at least 1"),
}


#: Sane ranges of the loss terms' arguments, by argument name, in every ``[loss.<term>]`` table
#: that sets one (the terms' signatures: :mod:`avloc.losses`). A temperature divides
#: similarities (0 divides by zero, a negative one turns the contrast around); a weight scales a
#: term (a negative one maximises it). Checked at load, with :data:`RANGES`.
LOSS_RANGES: dict[str, tuple[Any, str]] = {
    "weight": (lambda v: v >= 0, "at least 0"),
    "tau": (lambda v: v > 0, "above 0 (a temperature)"),
    "threshold_tau": (lambda v: v > 0, "above 0 (a temperature)"),
}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_value_ranges(config: Any, ranges: dict[str, tuple[Any, str]]) -> None:
    """RecipeError naming the first value of ``config`` outside ``ranges`` (dotted path ->
    (test, what it must be)), in the ranges' order. A path runs through attributes and dicts."""
    for path, (ok, words) in ranges.items():
        value: Any = config
        for part in path.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        if not ok(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise RecipeError(f"{path}: must be {words}, got {shown}")


def loss_ranges(loss: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """:data:`LOSS_RANGES` as dotted paths of the numbers the ``[loss.<term>]`` tables set
    (other types are left to the terms' type check, :mod:`avloc.recipe_checks`)."""
    return {
        f"loss.{term}.{key}": rule
        for term, table in loss.items()
        if isinstance(table, dict)
        for key, rule in LOSS_RANGES.items()
        if is_number(table.get(key))
    }


def check_ranges(recipe: Recipe) -> None:
    """RecipeError naming the first value outside :data:`RANGES` or :data:`LOSS_RANGES`."""
    check_value_ranges(recipe, RANGES)
    check_value_ranges(recipe, loss_ranges(recipe.loss))
    if recipe.data.train_resize < recipe.data.image_size:
        raise RecipeError(
            f"data.train_resize: must be at least data.image_size ({recipe.data.image_size}), "
            f"got {recipe.data.train_resize}"
        )


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    """A typed, type-checked recipe (stage-level checks: :mod:`avloc.recipe_checks`)."""
    recipe = from_dict(Recipe, raw)
    check_ranges(recipe)
    validate_calibration_audio(recipe.eval.calibration_audio, "eval.calibration_audio")
    validate_distribute(recipe)
    return recipe


def validate_distribute(recipe: Recipe) -> None:
    """RecipeError unless ``[distribute]`` is usable with this recipe's global batch."""
    devices = recipe.distribute.devices
    if devices < 1:
        raise RecipeError(f"distribute.devices: expected a count >= 1, got {devices}")
    if recipe.train.batch_size % devices:
        raise RecipeError(
            f"distribute.devices: the global batch train.batch_size = {recipe.train.batch_size} "
            f"does not split evenly over {devices} devices"
        )


def validate_calibration_audio(audio, where: str) -> tuple[str, ...]:
    """RecipeError naming ``where`` unless ``audio`` is a non-empty subset of the known names."""
    audio = tuple(audio)
    bad = [a for a in audio if a not in CALIBRATION_AUDIO]
    if not audio or bad or len(set(audio)) != len(audio):
        raise RecipeError(
            f"{where}: expected distinct names from {', '.join(CALIBRATION_AUDIO)}, got "
            f"{list(audio)}"
        )
    return audio


def read_toml(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A recipe file as a plain dict with ``--set`` overrides applied (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file") from None
    return apply_overrides(raw, list(overrides or []))


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe TOML, apply ``--set`` overrides, parse and type-check it.

    Checks that need a stage (loss terms, architecture, Uth statistic) run at job start:
    :func:`avloc.recipe_checks.check_recipe`.
    """
    path = Path(path)
    raw = read_toml(path, overrides)
    try:
        return recipe_from_dict(raw)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as TOML (atomically)."""
    import tomli_w

    from avloc.utils.files import atomic_write_bytes

    atomic_write_bytes(Path(path), tomli_w.dumps(recipe.to_dict()).encode())
