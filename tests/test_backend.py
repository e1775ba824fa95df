"""avloc's CPU kernel set-up (avloc/runtime/configure.py, cpu_kernels.py, backend.py): the first
widths a process configures choose oneDNN's cap (AVX2 below width 16, uncapped otherwise) unless
the user exported one; nothing is set at import or when a network is built; torch's oneDNN
kernels against its own, and what a child's planned environment gives. TensorFlow's oneDNN
switch: tests/test_backend_tensorflow.py.

The convolution test runs in a child process so that a kernel crash (what the cap prevents) fails
this test alone instead of ending the test session.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
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


_CONFIGURE = """
    import avloc.runtime as runtime
    from avloc.runtime.cpu_kernels import cap_in_force
    before = cap_in_force()
    for width in WIDTHS:
        runtime.configure(widths=[width])
    print(before, cap_in_force())
"""


def _cap_after(widths, **env) -> str:
    result = _run(_CONFIGURE.replace("WIDTHS", repr(tuple(widths))), **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.large  # starts subprocesses
def test_the_first_configured_width_chooses_the_onednn_cap():
    # a narrow first width caps at AVX2, a wide one leaves every ISA on, a narrow width after a
    # wide one cannot change what oneDNN reads once; JAX's kernels are not oneDNN's
    assert _cap_after([8], KERAS_BACKEND="torch") == "DEFAULT AVX2"
    assert _cap_after([64], KERAS_BACKEND="torch") == "DEFAULT DEFAULT"
    assert _cap_after([64, 8], KERAS_BACKEND="torch") == "DEFAULT DEFAULT"
    assert _cap_after([8], KERAS_BACKEND="tensorflow") == "DEFAULT AVX2"
    assert _cap_after([8], KERAS_BACKEND="jax") == "DEFAULT DEFAULT"


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


_UNTOUCHED = """
    import json, os, sys
    changed = lambda before: sorted(
        k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)
    )
    before = dict(os.environ)
    import avloc, avloc.runtime, avloc.runtime.cpu_kernels  # no framework: nothing may change
    alone = changed(before) + sorted({"torch", "keras", "tensorflow"} & set(sys.modules))
    import torch
    import keras  # the frameworks set their own variables when imported
    before = dict(os.environ)
    flags = lambda: [torch.backends.mkldnn.enabled, torch.backends.cudnn.benchmark]
    first = flags()
    import avloc.models, avloc.task, avloc.jobs.train, avloc.jobs.evaluate
    import avloc.jobs.localize, avloc.jobs.pretrain, avloc_cli.main
    from avloc.models.resnet import resnet
    resnet(1, width=64)  # wide enough for any kernels: building it must change nothing
    print(json.dumps({"alone": alone, "changed": changed(before), "flags": [first, flags()]}))
"""


@pytest.mark.large  # starts subprocesses
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_importing_avloc_and_building_a_network_sets_nothing(backend):
    """No environment variable, torch flag or TensorFlow switch is set by an import or a build."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS",)}
    env["KERAS_BACKEND"] = backend
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_UNTOUCHED)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["alone"] == []  # importing avloc starts no framework and sets nothing
    assert seen["changed"] == []
    assert seen["flags"][0] == seen["flags"][1]


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's oneDNN switch")
def test_a_trunk_too_narrow_for_the_kernels_in_force_is_refused_until_configured():
    code = """
        import avloc.runtime as runtime
        from avloc.errors import AvlocError
        from avloc.models.resnet import resnet
        try:
            resnet(1, width=4)
        except AvlocError as exc:
            print("refused:", exc)
        runtime.configure(widths=[4])
        resnet(1, width=4)
        print("built")
    """
    result = _run(code, KERAS_BACKEND="torch")
    assert result.returncode == 0, result.stderr[-2000:]
    refused, built = result.stdout.strip().splitlines()
    assert refused.startswith("refused: a trunk of width 4 under oneDNN's kernels")
    assert "avloc.runtime.configure(widths=[4])" in refused
    assert built == "built"


@pytest.mark.large  # starts subprocesses
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's oneDNN kernels")
@pytest.mark.parametrize("width,isa", [(8, "AVX2"), (16, "AVX-512")])
def test_onednn_runs_the_instruction_set_the_configured_width_chose(width, isa):
    """What oneDNN itself reports (``ONEDNN_VERBOSE``) after a trunk's first convolution."""
    with open("/proc/cpuinfo") as cpuinfo:
        if isa == "AVX-512" and "avx512f" not in cpuinfo.read():
            pytest.skip("this CPU has no AVX-512")
    code = f"""
        import numpy as np
        import avloc.runtime as runtime
        from avloc.models.resnet import resnet
        runtime.configure(widths=[{width}])
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
        import avloc.runtime as runtime
        import numpy as np
        import torch
        import torch.nn.functional as F
        from avloc.models.resnet import resnet

        runtime.configure(widths=[8])

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
def test_a_narrow_network_turns_torch_onednn_off_for_good():
    """Widths 2 and 4 (the test suite's) hang or repeat differently in oneDNN's AVX2 kernels."""
    code = """
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import torch
        import avloc.runtime as runtime

        states = [torch.backends.mkldnn.enabled]
        for width in (8, 64, 4, 64):
            states.append(runtime.configure(widths=[width]).torch_onednn)
            assert states[-1] == torch.backends.mkldnn.enabled
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


@pytest.mark.large  # starts subprocesses
@pytest.mark.parametrize("backend,width", [("torch", 8), ("tensorflow", 8), ("tensorflow", 4)])
def test_a_child_environment_gives_the_kernels_configure_chooses(backend, width):
    """What benchmarks hand their children equals what configure sets in a fresh process."""
    from avloc.runtime.configure import child_environment

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")
    }
    base["KERAS_BACKEND"] = backend
    planned = child_environment(base, backend, width)
    code = f"""
        import os
        import avloc.runtime as runtime
        runtime.configure(widths=[{width}])
        print(os.environ.get("ONEDNN_MAX_CPU_ISA"), os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=base, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = f"{planned.get('ONEDNN_MAX_CPU_ISA')} {planned.get('TF_ENABLE_ONEDNN_OPTS')}"
    assert result.stdout.strip() == expected
