"""Where TensorFlow's training step goes: its operators, with its own kernels and with oneDNN.

Builds ``train_step.py``'s ``keras-tensorflow`` variant (avloc's Keras task, EZ-VSL ResNet-18
pair, same shapes and options) in one child process per ``--onednn`` setting
(``TF_ENABLE_ONEDNN_OPTS=0``: TensorFlow's own kernels, avloc's default; ``1``: oneDNN's kernels
and graph rewrites), times ``--steps`` steps, then profiles as many with TensorFlow's profiler
and sums each operator type's self time (``framework_op_stats``). Prints the operator types side
by side, in seconds per step, with the wall time per step of each setting, so the difference
between the settings (and, against ``profile_step.py``'s torch table, between backends) reads
off operator by operator.

    python3 -m benchmarks.profile_tf_step --batch 8 --threads 1 --json profile_tf.json

Options shared with ``train_step.py``: ``--batch``, ``--width``, ``--dim``, ``--image-size``,
``--clip-seconds``, ``--threads``, ``--variant`` (``keras-tensorflow`` or
``keras-tensorflow-xla``). Timing only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.environment import set_threads
from benchmarks.machine import machine_info, print_machine
from benchmarks.processes import ROOT, benchmark_command
from benchmarks.report import write_json


def op_type_seconds(xplane: str) -> dict[str, dict[str, float]]:
    """Self seconds and occurrences per operator type of a profile (``framework_op_stats``)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data = plugin.xspace_to_tools_data([xplane], "framework_op_stats", {})
    table = json.loads(data[0] if isinstance(data, tuple) else data)
    table = table[0] if isinstance(table, list) else table
    ids = [c["id"] for c in table["cols"]]
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "calls": 0})
    for row in table["rows"]:
        values = dict(zip(ids, (cell.get("v") if cell else None for cell in row["c"]), strict=True))
        if values.get("host_or_device") not in ("Host", "Device", None):
            continue
        entry = totals[str(values["type"])]
        entry["seconds"] += float(values["total_self_time"] or 0.0) / 1e6
        entry["calls"] += int(values["occurrences"] or 0)
    return dict(totals)


def child(args) -> dict:
    """In a TensorFlow process: build, warm up, time and profile; return the figures."""
    import tensorflow as tf

    from benchmarks.train_step_build import build_keras

    step, info = build_keras(args.variant, args)
    for _ in range(max(1, args.warmup)):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - start) / args.steps
    with tempfile.TemporaryDirectory(prefix="avloc-tfprof-") as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            step()
        tf.profiler.experimental.stop()
        xplane = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
        ops = op_type_seconds(xplane)
    per_step = {k: {"seconds": v["seconds"] / args.steps, "calls": v["calls"] / args.steps}
                for k, v in ops.items()}  # fmt: skip
    return {"wall_s_per_step": wall, "ops_per_step": per_step, "info": info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--stored-size", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--variant", default="keras-tensorflow")
    parser.add_argument("--onednn", default="0,1", help="TF_ENABLE_ONEDNN_OPTS values, each run")
    parser.add_argument("--top", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device, args.precision = "cpu", "fp32"
    set_threads(args.threads)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if args.child_out:
        args.child_out.write_text(json.dumps(child(args)))
        return 0

    machine = machine_info()
    results = {}
    cli = list(sys.argv[1:] if argv is None else argv)
    for value in [v.strip() for v in args.onednn.split(",") if v.strip()]:
        name = f"onednn={value}"
        print(f"profiling {args.variant} with TF_ENABLE_ONEDNN_OPTS={value} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "child.json"
            env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_ENABLE_ONEDNN_OPTS=value)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            done = subprocess.run(
                benchmark_command("profile_tf_step", *cli, "--child-out", str(out)),
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                results[name] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            results[name] = json.loads(out.read_text())
    ok = {k: v for k, v in results.items() if "ops_per_step" in v}
    print()
    print(
        f"TensorFlow operator types, self s per step: {args.variant}, batch {args.batch}, "
        f"width {args.width}, D {args.dim}, {args.image_size} px, threads "
        f"{args.threads or 'default'}"
    )
    names = list(ok)
    types = sorted(
        {t for v in ok.values() for t in v["ops_per_step"]},
        key=lambda t: -max(v["ops_per_step"].get(t, {}).get("seconds", 0.0) for v in ok.values()),
    )
    header = f"{'operator type':36s}" + "".join(f"{n:>14s}{'calls':>7s}" for n in names)
    print(header)
    print("-" * len(header))
    for t in types[: args.top]:
        cells = ""
        for n in names:
            entry = ok[n]["ops_per_step"].get(t, {"seconds": 0.0, "calls": 0})
            cells += f"{entry['seconds']:14.3f}{entry['calls']:7.0f}"
        print(f"{t[:36]:36s}{cells}")
    print(f"{'sum of operator self times':36s}" + "".join(
        f"{sum(e['seconds'] for e in ok[n]['ops_per_step'].values()):14.3f}{'':7s}" for n in names
    ))  # fmt: skip
    print(f"{'wall time per step':36s}" + "".join(
        f"{ok[n]['wall_s_per_step']:14.3f}{'':7s}" for n in names
    ))  # fmt: skip
    for name, value in results.items():
        if "error" in value:
            print(f"{name}: failed: {value['error']}")
    print_machine(machine)
    write_json(args.json, {"settings": vars(args) | {"json": str(args.json)}, "machine": machine,
                           "results": results})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
