"""The machine a benchmark ran on, and its estimated peak throughput.

Nothing here imports a deep-learning framework: versions are read from the installed package
metadata, the CPU from ``/proc/cpuinfo`` and ``lscpu``, the GPUs from ``nvidia-smi``.

- :func:`machine_info` / :func:`machine_lines` / :func:`print_machine`: CPU model, cores, RAM,
  GPU, load average, the versions of python, numpy, keras, torch, tensorflow, jax and the thread
  and kernel variables set;
- :func:`cpu_cores`: the physical cores this process may use;
- :func:`cpu_fp32_peak` / :func:`cuda_peak`: estimated FP32 (and BF16 tensor-core) peaks, what
  achieved GFLOP/s are compared with.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

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


def logical_cpus() -> int:
    """Logical CPUs this process may use (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_cores() -> int:
    """Physical cores this process may use (logical CPUs / threads per core)."""
    logical = logical_cpus()
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
    info = {
        "cpu_model": cpu.get("model name") or lscpu.get("Model name") or platform.processor(),
        "logical_cpus": logical_cpus(),
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
