"""Where a training step's time goes: torch operators of avloc's Keras task vs plain PyTorch.

Runs both on the torch backend in this process (the same kernels and oneDNN setting as
``train_step.py``'s ``keras-torch`` and ``torch`` variants), profiles ``--steps`` steps of each
with ``torch.profiler`` and prints the operators by self CPU time side by side, so the difference
between the two totals can be read off operator by operator. Times are operator self times in
seconds summed over the profiled steps; on a busy machine only their split is meaningful.

    KERAS_BACKEND=torch python3 -m benchmarks.profile_step --batch 8 --threads 1

On a GPU (``--device cuda``, ``--precision fp32|bf16``) it also times each step to its end
(``torch.cuda.synchronize``) and sums the GPU kernels' own time per step, so whether a variant is
bound by the GPU or by the host's Python and launches reads off one line: GPU busy % = kernel
time / wall time. A third variant, ``keras-torch-gpu-inputs``, feeds the Keras task a batch that
is already on the GPU (plain torch's batch always is), which isolates the host-to-device copy.

    KERAS_BACKEND=torch python3 -m benchmarks.profile_step --device cuda --batch 128 --steps 5
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

from benchmarks.environment import set_device, set_threads  # noqa: E402
from benchmarks.machine import machine_info, print_machine  # noqa: E402
from benchmarks.report import write_json  # noqa: E402


def _device_self_seconds(event) -> float:
    value = getattr(event, "self_device_time_total", None)
    if value is None:
        value = getattr(event, "self_cuda_time_total", 0.0)
    return value / 1e6


def wall_and_gpu(step, steps: int) -> dict[str, float]:
    """Wall ms per step (synchronised) and GPU kernel ms per step, over ``steps`` steps."""
    import time

    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / steps
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    from torch.autograd import DeviceType

    kernels = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    gpu = sum(_device_self_seconds(e) for e in kernels) / steps  # kernels and copies only
    return {"wall_ms": 1000 * wall, "gpu_kernel_ms": 1000 * gpu, "busy_pct": 100 * gpu / wall}


def profile(step, steps: int, by_shape: str | None = None):
    """Operator name -> (self CPU seconds, calls) over ``steps`` calls of ``step``; with
    ``by_shape``, also that operator's (self seconds, calls) per input-shape list."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=bool(by_shape)) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in prof.key_averages():
        totals[event.key][0] += event.self_cpu_time_total / 1e6
        totals[event.key][1] += event.count
    shapes: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    if by_shape:
        for event in prof.key_averages(group_by_input_shape=True):
            if event.key == by_shape:
                shapes[str(event.input_shapes)][0] += event.self_cpu_time_total / 1e6
                shapes[str(event.input_shapes)][1] += event.count
    return {k: (v[0], int(v[1])) for k, v in totals.items()}, shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width (64 = paper)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps of each")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0: default)")
    parser.add_argument("--top", type=int, default=25, help="operators listed")
    parser.add_argument(
        "--by-shape", metavar="OP", help="also list OP's input shapes (aten::copy_)"
    )
    parser.add_argument("--json", type=Path, help="also write the per-operator totals here")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args(argv)
    args.seed = 0

    set_threads(args.threads)
    set_device(args.device, args.width)  # the kernels train_step's variants run
    from benchmarks.train_step_build import build_keras, build_plain

    steps = {
        "keras-torch": build_keras("keras-torch", args)[0],
        "torch": build_plain("torch", args)[0],
    }
    if args.device == "cuda":
        steps["keras-torch-gpu-inputs"] = build_keras("keras-torch", args, inputs_on_device=True)[0]
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    if args.device == "cuda":
        print(f"GPU time per step: batch {args.batch}, {args.precision}, {args.steps} steps")
        heads = ("wall ms", "GPU kernel ms", "GPU busy %", "samples/s")
        print(f"{'variant':26} {heads[0]:>9} {heads[1]:>14} {heads[2]:>11} {heads[3]:>10}")
        for name, step in steps.items():
            t = wall_and_gpu(step, args.steps)
            rate = 1000 * args.batch / t["wall_ms"]
            print(
                f"{name:26} {t['wall_ms']:9.1f} {t['gpu_kernel_ms']:14.1f} "
                f"{t['busy_pct']:11.1f} {rate:10,.0f}"
            )
        print()
        steps.pop("keras-torch-gpu-inputs")
    profiles = {name: profile(step, args.steps, args.by_shape) for name, step in steps.items()}
    ops = {name: p[0] for name, p in profiles.items()}

    total = {name: sum(t for t, _ in o.values()) for name, o in ops.items()}
    keys = sorted(
        set(ops["keras-torch"]) | set(ops["torch"]),
        key=lambda k: -max(ops["keras-torch"].get(k, (0, 0))[0], ops["torch"].get(k, (0, 0))[0]),
    )
    print(
        f"torch operators, self CPU s over {args.steps} steps: batch {args.batch}, width "
        f"{args.width}, D {args.dim}, {args.image_size} px, threads {args.threads or 'default'}"
    )
    header = (
        f"{'operator':44} {'keras-torch':>11} {'calls':>6} {'torch':>8} {'calls':>6} {'diff':>7}"
    )
    print(header)
    print("-" * len(header))
    for key in keys[: args.top]:
        kt, kc = ops["keras-torch"].get(key, (0.0, 0))
        pt, pc = ops["torch"].get(key, (0.0, 0))
        print(f"{key[:44]:44} {kt:11.3f} {kc:6d} {pt:8.3f} {pc:6d} {kt - pt:+7.3f}")
    kt, pt = total["keras-torch"], total["torch"]
    print(f"{'total':44} {kt:11.3f} {'':6} {pt:8.3f} {'':6} {kt - pt:+7.3f}  ({kt / pt:.3f}x)")
    for name, (_, shapes) in profiles.items():
        if args.by_shape:
            print(f"\n{args.by_shape} in {name} by input shapes (self CPU s, calls):")
            for key, (seconds, calls) in sorted(shapes.items(), key=lambda kv: -kv[1][0])[:10]:
                print(f"{seconds:8.3f} {int(calls):6d}  {key[:120]}")
    info = machine_info()
    print_machine(info)
    if args.json:
        write_json(
            args.json, {"args": {**vars(args), "json": str(args.json)}, "machine": info, "ops": ops}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
