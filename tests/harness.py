"""The tests' shared pieces: tiny networks and recipes, tiny synthetic shards, the CLI in a
subprocess.

- :data:`TINY_NET`: ``--set`` overrides that shrink ``recipes/quickstart.toml`` to a width-4
  network on 32 px images with a random visual trunk (no pretrained file in tests);
- :func:`tiny_sets`, :func:`tiny_recipe`: a tiny training run of the quickstart (:data:`TINY_NET`
  plus :data:`TINY_TRAIN`, then each test's own settings), as ``--set`` values (also as
  command-line flags: :func:`tiny_flags`) or loaded;
- :func:`tiny_task_recipe`: a width-2 network with one block per stage on avloc's defaults, for
  in-memory ``fit`` steps of a chosen ``[loss]``;
- :func:`synthetic_shards`: ``avloc prepare synthetic`` into a folder (``train/``, ``test/``),
  40 px scenes by default (tests take them from the ``tiny_shards`` fixture, conftest.py, which
  prepares each distinct request once);
- :func:`avloc_process`: ``avloc ARGS`` in a fresh interpreter (``python -m avloc_cli.main``)
  from the repository root, with a chosen Keras backend; :func:`run_avloc` waits for it;
- :func:`keras_outputs`, :func:`assert_parity`, :func:`trunk_output`, :func:`import_error`: an
  avloc network beside a plain-torch reference of ``tests/references.py`` (inputs in the
  references' NCHW layout).
- :data:`GRID`, :data:`GRID_EXACT`: the curves' threshold grids, the reference code's and avloc's;
  :func:`random_records`: a test set's records of random maps and boxes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.toml"
RECIPE_DIR = ROOT / "recipes"
#: Pretraining recipes (``avloc pretrain``); every other TOML is a training recipe.
PRETRAIN_RECIPES = [RECIPE_DIR / "synthetic" / "visual_trunk.toml"]
#: Every training recipe, and its path under ``recipes/`` as a test id.
TRAINING_RECIPES = sorted(p for p in RECIPE_DIR.rglob("*.toml") if p not in PRETRAIN_RECIPES)
RECIPE_IDS = [p.relative_to(RECIPE_DIR).as_posix() for p in TRAINING_RECIPES]
TINY_NET = [
    "model.embed_dim=16",
    "model.visual.width=4",
    'model.visual.pretrained=""',  # random init: no trunk file in tests
    "model.audio.width=4",
    "data.image_size=32",
]

#: What every tiny training run of the quickstart adds to :data:`TINY_NET`: 36 px training
#: resizes, one loader worker, no TensorBoard.
TINY_TRAIN = ["data.train_resize=36", "data.workers=1", "train.tensorboard=false"]

#: The threshold grids of the success and AUC_N curves (tests/test_metrics_*.py).
GRID = [0.05 * i for i in range(21)]  # the reference code's grid (0.05 * 14 = 0.7000000000000001)
GRID_EXACT = [i / 20 for i in range(21)]  # the package's grid: correctly rounded decimals


def tiny_sets(*sets: str, shards: Path | None = None) -> list[str]:
    """``--set`` values of a tiny quickstart run: ``data.train`` = ``shards/train`` when given,
    :data:`TINY_NET`, :data:`TINY_TRAIN`, then ``sets`` (a later value of a key wins)."""
    train = [f'data.train="{Path(shards) / "train"}"'] if shards is not None else []
    return [*train, *TINY_NET, *TINY_TRAIN, *sets]


def tiny_recipe(*sets: str, shards: Path | None = None):
    """``recipes/quickstart.toml`` loaded with :func:`tiny_sets` ``(*sets, shards=shards)``."""
    from avloc.config import load_recipe

    return load_recipe(QUICKSTART, tiny_sets(*sets, shards=shards))


def tiny_flags(*sets: str, shards: Path | None = None) -> list[str]:
    """:func:`tiny_sets` as ``avloc`` takes them on its command line: ``--set VALUE`` each."""
    return [arg for value in tiny_sets(*sets, shards=shards) for arg in ("--set", value)]


def tiny_task_recipe(loss: dict, **train):
    """A recipe of ``loss`` on avloc's defaults (not the quickstart): width-2 ResNets with one block
    per stage (short graph tracing; 32 px -> 2x2 maps), 0.5 s clips, batch 4, learning rate 1e-2;
    ``train``: more ``[train]`` settings."""
    from avloc.config import recipe_from_dict

    return recipe_from_dict(
        {
            "name": "tiny",
            "data": {"image_size": 32, "train_resize": 36, "clip_seconds": 0.5},
            "model": {
                "embed_dim": 8,
                "visual": {"width": 2, "blocks": [1, 1, 1, 1], "stem_pool": False},
                "audio": {"width": 2, "blocks": [1, 1, 1, 1]},
            },
            "loss": loss,
            "train": {"batch_size": 4, "learning_rate": 1e-2, "tensorboard": False, **train},
        }
    )


def synthetic_shards(
    out: Path, *, train: int, test: int, seed: int, image_size: int = 40, **config
) -> Path:
    """Prepare tiny synthetic shards in ``out``; ``config``: more SyntheticConfig fields."""
    from avloc.data.prepare_synthetic import prepare_synthetic
    from avloc.data.synthetic import SyntheticConfig

    config = SyntheticConfig(image_size=image_size, **config)
    prepare_synthetic(out, train=train, test=test, seed=seed, config=config)
    return out


def avloc_process(
    *args: str, backend: str | None = None, cwd: Path = ROOT, **popen
) -> subprocess.Popen:
    """``avloc ARGS`` started in a subprocess (stdout and stderr piped, text mode)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.Popen(
        [sys.executable, "-m", "avloc_cli.main", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run_avloc(
    *args: str, backend: str | None = None, cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``avloc ARGS`` run to the end; the completed process with its output."""
    proc = avloc_process(*args, backend=backend, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# ------------------------------------------------------------------------------------------
# avloc networks beside the plain-torch references (tests/references.py)


def keras_outputs(net, image, audio):
    """``v_map``, ``a_emb`` and all-pair maps of ``net`` on NCHW inputs, as NumPy arrays."""
    from keras import ops

    from avloc.models import all_pair_maps

    out = net(
        {"image": image.transpose(0, 2, 3, 1), "audio": audio.transpose(0, 2, 3, 1)},
        training=False,
    )
    maps = all_pair_maps(out["v_map"], out["a_emb"])
    return (
        ops.convert_to_numpy(out["v_map"]),
        ops.convert_to_numpy(out["a_emb"]),
        ops.convert_to_numpy(maps),
    )


def assert_parity(net, want, image, audio):
    """``net``'s outputs are ``want`` (:func:`references.reference`'s) to 1e-4, with a signal."""
    import numpy as np

    got = keras_outputs(net, image, audio)
    for name, g, w in zip(("v_map", "a_emb", "maps"), got, want, strict=True):
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert np.abs(g - w).max() < 1e-4, (name, np.abs(g - w).max())
    maps = want[2]
    assert np.ptp(maps) > 0.1  # a real signal: the maps vary over pairs and locations


def trunk_output(net, image_nchw):
    """The visual trunk's output (layer4, no pooling) on NCHW images, returned as NCHW."""
    from keras import ops

    channels_first = net.data_format == "channels_first"
    x = image_nchw if channels_first else image_nchw.transpose(0, 2, 3, 1)
    y = ops.convert_to_numpy(net.visual_encoder(x, training=False))
    return y if channels_first else y.transpose(0, 3, 1, 2)


def import_error(state, tmp_path: Path, arch: str = "ezvsl") -> str:
    """Importing ``state`` (saved under ``model``) fails in one line naming the file, writing
    nothing; the message."""
    import pytest
    import torch

    from avloc.errors import DataError
    from avloc.models.import_torch import import_checkpoint

    path = tmp_path / "broken.pth"
    torch.save({"model": state, "epoch": 1}, path)
    out = tmp_path / "out.keras"
    with pytest.raises(DataError) as info:
        import_checkpoint(path, arch, out)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert not out.exists()  # nothing written
    return message


def random_records(n=6, k=3, rule="boxes", seed=0, **extra):
    """``n`` samples of random maps (4 x 4, every condition), embeddings, labels and 1..k boxes
    each, as a test set's records hold them."""
    import numpy as np

    from avloc.maps.records import SampleRecords

    rng = np.random.default_rng(seed)
    boxes = np.full((n, k, 4), np.nan, np.float32)
    for i in range(n):
        for j in range(1 + i % k):
            x1, y1 = rng.uniform(0, 0.6, 2)
            boxes[i, j] = [x1, y1, x1 + rng.uniform(0.1, 0.4), y1 + rng.uniform(0.1, 0.4)]
    return SampleRecords(
        ids=np.array([f"s{i}" for i in range(n)]),
        maps={
            c: rng.uniform(-0.2, 0.6, (n, 4, 4)).astype(np.float32)
            for c in ("positive", "silence", "noise", "offscreen")
        },
        image_emb=rng.standard_normal((n, 8)).astype(np.float32),
        audio_emb=rng.standard_normal((n, 8)).astype(np.float32),
        map_size=20,
        labels=rng.integers(0, 3, n).astype(np.int32),
        gt_rule=rule,
        boxes=boxes,
        class_names=["a", "b", "c"],
        meta={"model": "m"},
        **extra,
    )
