"""avloc's CPU kernel set-up (avloc/runtime/backend.py, cpu_kernels.py): on the torch backend the
first network built chooses oneDNN's cap (AVX2 below width 16, uncapped otherwise) unless the
user exported one.

The convolution test runs in a child process so that a kernel crash (what the cap prevents) fails
this test alone instead of ending the test session.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, **env) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=ROOT,
        timeout=600,
    )


_FIRST_TRUNK = """
    import avloc, avloc.runtime.backend as b
    before = b.onednn_isa_cap()
    from avloc.models.resnet import resnet
    for width in WIDTHS:
        resnet(1, width=width)
    print(before, b.onednn_isa_cap())
"""


def _cap_after(widths, **env) -> str:
    result = _run(_FIRST_TRUNK.replace("WIDTHS", repr(tuple(widths))), **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.large  # starts subprocesses
def test_the_first_trunk_chooses_the_onednn_cap_on_torch_only():
    # importing sets nothing; a narrow first trunk caps at AVX2, a wide one leaves every ISA on,
    # and a narrow trunk after a wide one cannot change what oneDNN has read (it goes native)
    assert _cap_after([8], KERAS_BACKEND="torch") == "DEFAULT AVX2"
    assert _cap_after([64], KERAS_BACKEND="torch") == "DEFAULT DEFAULT"
    assert _cap_after([64, 8], KERAS_BACKEND="torch") == "DEFAULT DEFAULT"
    assert _cap_after([8], KERAS_BACKEND="tensorflow") == "DEFAULT DEFAULT"


@pytest.mark.large  # starts subprocesses
def test_keras_json_backend_decides_without_keras_backend(tmp_path):
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    env = {"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": ""}
    assert _cap_after([8], **env) == "DEFAULT AVX2"
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert _cap_after([8], **env) == "DEFAULT DEFAULT"


@pytest.mark.large  # starts subprocesses
def test_an_exported_onednn_cap_is_kept():
    for backend in ("torch", "tensorflow"):
        got = _cap_after([8], ONEDNN_MAX_CPU_ISA="AVX512_CORE", KERAS_BACKEND=backend)
        assert got == "AVX512_CORE AVX512_CORE"


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's oneDNN kernels")
@pytest.mark.parametrize("width,isa", [(8, "AVX2"), (16, "AVX-512")])
def test_onednn_runs_the_instruction_set_the_first_trunk_chose(width, isa):
    """What oneDNN itself reports (``ONEDNN_VERBOSE``) after a trunk's first convolution."""
    with open("/proc/cpuinfo") as cpuinfo:
        if isa == "AVX-512" and "avx512f" not in cpuinfo.read():
            pytest.skip("this CPU has no AVX-512")
    code = f"""
        import numpy as np
        import avloc
        from avloc.models.resnet import resnet
        trunk = resnet(1, width={width}, data_format="channels_first")
        trunk(np.zeros((1, 1, 32, 32), "float32"))
    """
    result = _run(code, KERAS_BACKEND="torch", ONEDNN_VERBOSE="1")
    assert result.returncode == 0, result.stderr[-2000:]
    reported = [line for line in result.stdout.splitlines() if ",info,cpu,isa:" in line]
    assert reported and isa in reported[0], reported


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="toggles torch's oneDNN switch")
def test_onednn_gradients_match_torch_native_kernels_at_width_8():
    """Gradients with oneDNN on equal those of torch's own kernels, for

    - the convolution that crashes uncapped on an AVX-512 CPU: 1x1, stride 2, 8 -> 16 channels,
      a channels-last (2, 8, 56, 56) input (the width-8 shortcut of layer 2 at 112 px; with
      ``ONEDNN_MAX_CPU_ISA=DEFAULT`` torch 2.13.0 segfaults in its backward);
    - the whole width-8 trunk under a fixed linear read-out.
    """
    code = """
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import avloc
        import numpy as np
        import torch
        import torch.nn.functional as F
        from avloc.models.resnet import resnet

        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.standard_normal((2, 8, 56, 56), "float32"))
        x = x.contiguous(memory_format=torch.channels_last)
        kernel = torch.from_numpy(rng.standard_normal((16, 8, 1, 1), "float32"))
        import keras

        # fixed weights: with random ones about 1 process in 15 drew weights at which the two
        # kernels' gradients of the stem and layer 1 differed by 0.1-0.5 % (the same on every
        # repeat within that process); with these the check is the same in every run
        keras.utils.set_random_seed(0)
        trunk = resnet(1, width=8, stem_pool=False, data_format="channels_first")
        spec = torch.from_numpy(rng.standard_normal((4, 1, 64, 48), "float32"))
        read_out = torch.from_numpy(rng.standard_normal((4, 64, 4, 3), "float32"))

        def shortcut_gradients():
            inputs = x.clone().requires_grad_()
            weights = kernel.clone().requires_grad_()
            F.conv2d(inputs, weights, stride=2).square().sum().backward()
            return [inputs.grad, weights.grad]

        def trunk_gradients():
            for v in trunk.trainable_variables:
                v.value.grad = None
            (trunk(spec, training=True) * read_out).sum().backward()
            return [v.value.grad.clone() for v in trunk.trainable_variables]

        def gradients(onednn):
            torch.backends.mkldnn.enabled = onednn
            return shortcut_gradients() + trunk_gradients()

        worst = 0.0
        for _ in range(3):
            native, onednn = gradients(False), gradients(True)
            for a, b in zip(native, onednn):
                worst = max(worst, float((a - b).abs().max() / a.abs().max()))
        print(len(native), worst)
    """
    result = _run(code)
    assert result.returncode == 0, f"child exited {result.returncode}: {result.stderr[-2000:]}"
    count, worst = result.stdout.split()
    assert int(count) > 40  # the shortcut's two, every conv kernel and batch-norm scale/offset
    assert float(worst) < 1e-4


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's oneDNN switch")
def test_a_narrow_trunk_turns_torch_onednn_off_for_good():
    """Widths 2 and 4 (the test suite's) hang or repeat differently in oneDNN's AVX2 kernels."""
    code = """
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import avloc
        import torch
        from avloc.models.resnet import resnet

        states = [torch.backends.mkldnn.enabled]
        for width in (8, 64, 4, 64):
            resnet(1, width=width)
            states.append(torch.backends.mkldnn.enabled)
        print(states)
    """
    result = _run(code)
    assert result.stdout.strip() == "[True, True, True, False, False]", result.stderr[-2000:]


@pytest.mark.parametrize(
    "cap,precision,cuda,warns",
    [
        ("AVX2", "mixed_bfloat16", False, True),
        ("avx2_vnni", "mixed_bfloat16", False, True),
        ("AVX2", "float32", False, False),
        ("AVX2", "mixed_bfloat16", True, False),
        ("DEFAULT", "mixed_bfloat16", False, False),
        ("AVX512_CORE_AMX", "mixed_bfloat16", False, False),
    ],
)
def test_bf16_on_a_capped_cpu_warns_on_torch(monkeypatch, cap, precision, cuda, warns):
    from avloc.runtime.backend import cpu_bf16_warning

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    message = cpu_bf16_warning(precision, cuda=cuda)
    if keras.backend.backend() != "torch":
        assert message is None  # the warning is about torch's oneDNN cap only
        return
    assert (message is not None) == warns
    if warns:
        assert "train.precision" in message and cap.upper() in message and "\n" not in message


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
    import os, sys
    import avloc
    from avloc.runtime.cpu_kernels import choose_tensorflow_kernels
    before = os.environ["TF_ENABLE_ONEDNN_OPTS"]
    IMPORT
    on = choose_tensorflow_kernels(WIDTH)
    print(before, on, os.environ["TF_ENABLE_ONEDNN_OPTS"], os.environ.get("ONEDNN_MAX_CPU_ISA"))
"""


@pytest.mark.large  # starts subprocesses
@pytest.mark.parametrize(
    "width,imported,exported,expected",
    [
        (4, False, None, "0 False 0 AVX2"),  # the test suite's widths: TensorFlow's own kernels
        (8, False, None, "0 True 1 AVX2"),  # the quickstart's: oneDNN under the AVX2 cap
        (64, False, None, "0 True 1 None"),  # the paper's: oneDNN uncapped
        (64, True, None, "0 False 0 None"),  # TensorFlow already read the switch: no change
        (64, False, "0", "0 False 0 None"),  # the user's switch is kept
        (4, False, "1", "1 True 1 None"),
    ],
)
def test_tensorflow_gets_onednn_only_for_wide_enough_networks(width, imported, exported, expected):
    code = _CHOOSE.replace("WIDTH", str(width))
    code = code.replace("IMPORT", "import tensorflow" if imported else "pass")
    env = {"TF_ENABLE_ONEDNN_OPTS": exported} if exported is not None else {}
    result = _run_without_switch(code, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == expected


_TF_GRADIENTS = """
    import os, sys
    import numpy as np
    import avloc
    from avloc.runtime.cpu_kernels import choose_tensorflow_kernels
    print(choose_tensorflow_kernels(WIDTH) if ONEDNN else "off")
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
