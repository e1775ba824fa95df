"""Shared pieces of the benchmarks: machine info, interleaved timing, tables, FLOPs, workers.

Nothing here imports a deep-learning framework at module level, so a benchmark can import it
before it has set the thread and device environment variables the frameworks read at import.

- :func:`machine_info` / :func:`machine_lines`: CPU model, cores, RAM, GPU, load average and the
  versions of python, numpy, keras, torch, tensorflow, jax (read from the installed package
  metadata, without importing them).
- :func:`alternate`: run the compared variants in interleaved rounds (A B C A B C ...), so slow
  drifts of a shared machine hit every variant alike; :func:`summarize` gives medians and
  :func:`paired_ratio` the median of the per-round ratios to a reference variant.
- :func:`print_table`: a plain-text table.
- :func:`ezvsl_forward_flops`: analytic forward FLOPs of the ResNet-18 audio-visual pair.
- :func:`cpu_fp32_peak`: an estimated FP32 peak of this CPU from its vector-instruction flags.
- :class:`Worker` / :func:`serve`: a persistent child process answering JSON requests, for
  benchmarks that run each framework in its own process.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------
# Machine information


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _lscpu() -> dict[str, str]:
    if not shutil.which("lscpu"):
        return {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def cpu_cores() -> int:
    """Physical cores this process may use (logical CPUs / threads per core)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:
        logical = os.cpu_count() or 1
    try:
        per_core = int(_lscpu().get("Thread(s) per core", "1"))
    except ValueError:
        per_core = 1
    return max(1, logical // max(1, per_core))


def machine_info() -> dict[str, Any]:
    """CPU, memory, GPU, load and software versions of this machine (no framework import)."""
    cpu = _cpuinfo()
    lscpu = _lscpu()
    flags = set(cpu.get("flags", lscpu.get("Flags", "")).split())
    vector = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    mem_kb = re.search(r"MemTotal:\s+(\d+)", _read("/proc/meminfo"))
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:
        logical = os.cpu_count()
    info = {
        "cpu_model": cpu.get("model name") or lscpu.get("Model name") or platform.processor(),
        "logical_cpus": logical,
        "physical_cores": cpu_cores(),
        "cpu_mhz": cpu.get("cpu MHz") or lscpu.get("CPU max MHz") or "",
        "vector_flags": vector,
        "ram_gib": round(int(mem_kb.group(1)) / 2**20, 1) if mem_kb else None,
        "gpus": _gpus(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            "avloc": _version("avloc"),
            "numpy": _version("numpy"),
            "keras": _version("keras"),
            "torch": _version("torch"),
            "tensorflow": _version("tensorflow", "tensorflow-cpu"),
            "jax": _version("jax"),
            "jaxlib": _version("jaxlib"),
        },
        "env": {
            k: os.environ[k]
            for k in (
                "KERAS_BACKEND",
                "OMP_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS",
                "XLA_FLAGS",
                "CUDA_VISIBLE_DEVICES",
                "ONEDNN_MAX_CPU_ISA",
                "TF_ENABLE_ONEDNN_OPTS",
            )
            if k in os.environ
        },
    }
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """``info`` as a few human-readable lines."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    env = " ".join(f"{k}={v}" for k, v in info["env"].items())
    load = " ".join(f"{x:g}" for x in info["load_average"])
    lines = [
        f"machine: {info['cpu_model']}, {info['physical_cores']} cores "
        f"({info['logical_cpus']} logical), {info['cpu_mhz']} MHz, "
        f"{' '.join(info['vector_flags']) or 'no AVX2'}, RAM {info['ram_gib']} GiB",
        f"gpu: {'; '.join(info['gpus']) or 'none'}",
        f"software: python {info['python']}, {versions}; {info['os']}",
        f"load average at start: {load or 'unknown'}" + (f"; env: {env}" if env else ""),
    ]
    return lines


def print_machine(info: dict[str, Any]) -> None:
    print()
    for line in machine_lines(info):
        print(line)


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results: {path}")


# --------------------------------------------------------------------------------------------
# Thread and device environment (set before any framework is imported)


def set_threads(threads: int) -> None:
    """Intra-op threads of torch, TensorFlow and (for 1) JAX/XLA; 0 leaves the defaults."""
    if threads <= 0:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if extra not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()


#: The kernel variables the user exported (kept everywhere); avloc's rule sets the others.
EXPORTED_KERNEL_VARIABLES = tuple(
    name for name in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS") if name in os.environ
)


def child_onednn_env(env: dict[str, str], backend: str, width: int) -> dict[str, str]:
    """``env`` for a child process of ``backend`` whose networks are ``width`` wide, with the
    kernels ``avloc train`` chooses (:func:`avloc.runtime.configure.child_environment`)."""
    from avloc.runtime.configure import child_environment

    return child_environment(env, backend, width, EXPORTED_KERNEL_VARIABLES)


def set_device(device: str, width: int | None = None) -> None:
    """``cpu`` hides every GPU from every framework; ``cuda`` keeps them, memory on demand.

    ``width`` (the networks' narrowest first-stage width) configures the runtime now, as
    ``avloc train`` does before it builds anything (:func:`avloc.runtime.configure`), so plain
    torch measured before any avloc network is built runs the same kernels.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if width is not None:
        from avloc.runtime import configure

        configure(widths=[width])
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:  # several frameworks share one GPU: none may grab all of its memory at start
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"


# --------------------------------------------------------------------------------------------
# Interleaved timing


def alternate(
    runners: dict[str, Callable[[], float]],
    repeats: int,
    *,
    gap: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[float | None]], dict[str, str]]:
    """Call every runner once per round, in order, for ``repeats`` rounds (A B A B ...).

    Each runner returns one measurement (e.g. samples/s). A runner that raises is reported in
    the second dict (name -> message) and skipped in later rounds; its missing rounds hold
    ``None`` so the rounds of all variants stay aligned. ``gap`` seconds of sleep separate two
    runners (lets the previous one's spinning threads go idle).
    """
    values: dict[str, list[float | None]] = {name: [] for name in runners}
    failed: dict[str, str] = {}
    for round_index in range(repeats):
        for name, runner in runners.items():
            if name in failed:
                values[name].append(None)
                continue
            if gap:
                time.sleep(gap)
            try:
                value = float(runner())
            except Exception as exc:  # reported in the table
                failed[name] = one_line(exc)
                values[name].append(None)
                continue
            values[name].append(value)
            if progress:
                progress(f"round {round_index + 1}/{repeats} {name}: {value:.4g}")
    return values, failed


def summarize(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median, min, max and count of the non-missing values."""
    clean = [v for v in values if v is not None]
    if not clean:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
    }


def paired_ratio(values: Sequence[float | None], reference: Sequence[float | None]):
    """Median over rounds of ``value / reference`` measured in the same round (None if none)."""
    ratios = [
        v / r for v, r in zip(values, reference, strict=False) if v is not None and r and r > 0
    ]
    return statistics.median(ratios) if ratios else None


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Tables


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits (no exponent below 1e6), '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if value == 0 or abs(value) >= 10 ** (digits - 1):
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 else f"{value:.2e}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned first column, right-aligned others, a rule under the headers."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(items):
        first = f"{items[0]:<{widths[0]}}"
        rest = [f"{c:>{w}}" for c, w in zip(items[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print(line(list(headers)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in cells:
        print(line(row))


# --------------------------------------------------------------------------------------------
# Analytic FLOPs of the network (2 x multiply-accumulates of convolutions and matmuls)


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def resnet18_flops(
    in_channels: int,
    height: int,
    width_px: int,
    width: int = 64,
    blocks: Sequence[int] = (2, 2, 2, 2),
    last_stride: int = 2,
    stem_pool: bool = True,
) -> tuple[int, tuple[int, int, int]]:
    """Forward FLOPs of one sample through the ResNet trunk, and its output ``(C, h, w)``.

    Counts convolutions only (2 x MACs); batch norm, ReLU, pooling and additions are left out
    (they are memory-bound and well under 1 % of the FLOPs).
    """

    def conv(cin, cout, k, s, p, h, w):
        oh, ow = _out(h, k, s, p), _out(w, k, s, p)
        return 2 * cin * k * k * cout * oh * ow, oh, ow

    flops, h, w = conv(in_channels, width, 7, 2, 3, height, width_px)
    if stem_pool:
        h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    cin = width
    for stage, count in enumerate(blocks):
        cout = width * 2**stage
        for index in range(count):
            stride = 1
            if index == 0 and stage > 0:
                stride = last_stride if stage == len(blocks) - 1 else 2
            f1, oh, ow = conv(cin, cout, 3, stride, 1, h, w)
            f2, _, _ = conv(cout, cout, 3, 1, 1, oh, ow)
            flops += f1 + f2
            if stride != 1 or cin != cout:
                flops += conv(cin, cout, 1, stride, 0, h, w)[0]
            cin, h, w = cout, oh, ow
    return flops, (cin, h, w)


def ezvsl_forward_flops(
    batch: int, image_size: int, audio_shape: tuple[int, int], width: int = 64, dim: int = 512
) -> dict[str, int]:
    """Forward FLOPs of one EZ-VSL step on a batch: both trunks, projections and the MIL loss.

    The loss term is the all-pairs similarity ``(B, h, w, D) x (B, D)``: ``2 B^2 h w D``.
    Training is about 3x the forward pass (backward = gradients w.r.t. activations + weights).
    """
    visual, (vc, vh, vw) = resnet18_flops(3, image_size, image_size, width)
    audio, (ac, _, _) = resnet18_flops(1, *audio_shape, width)
    img_proj = 2 * vc * dim * vh * vw
    aud_proj = 2 * ac * dim
    per_sample = visual + audio + img_proj + aud_proj
    loss = 2 * batch * batch * vh * vw * dim
    forward = batch * per_sample + loss
    return {
        "visual_per_sample": visual,
        "audio_per_sample": audio,
        "img_proj_per_sample": img_proj,
        "aud_proj_per_sample": aud_proj,
        "loss_per_batch": loss,
        "forward_per_batch": forward,
        "train_per_batch": 3 * forward,
    }


# --------------------------------------------------------------------------------------------
# Peak throughput estimates


def cpu_fp32_peak(cores: int | None = None, fma_units: int = 2) -> dict[str, Any]:
    """Estimated FP32 peak: cores x GHz x FMA units x FLOP per FMA instruction.

    FLOP per FMA instruction: AVX-512 32 (16 lanes x 2), AVX2+FMA 16. The clock is the highest
    one known (lscpu's max MHz, else /proc/cpuinfo's current MHz, else the model name's "@ GHz");
    ``fma_units`` (per core) is not visible in the flags: 2 on most server cores, 1 on some.
    Returns ``{"gflops": None, ...}`` when the vector width or the clock is not known.
    """
    cpu = _cpuinfo()
    lscpu = _lscpu()
    flags = set(cpu.get("flags", lscpu.get("Flags", "")).split())
    if "avx512f" in flags:
        isa, per_fma = "AVX-512", 32
    elif "avx2" in flags and "fma" in flags:
        isa, per_fma = "AVX2+FMA", 16
    else:
        isa, per_fma = "unknown", None
    mhz = None
    for text in (lscpu.get("CPU max MHz"), cpu.get("cpu MHz")):
        try:
            mhz = float(text) if text else None
        except ValueError:
            mhz = None
        if mhz:
            break
    if not mhz:
        found = re.search(r"@\s*([\d.]+)\s*GHz", cpu.get("model name", ""))
        mhz = float(found.group(1)) * 1000 if found else None
    cores = cores or cpu_cores()
    gflops = cores * mhz / 1000 * fma_units * per_fma if (mhz and per_fma) else None
    return {
        "gflops": gflops,
        "cores": cores,
        "ghz": mhz / 1000 if mhz else None,
        "isa": isa,
        "fma_units": fma_units,
        "flop_per_cycle_per_core": fma_units * per_fma if per_fma else None,
        "note": "estimate: cores x GHz x FMA units x FLOP/FMA; turbo and AVX-512 clocks differ",
    }


# FP32 lanes per SM by compute capability, and dense BF16 tensor-core FLOP/clock/SM (estimates).
_CUDA_FP32_LANES = {
    (6, 0): 64,
    (6, 1): 128,
    (7, 0): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (12, 0): 128,
}
_CUDA_BF16_TENSOR = {(8, 0): 2048, (9, 0): 4096, (10, 0): 8192}


def cuda_peak(props) -> dict[str, Any]:
    """Estimated FP32 (and dense BF16 tensor-core) peak from ``torch.cuda.get_device_properties``.

    SMs x FP32 lanes per SM x 2 x clock; ``clock_rate`` (kHz) is the maximum boost clock.
    """
    cc = (int(props.major), int(props.minor))
    khz = getattr(props, "clock_rate", None)
    ghz = khz / 1e6 if khz else None
    sms = int(props.multi_processor_count)
    lanes = _CUDA_FP32_LANES.get(cc)
    tensor = _CUDA_BF16_TENSOR.get(cc)
    return {
        "gpu": props.name,
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "sms": sms,
        "ghz": ghz,
        "gflops": sms * lanes * 2 * ghz if (lanes and ghz) else None,
        "bf16_gflops": sms * tensor * ghz if (tensor and ghz) else None,
        "note": "estimate: SMs x FP32 lanes x 2 x max clock (BF16: dense tensor cores)",
    }


# --------------------------------------------------------------------------------------------
# Persistent child processes


class WorkerDied(RuntimeError):
    pass


class Worker:
    """A child process that answers one JSON line per JSON request (see :func:`serve`).

    Its stderr goes to a temporary file; when it dies, the error names its last lines.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.log = tempfile.TemporaryFile(mode="w+", prefix="avloc-bench-")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait()
            raise WorkerDied(
                f"{self.name} process died (exit {self.proc.returncode}): {self.tail()}"
            )
        return json.loads(line)

    def tail(self, lines: int = 3) -> str:
        self.log.seek(0)
        text = [t for t in self.log.read().splitlines() if t.strip()]
        return " | ".join(text[-lines:]) or "no output"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The child side of :class:`Worker`: answer requests from stdin until ``{"cmd": "quit"}``.

    The replies go to the original stdout; anything else written to stdout (framework chatter)
    is sent to stderr so that it cannot break the protocol.
    """
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("cmd") == "quit":
            break
        try:
            reply = handle(message)
        except Exception as exc:  # sent back to the parent
            reply = {"error": one_line(exc)}
        channel.write(json.dumps(reply, default=str) + "\n")
        channel.flush()
