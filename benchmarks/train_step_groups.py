"""The processes that run ``train_step.py``'s variants, and which variants a command runs.

A process group is one process with one Keras backend; the variants of the current
``KERAS_BACKEND`` run in this process (:class:`LocalGroup`), every other group in a child
(:class:`benchmarks.processes.Worker` running ``train_step --worker GROUP``). In either,
a :class:`StepGroup` builds its variants once, warms them up and then times them on request.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from benchmarks.environment import child_onednn_env
from benchmarks.machine import cuda_peak
from benchmarks.processes import Worker, WorkerDied, benchmark_command
from benchmarks.report import print_progress
from benchmarks.timing import alternate, one_line
from benchmarks.train_step_build import build_keras, build_plain

#: variant -> (process group, kind); a group is one process (its name is its Keras backend).
VARIANTS = {
    "torch": ("torch", "plain"),
    "torch-native": ("torch", "plain"),
    "torch-avx512": ("torch-avx512", "plain"),
    "keras-torch": ("torch", "keras"),
    "keras-torch-graph": ("torch", "keras"),
    "keras-torch-avx512": ("torch-avx512", "keras"),
    "torch-avx2": ("torch-avx2", "plain"),
    "keras-torch-avx2": ("torch-avx2", "keras"),
    "keras-torch-preprocess": ("torch", "keras"),
    "keras-torch-jit": ("torch", "keras"),
    "keras-tensorflow-preprocess": ("tensorflow", "keras"),
    "keras-tensorflow": ("tensorflow", "keras"),
    "keras-tensorflow-xla": ("tensorflow", "keras"),
    "keras-tensorflow-own": ("tensorflow-own", "keras"),
    "keras-jax": ("jax", "keras"),
    "keras-jax-jit": ("jax", "keras"),
}
GROUP_BACKEND = {
    "torch": "torch",
    "torch-avx512": "torch",
    "torch-avx2": "torch",
    "tensorflow": "tensorflow",
    "tensorflow-own": "tensorflow",
    "jax": "jax",
}
REFERENCE = "torch"


class StepGroup:
    """The variants of one process: built once, then timed on request."""

    def __init__(self, args):
        self.args = args
        self.steps = {}

    def handle(self, message: dict) -> dict:
        if message["cmd"] == "setup":
            return self.setup(message["variants"])
        if message["cmd"] == "run":
            step = self.steps[message["variant"]]
            start = time.perf_counter()
            for _ in range(message["steps"]):
                step()
            return {"seconds": time.perf_counter() - start}
        raise ValueError(f"unknown request {message!r}")

    def setup(self, names: list[str]) -> dict:
        out, peak = {}, None
        for name in names:
            start = time.perf_counter()
            try:
                build = build_plain if VARIANTS[name][1] == "plain" else build_keras
                step, info = build(name, self.args)
                for _ in range(max(1, self.args.warmup)):
                    step()
                info["setup_s"] = round(time.perf_counter() - start, 2)
                self.steps[name] = step
                out[name] = info
            except Exception as exc:  # one variant failing leaves the others running
                out[name] = {"error": one_line(exc)}
        if self.args.device == "cuda" and "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                peak = cuda_peak(torch.cuda.get_device_properties(0))
        return {"variants": out, "peak": peak}


class LocalGroup:
    """The group of this process's backend, answering like a
    :class:`benchmarks.processes.Worker`."""

    def __init__(self, name: str, args):
        self.name = name
        self.group = StepGroup(args)

    def request(self, message: dict) -> dict:
        return self.group.handle(message)

    def close(self) -> None:
        pass


def resolve_variants(args) -> list[str]:
    installed = {
        "torch": importlib.util.find_spec("torch") is not None,
        "tensorflow": importlib.util.find_spec("tensorflow") is not None,
        "jax": importlib.util.find_spec("jax") is not None,
    }
    if args.variants:
        names = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    else:
        names = ["torch", "keras-torch", "keras-tensorflow", "keras-jax", "keras-jax-jit"]
        names = [n for n in names if installed[GROUP_BACKEND[VARIANTS[n][0]]]]
    if args.plain_cpu_kernels:
        at = names.index("torch") + 1 if "torch" in names else 0
        names[at:at] = [n for n in ("torch-native", "torch-avx512") if n not in names]
    return names


def start_groups(args, names: list[str], cli: list[str]) -> tuple[dict, dict]:
    """Start every process group (this process's backend locally) and build its variants."""
    local_backend = os.environ["KERAS_BACKEND"]
    groups, setup = {}, {}
    for name in names:
        group = VARIANTS[name][0]
        groups.setdefault(group, []).append(name)
    handles = {}
    for group, members in groups.items():
        backend = GROUP_BACKEND[group]
        print(f"building {', '.join(members)} ({group} process) ...", flush=True)
        if group == local_backend:
            handle = LocalGroup(group, args)
        else:
            env = child_onednn_env({**os.environ, "KERAS_BACKEND": backend}, backend, args.width)
            if group == "torch-avx512":  # oneDNN with every instruction set the CPU has
                env["ONEDNN_MAX_CPU_ISA"] = "DEFAULT"
            elif group == "torch-avx2":  # oneDNN capped as avloc capped it for every network
                env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
            elif group == "tensorflow-own":  # TensorFlow's own kernels (avloc before 2026-12-05)
                env["TF_ENABLE_ONEDNN_OPTS"] = "0"
            handle = Worker(group, benchmark_command("train_step", "--worker", group, *cli), env)
        handles[group] = handle
        try:
            reply = handle.request({"cmd": "setup", "variants": members})
        except WorkerDied as exc:
            reply = {"variants": {m: {"error": one_line(str(exc))} for m in members}}
        if "error" in reply:
            reply = {"variants": {m: {"error": reply["error"]} for m in members}}
        for member in members:
            info = reply["variants"].get(member, {"error": "not built"})
            info["process"] = "this" if group == local_backend else f"child ({backend})"
            info["group"] = group
            setup[member] = info
        if reply.get("peak"):
            setup["_peak"] = reply["peak"]
    return handles, setup


def time_variants(args, names: list[str], handles: dict, setup: dict) -> tuple[dict, dict]:
    """Time every built variant in interleaved rounds, each round ``--steps`` steps in its
    process; returns :func:`benchmarks.timing.alternate`'s samples/s per round and failures."""
    runners = {}
    for name in names:
        if "error" in setup[name]:
            continue
        handle = handles[setup[name]["group"]]

        def run(handle=handle, name=name):
            reply = handle.request({"cmd": "run", "variant": name, "steps": args.steps})
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return args.steps * args.batch / reply["seconds"]

        runners[name] = run
    print(
        f"timing {len(runners)} variants: {args.repeats} rounds x {args.steps} steps ...",
        flush=True,
    )
    return alternate(runners, args.repeats, gap=0.2, progress=print_progress)
