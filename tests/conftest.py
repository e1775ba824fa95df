"""Shared test set-up: a Keras backend is always chosen explicitly (default torch).

Fixtures: :func:`tiny_shards` (tiny synthetic shards, prepared once per session for each distinct
request) and a published EZ-VSL checkpoint (:func:`ezvsl_model`, :func:`ezvsl_file`,
:func:`ezvsl_state`) for the tests of importing PyTorch weights.
"""

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
# avloc's cache (Keras-free copies of networks that `avloc localize` loads, downloads) goes to a
# directory of this test session, also for the commands the tests start
if "AVLOC_CACHE" not in os.environ:
    os.environ["AVLOC_CACHE"] = tempfile.mkdtemp(prefix="avloc-test-cache-")
    atexit.register(shutil.rmtree, os.environ["AVLOC_CACHE"], True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN capped at AVX2 on every backend, since the TensorFlow suite also runs plain-torch
# references with width-8 layers; TensorFlow's own kernels for the suite's width-2 and width-4
# networks (avloc/runtime/configure.py)
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# The suite builds networks as narrow as width 2 in this process: the runtime is configured for
# them once, as a job configures it for its recipe (on torch: oneDNN off for the session)
from avloc.runtime import configure  # noqa: E402

configure(widths=[2])


#: The backend under which ``backend_independent`` tests run (scripts/test.sh runs it first)
REFERENCE_BACKEND = "torch"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``backend_independent`` or ``once_per_suite`` run once, under
    :data:`REFERENCE_BACKEND`.

    ``backend_independent`` is for modules that never import Keras (numpy metrics, preparation,
    media, docs) and for cases of one property where one backend is representative (the resume
    test's kill points beyond the first: the job's bookkeeping is Python, the weights' restore is
    checked on every backend by the first). ``once_per_suite`` is for long runs whose outcome
    may differ in the last bits between backends but whose subject is not the backend: the other
    backends' side of it is tested elsewhere, and the mark's comment says where.
    ``AVLOC_TEST_EVERY_BACKEND=1`` runs them everywhere.
    """
    if os.environ.get("AVLOC_TEST_EVERY_BACKEND") == "1":
        return
    if os.environ.get("KERAS_BACKEND", REFERENCE_BACKEND) == REFERENCE_BACKEND:
        return
    kept, dropped = [], []
    for item in items:
        once = item.get_closest_marker("backend_independent") or item.get_closest_marker(
            "once_per_suite"
        )
        (dropped if once else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """``tiny_shards(train=, test=, seed=, **config)``: :func:`harness.synthetic_shards` in a folder
    of this session (``train/``, ``test/``), prepared once for each distinct request; ``config``:
    more SyntheticConfig fields. The shards are shared: tests only read them."""
    from harness import synthetic_shards

    prepared = {}

    def make(*, train: int, test: int, seed: int, image_size: int = 40, **config):
        key = (train, test, seed, image_size, tuple(sorted(config.items())))
        if key not in prepared:
            out = tmp_path_factory.mktemp("synthetic")
            prepared[key] = synthetic_shards(
                out, train=train, test=test, seed=seed, image_size=image_size, **config
            )
        return prepared[key]

    return make


# ------------------------------------------------------------------------------------------
# a published EZ-VSL checkpoint, shared by the tests/test_import_*.py files


@pytest.fixture(scope="module")
def ezvsl_model():
    """tests/references.py's tiny EZ-VSL with random weights (seed 1), in eval mode."""
    from references import EZVSL, randomise

    return randomise(EZVSL(), seed=1)


@pytest.fixture(scope="module")
def ezvsl_file(ezvsl_model, tmp_path_factory):
    """:func:`ezvsl_model` saved as EZ-VSL's training script saves it (``best.pth``)."""
    from references import save_published

    return save_published(ezvsl_model, tmp_path_factory.mktemp("ezvsl") / "best.pth")


@pytest.fixture(scope="module")
def ezvsl_state(ezvsl_model):
    """:func:`ezvsl_model`'s state_dict with DDP's ``module.`` prefixes."""
    return {f"module.{k}": v for k, v in ezvsl_model.state_dict().items()}
