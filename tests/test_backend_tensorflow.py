"""avloc's CPU kernel set-up on TensorFlow (avloc/runtime/configure.py): oneDNN's kernels when
the command knows every network is wide enough (``TF_ENABLE_ONEDNN_OPTS``, under the same cap as
torch), TensorFlow's own otherwise, and gradients with oneDNN's kernels equal to those of its own.
Every check runs in a child process, which reads the switch once, when TensorFlow starts.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# TensorFlow: oneDNN's kernels when the command knows every network is wide enough


def _tf_env(**env) -> dict:
    """A child's environment with neither oneDNN variable exported (avloc's rule applies)."""
    return {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", **env}


def _run_without_switch(code: str, **env) -> subprocess.CompletedProcess:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")
    }
    child_env.update(_tf_env(**env))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=child_env, cwd=ROOT, timeout=600,
    )  # fmt: skip


_CHOOSE = """
    import os
    import avloc.runtime as runtime
    from avloc.errors import AvlocError
    before = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "-")
    IMPORT
    try:
        on = runtime.configure(widths=[WIDTH]).tensorflow_onednn
    except AvlocError:
        on = "refused"
    after = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "-")
    print(before, on, after, os.environ.get("ONEDNN_MAX_CPU_ISA"))
"""


@pytest.mark.large  # starts subprocesses
@pytest.mark.parametrize(
    "width,first,exported,expected",
    [
        (4, "", None, "- False 0 AVX2"),  # the test suite's widths: TensorFlow's own kernels
        (8, "", None, "- True 1 AVX2"),  # the quickstart's: oneDNN under the AVX2 cap
        (64, "", None, "- True 1 None"),  # the paper's: oneDNN uncapped
        # after TensorFlow started (a Python user who imported keras first): its switch, on by
        # default, stays; the same kernels as the command, and a too narrow network is refused
        (8, "import tensorflow", None, "- True - AVX2"),
        (4, "import tensorflow", None, "- refused - AVX2"),
        # as every avloc command starts (no widths known yet: TensorFlow's own kernels), then
        # the recipe's widths before TensorFlow starts (avloc train)
        (8, "runtime.configure()", None, "- True 1 AVX2"),
        (64, "", "0", "0 False 0 None"),  # the user's switch is kept
        (4, "", "1", "1 True 1 AVX2"),
    ],
)
def test_tensorflow_gets_onednn_only_for_wide_enough_networks(width, first, exported, expected):
    code = _CHOOSE.replace("WIDTH", str(width)).replace("IMPORT", first or "pass")
    env = {"TF_ENABLE_ONEDNN_OPTS": exported} if exported is not None else {}
    result = _run_without_switch(code, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected


_TF_GRADIENTS = """
    import os, sys
    import numpy as np
    import avloc.runtime as runtime
    settings = runtime.configure(widths=[WIDTH])
    print(settings.tensorflow_onednn if ONEDNN else "off")
    import keras
    import tensorflow as tf
    from avloc.models.resnet import resnet

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    trunk = resnet(1, width=WIDTH, stem_pool=False)
    spec = rng.standard_normal((4, 64, 48, 1), "float32")
    read_out = tf.constant(rng.standard_normal((4, 4, 3, 8 * WIDTH), "float32"))
    grads = []
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(trunk(spec, training=True) * read_out)
        grads.append([g.numpy() for g in tape.gradient(loss, trunk.trainable_variables)])
    np.savez(sys.argv[1], *grads[0])
    print(max(float(np.abs(a - b).max()) for a, b in zip(*grads)))
"""


@pytest.mark.large  # starts subprocesses
@pytest.mark.parametrize("width", [8, 16])
def test_tensorflow_onednn_gradients_match_its_own_kernels(width, tmp_path):
    """The whole trunk under a fixed linear read-out: gradients with oneDNN's kernels (as
    ``avloc train`` chooses them: AVX2 at width 8, uncapped at 16) equal TensorFlow's own."""
    saved = {}
    for onednn in (False, True):
        code = _TF_GRADIENTS.replace("WIDTH", str(width)).replace("ONEDNN", str(onednn))
        path = tmp_path / f"{onednn}.npz"
        child_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")
        }
        child_env.update(_tf_env() if onednn else _tf_env(TF_ENABLE_ONEDNN_OPTS="0"))
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), str(path)],
            capture_output=True, text=True, env=child_env, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"exited {result.returncode}: {result.stderr[-2000:]}"
        chosen, repeat = result.stdout.split()
        assert chosen == ("True" if onednn else "off")
        assert float(repeat) == 0.0  # the same gradients on a repeat
        saved[onednn] = np.load(path)
    own, onednn = saved[False], saved[True]
    assert len(own.files) > 40
    for key in own.files:
        scale = np.abs(own[key]).max()
        assert np.abs(onednn[key] - own[key]).max() <= 1e-4 * scale, key
