"""Every recipe under ``recipes/`` trains one step (shrunk).

The smoke test trains each recipe with overrides that shrink it (width-2 ResNets with one block
per stage, 32 px images, 0.5 s clips, batch 4) for one ``fit`` step on the first batch the
loader draws from tiny synthetic shards, with the task, loss terms and optimizer built by
:func:`avloc.jobs.train.build_task` as ``avloc train`` builds them. Recipes whose shrunk, resolved
settings are identical (e.g. a paper recipe and its synthetic twin, or ``sslsan.toml`` and
ablation row 7) share one training step: the shrunk configuration is what is trained. The step
runs eagerly to keep the suite fast (tracing a graph per recipe would cost seconds each under
TensorFlow); the same terms, architectures and optimizers run in compiled steps in
tests/test_baselines.py, tests/test_task.py and in the one full :func:`avloc.jobs.train.train` run
here (synthetic FNAC, two epochs), which also checks the warm-up end to end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from harness import PRETRAIN_RECIPES, RECIPE_DIR, RECIPE_IDS, TRAINING_RECIPES
from keras import ops

from avloc.config import load_recipe
from avloc.data.loader import TrainBatches
from avloc.data.shards import ShardSet
from avloc.losses import LOSS_TERMS
from avloc.models.io import load_network
from avloc.task import EpochCounter
from avloc.training.build import build_task, train_inputs

PRETRAIN, RECIPES, IDS = PRETRAIN_RECIPES, TRAINING_RECIPES, RECIPE_IDS


# ------------------------------------------------------------------------------------------
# one training step per recipe


SHRINK = [
    "model.embed_dim=16",  # = 8 * width: the lvs architecture has no projection heads
    "model.visual.width=2",
    'model.visual.pretrained=""',  # random init: no trunk file in tests
    "model.audio.width=2",
    "model.visual.blocks=[1, 1, 1, 1]",
    "model.audio.blocks=[1, 1, 1, 1]",
    "model.visual.stem_pool=false",  # 32 px -> 2x2 maps (4x4 for lvs)
    "data.image_size=32",
    "data.train_resize=36",
    "data.clip_seconds=0.5",  # the tiny shards hold 0.5 s clips: 257 x 32 spectrograms
    "data.workers=1",
    "data.limit=0",
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=1",
    "train.learning_rate=0.001",
    "train.backup_every_steps=1000",
    "train.tensorboard=false",
    "eval.calibration_samples=2",
    "eval.batch_size=2",
]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards(train=8, test=4, seed=5, clip_seconds=0.5)


@pytest.fixture(scope="module")
def runs() -> dict:
    """Shrunk configuration (as JSON) -> outcome of its training step, filled as tests run."""
    return {}


def shrunk(path: Path, shards: Path):
    data = [f'data.train="{shards / "train"}"', f'data.test="{shards / "test"}"']
    return load_recipe(path, [*data, *SHRINK])


def configuration_key(recipe) -> str:
    """The resolved settings, loss options completed with their defaults; names left out."""
    plain = recipe.to_dict()
    plain.pop("name")
    plain.pop("description")
    for name, kwargs in plain["loss"].items():
        defaults = {k: p.default for k, p in LOSS_TERMS.parameters(name).items()}
        plain["loss"][name] = {**defaults, **kwargs}
    return json.dumps(plain, sort_keys=True)


def weights_of(variables) -> list[np.ndarray]:
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def train_one_step(recipe) -> dict:
    """As ``avloc.jobs.train.train`` does: seed, build_task, the loader's first batch, one step."""
    keras.utils.set_random_seed(recipe.seed)
    task = build_task(recipe)
    task.run_eagerly = True  # see the module docstring
    batches = TrainBatches(
        ShardSet(recipe.data.train),
        batch_size=recipe.train.batch_size,
        seed=recipe.seed,
        inputs=train_inputs(recipe),
        with_noise=task.needs_noise,
        steps_per_epoch=1,
    )
    before = weights_of(task.trainable_variables)
    history = task.fit(
        batches[0],
        epochs=1,
        batch_size=recipe.train.batch_size,
        verbose=0,
        callbacks=[EpochCounter()],
    ).history
    after = weights_of(task.trainable_variables)
    names = [v.path for v in task.trainable_variables]
    return {
        "history": history,
        "weights": list(zip(names, before, after, strict=True)),
        "net": task.net,
        "steps": task.optimizer.iterations,
    }


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_trains_one_step(path, shards, runs):
    """One step of the recipe's objective and optimizer: the logged loss is the weighted sum of
    the recipe's terms, and every weight moves by Adam's first step, ``lr * g / (|g| + eps)``
    elementwise, so by at most the learning rate (plus ``lr * wd * |w|`` of decoupled weight
    decay), the largest step being the learning rate itself."""
    recipe = shrunk(path, shards)
    key = configuration_key(recipe)
    if key not in runs:
        runs[key] = train_one_step(recipe)
    run = runs[key]

    history = run["history"]
    assert set(history) == {"loss", *(f"loss_{name}" for name in recipe.loss)}, history.keys()
    terms = {name: history[f"loss_{name}"] for name in recipe.loss}
    weighted = sum(recipe.loss[name]["weight"] * values[0] for name, values in terms.items())
    assert len(history["loss"]) == 1 and history["loss"][0] == pytest.approx(weighted, rel=1e-5)
    assert int(ops.convert_to_numpy(run["steps"])) == 1

    train = recipe.train
    rate = train.learning_rate  # step 0: the cosine schedule starts at it too
    decay = train.weight_decay if train.weight_decay_mode == "decoupled" else 0.0
    largest = 0.0
    for name, before, after in run["weights"]:
        step = np.abs(after - before)
        assert step.max() > 0, f"{name} did not move: the objective does not reach it"
        bound = rate * (1 + decay * np.abs(before)) + 2 * np.spacing(np.abs(before))
        assert np.all(step <= bound), (name, float((step - bound).max()))
        largest = max(largest, float(step.max()))
    assert largest >= 0.99 * rate, largest  # the recipe's learning rate, not a fraction of it
    net = run["net"]
    assert net.projection == (recipe.model.arch != "lvs")
    assert net.visual_dropout == recipe.model.visual_dropout


def test_fnac_warmup_switches_on_at_its_epoch_through_train(shards, tmp_path):
    """``avloc train`` installs the epoch counter: the synthetic FNAC recipe (start_epoch 1)
    logs its FNAC terms as 0 in epoch 0 and as positive values from epoch 1."""
    from avloc.jobs.train import train

    recipe = load_recipe(
        RECIPE_DIR / "synthetic" / "fnac.toml",
        [f'data.train="{shards / "train"}"', *SHRINK, "train.epochs=2"],
    )
    assert all(recipe.loss[n]["start_epoch"] == 1 for n in ("fnac_fns1", "fnac_fns2", "fnac_tne"))
    result = train(recipe, tmp_path / "run", verbose=0)
    with open(tmp_path / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for name in ("fnac_fns1", "fnac_fns2", "fnac_tne"):
        assert float(rows[0][f"loss_{name}"]) == 0.0
        assert float(rows[1][f"loss_{name}"]) > 0.0
    for row in rows:
        weighted = sum(recipe.loss[n]["weight"] * float(row[f"loss_{n}"]) for n in recipe.loss)
        assert float(row["loss"]) == pytest.approx(weighted, rel=1e-4, abs=1e-6)
    assert load_network(result.model_path).visual_dropout == recipe.model.visual_dropout
