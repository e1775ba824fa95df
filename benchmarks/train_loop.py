"""End-to-end training speed: ``avloc train`` under settings compared in interleaved runs.

    python3 -m benchmarks.train_loop --recipe recipes/ezvsl_san.toml --json train_loop.json
    KERAS_BACKEND=tensorflow python3 -m benchmarks.train_loop --recipe recipes/quickstart.toml \
        --shards data/synthetic/train --compare TF_ENABLE_ONEDNN_OPTS=0,default

Writes ``--scenes`` synthetic training scenes at ``--stored-size`` px (or reads ``--shards``),
then runs ``avloc train RECIPE`` (a fresh process and run folder each time) under each setting
of ``--compare`` (default ``data.preprocess_on_device=false,data.preprocess_on_device=true``):
a recipe override (a dotted key), an environment variable (a name without dots) or
``default`` (neither), the settings taking turns over ``--repeats`` rounds, with ``--set``
overrides common to all (default: the recipe's own shapes). Each run trains ``--epochs``
epochs of ``--steps`` steps; its samples/s is the median over the epochs after the first of
``timing.csv``'s ``samples_per_s`` (from the end of an epoch's first step to its last: loader,
step and callbacks together, start-up excluded).
Reported: per setting the median over rounds (min-max beside it) and, per round, the ratio to
the first setting, whose median is the ratio column. Timing only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: The environment as the user started this script, before anything here imports avloc (which
#: sets variables of its own that the runs must choose for themselves).
START_ENV = dict(os.environ)

from benchmarks.gpu_parts import epoch_rates  # noqa: E402
from benchmarks.loader import make_shards  # noqa: E402
from benchmarks.machine import machine_info, print_machine  # noqa: E402
from benchmarks.processes import ROOT  # noqa: E402
from benchmarks.report import write_json  # noqa: E402


def run_once(args, shards: Path, setting: str, run_dir: Path) -> tuple[float | None, str]:
    env = dict(START_ENV, TF_CPP_MIN_LOG_LEVEL="3")
    name, _, value = setting.partition("=")
    compared = []
    if "." in name:
        compared = [setting]
    elif setting != "default":
        env[name] = value
    sets = [
        f'data.train="{shards}"', 'data.test=""', *compared, f"train.epochs={args.epochs}",
        f"train.steps_per_epoch={args.steps}",
        "train.tensorboard=false", "train.backup_every_steps=100000",
        "eval.calibration_samples=8", *args.set,
    ]  # fmt: skip
    command = [sys.executable, "-m", "avloc_cli.main", "train", str(args.recipe), "--run-dir",
               str(run_dir), *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["failed"])[-1]
    rates = [e["samples_per_s"] for e in epoch_rates(run_dir)[1:]]
    return (statistics.median(rates) if rates else None), "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "ezvsl_san.toml")
    parser.add_argument("--set", action="append", default=[], help="recipe override (repeat)")
    parser.add_argument(
        "--compare",
        default="data.preprocess_on_device=false,data.preprocess_on_device=true",
        help="comma list: recipe overrides, environment variables (NAME=VALUE) or default",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every setting")
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--stored-size", type=int, default=256)
    parser.add_argument("--shards", type=Path, help="train on these shards instead")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = [s.strip() for s in args.compare.split(",") if s.strip()]
    machine = machine_info()
    results: dict[str, list[float | None]] = {s: [] for s in settings}
    status: dict[str, list[str]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="avloc-loop-") as tmp:
        shards = args.shards
        if shards is None:
            make_shards(Path(tmp) / "data", args.scenes, args.stored_size, 128)
            shards = Path(tmp) / "data" / "train"
        for round_ in range(args.repeats):
            for setting in settings:
                run_dir = Path(tmp) / f"run-{settings.index(setting)}-{round_}"
                rate, state = run_once(args, shards, setting, run_dir)
                results[setting].append(rate)
                status[setting].append(state)
                shown = f"{rate:.3g}" if rate else state
                print(f"round {round_ + 1}/{args.repeats} {setting}: {shown}",
                      file=sys.stderr, flush=True)  # fmt: skip
    first = settings[0]
    print()
    print(
        f"avloc train {args.recipe.name} {' '.join(args.set)}: {args.epochs} epochs x "
        f"{args.steps} steps, {args.repeats} rounds; samples/s after the first epoch"
    )
    width = max(len(s) for s in settings) + 2
    header = f"{'setting':{width}s}{'samples/s':>11s}{'min-max':>16s}{'x first':>10s}"
    print(header)
    print("-" * len(header))
    summary = {}
    for setting in settings:
        rates = [r for r in results[setting] if r]
        ratios = [b / a for a, b in zip(results[first], results[setting], strict=True) if a and b]
        summary[setting] = {
            "median": statistics.median(rates) if rates else None,
            "rounds": results[setting],
            "ratio_to_first": statistics.median(ratios) if ratios else None,
            "status": status[setting],
        }
        if rates:
            span = f"{min(rates):.3g}-{max(rates):.3g}"
            ratio = summary[setting]["ratio_to_first"]
            median = summary[setting]["median"]
            print(f"{setting:{width}s}{median:11.3g}{span:>16s}{ratio:10.3f}")
        else:
            print(f"{setting:{width}s}  failed: {status[setting][-1]}")
    print_machine(machine)
    write_json(args.json, {"settings": {k: str(v) for k, v in vars(args).items()},
                           "machine": machine, "results": summary})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
