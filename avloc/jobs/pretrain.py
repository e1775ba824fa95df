"""``avloc pretrain RECIPE``: supervised pretraining of the visual trunk on synthetic objects.

The paper's SSL-SaN starts its visual ResNet-18 from ImageNet classification; the synthetic twins
start from this: the same trunk (``model.visual`` of the recipe) plus a linear classifier on its
global average, trained with softmax cross-entropy to name the single object in images from
:mod:`avloc.data.synthetic.objects` (the scene classes plus distractor classes, never an
audio-visual scene). Images are ImageNet-normalised as the audio-visual loader does, with a
random horizontal flip and a random shift (pad ``shift`` px with edge pixels, crop back).

Output: ``OUT`` (a ``.pth`` file) is a torchvision-keyed ``resnet18``-style state_dict of
tensors: ``conv1.weight``, ``bn1.running_mean``, ``layer1.0.conv1.weight`` ... (float32, torch
layouts), the classifier ``fc.weight`` / ``fc.bias`` and each batch norm's
``num_batches_tracked``. ``model.visual.pretrained`` loads it exactly as it loads torchvision's
ImageNet file (``fc.*`` ignored). Beside it, ``OUT.json`` records the resolved recipe, the
held-out accuracy, the file's SHA-256, the SHA-256 of its weights (``content_sha256``: the
same for every run of the same recipe on a machine) and the trunk's ``stem_pool`` (a
state_dict cannot say whether its trunk had the stem max pool; ``load_imagenet_trunk`` in
:mod:`avloc.models.pretrained` reads it from there).

Running the command again with the same recipe finds the finished file (same recipe in its
``.json``) and does nothing; another recipe is refused unless ``--force``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avloc.config import RANGES, check_value_ranges, from_dict, read_toml
from avloc.errors import AvlocError, RecipeError
from avloc.models.pretrained import sidecar
from avloc.runtime.seeding import set_random_seed
from avloc.utils.files import file_sha256


@dataclass(frozen=True)
class PretrainData:
    images: int = 6000  # synthetic single-object training images
    validation: int = 600  # held-out images (other indices) for the reported accuracy
    image_size: int = 112  # pixels; the audio-visual recipes' data.image_size
    classes: int = 12  # the first N of avloc.data.synthetic.CLASSES (8 scene + 4 distractor)
    shift: int = 8  # random translation, pixels, in training


@dataclass(frozen=True)
class PretrainVisual:
    width: int = 8
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_pool: bool = False


@dataclass(frozen=True)
class PretrainModel:
    visual: PretrainVisual = field(default_factory=PretrainVisual)


@dataclass(frozen=True)
class PretrainTrain:
    """The ``[train]`` fields :func:`avloc.runtime.optimizers.build_optimizer` reads, with the
    pretraining's defaults (a constant rate; ``weight_decay`` decoupled, as AdamW's)."""

    epochs: int = 4
    batch_size: int = 64
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 2e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0
    weight_decay_mode: Literal["decoupled", "l2"] = "decoupled"


@dataclass(frozen=True)
class PretrainRecipe:
    name: str = "synthetic-visual-trunk"
    description: str = ""
    seed: int = 0
    data: PretrainData = field(default_factory=PretrainData)
    model: PretrainModel = field(default_factory=PretrainModel)
    train: PretrainTrain = field(default_factory=PretrainTrain)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: Sane ranges of a pretraining recipe's numbers (:func:`avloc.config.check_value_ranges`).
PRETRAIN_RANGES: dict[str, tuple[Any, str]] = {
    "data.images": (lambda v: v > 0, "a positive number of images"),
    "data.validation": (lambda v: v > 0, "a positive number of images"),
    # the keys a training recipe shares: its ranges (one place, avloc.config.RANGES)
    **{
        key: RANGES[key]
        for key in (
            "seed",
            "data.image_size",
            "model.visual.width",
            "model.visual.blocks",
            "train.epochs",
            "train.batch_size",
            "train.learning_rate",
            "train.weight_decay",
        )
    },
}


def load_pretrain_recipe(path: str | Path, overrides: list[str] | None = None) -> PretrainRecipe:
    """Read and validate a pretraining recipe with the training recipes' machinery
    (:mod:`avloc.config`: unknown keys, wrong types and bad values are one-line errors)."""
    from avloc.data.synthetic import CLASSES

    path = Path(path)
    raw = read_toml(path, overrides)
    try:
        recipe = from_dict(PretrainRecipe, raw)
        check_value_ranges(recipe, PRETRAIN_RANGES)
        d = recipe.data
        if not 2 <= d.classes <= len(CLASSES):
            raise RecipeError(f"data.classes: must be 2..{len(CLASSES)}, got {d.classes}")
        if not 0 <= d.shift < d.image_size // 2:
            raise RecipeError(f"data.shift: must be 0 <= shift < image_size / 2, got {d.shift}")
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return recipe


def stored_recipe(info: dict[str, Any]) -> PretrainRecipe | None:
    """The recipe a sidecar records, read as a recipe file is (fields added since it was
    written take their defaults), or None when it cannot be read."""
    try:
        return from_dict(PretrainRecipe, info.get("recipe") or {})
    except RecipeError:
        return None


# --------------------------------------------------------------------------------------------
# data


def make_dataset(recipe: PretrainRecipe) -> dict[str, np.ndarray]:
    """Training and held-out images and labels (uint8 / int32), generated in memory."""
    from avloc.data.synthetic.objects import make_object_images

    d = recipe.data
    kw = dict(seed=recipe.seed, image_size=d.image_size, num_classes=d.classes)
    x, y = make_object_images(0, d.images, **kw)
    vx, vy = make_object_images(d.images, d.images + d.validation, **kw)
    return {"x": x, "y": y, "val_x": vx, "val_y": vy}


def augment(images: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random horizontal flip and random shift (edge padding) of uint8 ``(B, S, S, 3)``."""
    out = np.empty_like(images)
    s = images.shape[1]
    for i, img in enumerate(images):
        if rng.random() < 0.5:
            img = img[:, ::-1]
        if shift:
            dy, dx = rng.integers(0, 2 * shift + 1, 2)
            img = np.pad(img, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
            img = img[dy : dy + s, dx : dx + s]
        out[i] = img
    return out


def _batches(recipe: PretrainRecipe, data: dict[str, np.ndarray]):
    import keras

    from avloc.inputs.images import normalize

    class Batches(keras.utils.PyDataset):
        """Epoch ``e`` is a pure function of ``(seed, e)``: its order and augmentation."""

        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.size = recipe.train.batch_size
            self._order = None

        def __len__(self):
            return len(data["x"]) // self.size

        def on_epoch_begin(self):
            rng = np.random.default_rng([recipe.seed, self.epoch])
            self._order = rng.permutation(len(data["x"]))

        def on_epoch_end(self):
            self.epoch += 1

        def __getitem__(self, batch):
            if self._order is None:
                self.on_epoch_begin()
            idx = self._order[batch * self.size : (batch + 1) * self.size]
            rng = np.random.default_rng([recipe.seed, self.epoch, batch, 1])
            x = normalize(augment(data["x"][idx], rng, recipe.data.shift))
            return x, data["y"][idx]

    return Batches()


# --------------------------------------------------------------------------------------------
# model


def build_classifier(recipe: PretrainRecipe):
    """``(B, S, S, 3)`` normalised images -> ``(B, classes)`` logits; returns (model, trunk)."""
    import keras
    from keras import layers

    from avloc.models.resnet import default_data_format, resnet

    fmt = default_data_format()
    v = recipe.model.visual
    trunk = resnet(3, width=v.width, blocks=tuple(v.blocks), stem_pool=v.stem_pool, data_format=fmt)
    inputs = keras.Input((recipe.data.image_size, recipe.data.image_size, 3), name="image")
    x = layers.Permute((3, 1, 2))(inputs) if fmt == "channels_first" else inputs
    x = trunk(x)
    x = layers.GlobalAveragePooling2D(data_format=fmt)(x)
    fc = layers.Dense(
        recipe.data.classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        name="fc",
    )
    model = keras.Model(inputs, fc(x), name="visual_classifier")
    return model, trunk, fc


def trunk_state_dict(trunk, fc) -> dict[str, np.ndarray]:
    """torchvision-keyed arrays (float32, torch layouts) of the trunk and its classifier."""
    import keras

    from avloc.models.torch_keys import layer_sources, trunk_sources

    sources = [*trunk_sources(trunk, ""), *layer_sources(fc, "fc")]
    state = {s.key: s.to_torch(keras.ops.convert_to_numpy(s.variable)) for s in sources}
    for key in [k for k in state if k.endswith(".running_var")]:  # as nn.BatchNorm2d has it
        state[key.replace(".running_var", ".num_batches_tracked")] = np.zeros((), np.int64)
    return state


def save_state_dict(state: dict[str, np.ndarray], path: Path) -> str:
    """``torch.save`` of the arrays as tensors (loadable with ``weights_only=True``); SHA-256."""
    import io
    from collections import OrderedDict

    import torch

    from avloc.utils.files import atomic_write_bytes

    tensors = OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in state.items())
    buffer = io.BytesIO()  # the archive's inner folder is then "archive", not the temp name
    torch.save(tensors, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return file_sha256(path)


def content_sha256(state: dict[str, np.ndarray]) -> str:
    """SHA-256 of the weights themselves: keys, dtypes, shapes and bytes, in key order.

    torch.save stamps every file with a random serialization id, so two saves of the same
    tensors differ as files; this checksum does not.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        value = np.ascontiguousarray(state[key])
        digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def finished(out: Path, recipe: PretrainRecipe) -> dict[str, Any] | None:
    """The sidecar of a complete output of this recipe, None if there is none; error if other."""
    info_path = sidecar(out)
    if not (out.is_file() and info_path.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if stored_recipe(info) != recipe:
        raise AvlocError(
            f"{out}: holds a trunk pretrained with another recipe (see {info_path}); "
            "choose another --out or pass --force to replace it"
        )
    if info.get("sha256") != file_sha256(out):
        return None
    return info


@dataclass
class PretrainResult:
    out: Path
    info: dict[str, Any]
    reused: bool


def pretrain(
    recipe: PretrainRecipe, out: str | Path, *, force: bool = False, verbose: int | None = None
) -> PretrainResult:
    """Train the classifier and write the trunk's state_dict to ``out`` (and ``out.json``)."""
    import keras

    from avloc.inputs.images import normalize
    from avloc.runtime import configure
    from avloc.runtime.optimizers import build_optimizer
    from avloc.utils.files import atomic_write_json

    out = Path(out)
    if out.exists() and not out.is_file():
        raise AvlocError(f"{out}: exists and is not a regular file; choose another --out")
    if not force:
        done = finished(out, recipe)
        if done is not None:
            return PretrainResult(out, done, reused=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    started = time.time()
    configure(widths=[recipe.model.visual.width], repeatable=True)  # before the trunk is built
    data = make_dataset(recipe)
    set_random_seed(recipe.seed)
    model, trunk, fc = build_classifier(recipe)
    t = recipe.train
    steps = t.epochs * (recipe.data.images // t.batch_size)
    optimizer = build_optimizer(t, total_steps=steps)  # as the training recipes' [train]
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(_batches(recipe, data), epochs=t.epochs, verbose=verbose)
    logits = model.predict(normalize(data["val_x"]), batch_size=128, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == data["val_y"]))
    state = trunk_state_dict(trunk, fc)
    sha = save_state_dict(state, out)
    info = {
        "recipe": recipe.to_dict(),
        "sha256": sha,
        "content_sha256": content_sha256(state),
        "stem_pool": recipe.model.visual.stem_pool,
        "validation_accuracy": accuracy,
        "chance_accuracy": 1.0 / recipe.data.classes,
        "train_loss": [float(v) for v in history.history.get("loss", [])],
        "train_accuracy": [float(v) for v in history.history.get("accuracy", [])],
        "seconds": round(time.time() - started, 1),
        "backend": keras.backend.backend(),
    }
    atomic_write_json(sidecar(out), info)
    return PretrainResult(out, info, reused=False)
