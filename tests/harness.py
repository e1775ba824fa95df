"""The tests' shared pieces: tiny network settings, tiny synthetic shards, the CLI in a subprocess.

- :data:`TINY_NET`: ``--set`` overrides that shrink ``recipes/quickstart.toml`` to a width-4
  network on 32 px images with a random visual trunk (no pretrained file in tests);
- :func:`synthetic_shards`: ``avloc prepare synthetic`` into a folder (``train/``, ``test/``),
  40 px scenes by default;
- :func:`avloc_process`: ``avloc ARGS`` in a fresh interpreter (``python -m cli.main``) from the
  repository root, with a chosen Keras backend; :func:`run_avloc` waits for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.toml"
TINY_NET = [
    "model.embed_dim=16",
    "model.visual.width=4",
    'model.visual.pretrained=""',  # random init: no trunk file in tests
    "model.audio.width=4",
    "data.image_size=32",
]


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
        [sys.executable, "-m", "cli.main", *args],
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
