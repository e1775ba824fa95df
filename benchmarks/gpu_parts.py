"""The parts of ``gpu.py``'s run: child processes with time limits, and what they write back.

- :class:`Part`: one child process, its command, time limit, status, seconds and log file;
  :func:`run_parallel` runs several at once under one limit (the data's parallel parts);
- :func:`avloc_cli`, :func:`step_args`: the command lines of ``avloc`` and of
  ``benchmarks.train_step`` at the run's shapes (:data:`FULL`, or :data:`TINY` for a dry run);
- :func:`read_json`, :func:`step_rates`, :func:`epoch_rates`: the figures read back from a
  part's ``--json`` and from an ``avloc train`` run directory.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import logical_cpus
from benchmarks.processes import ROOT, benchmark_command

FULL = dict(width=64, dim=512, image_size=224, train_resize=246, clip_seconds=3.0)
TINY = dict(width=4, dim=16, image_size=32, train_resize=36, clip_seconds=0.5)


def shapes(args) -> dict:
    return TINY if args.dry_run else FULL


class Part:
    """One child process: its command, time limit, status, seconds and log file."""

    def __init__(self, name: str, command: list[str], limit: float, out: Path, env=None):
        self.name, self.command, self.limit, self.out = name, command, limit, out
        self.env = env
        self.status, self.seconds = "not run", 0.0

    @property
    def log(self) -> Path:
        return self.out / f"{self.name}.log"

    def run(self) -> bool:
        print(f"[{self.name}] {shlex.join(self.command)}", flush=True)
        start = time.perf_counter()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        with open(self.log, "w") as log:
            try:
                done = subprocess.run(
                    self.command,
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, self.limit),
                )
                self.status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
            except subprocess.TimeoutExpired:
                self.status = f"stopped at its limit of {self.limit:.0f} s"
        self.seconds = time.perf_counter() - start
        tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"[{self.name}] {self.status} in {self.seconds:.0f} s: {tail[0][:160]}", flush=True)
        return self.status == "ok"

    def record(self) -> dict:
        return {
            "command": shlex.join(self.command),
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "log": self.log.name,
        }


def run_parallel(parts: list[Part]) -> None:
    """Start every part at once, then wait for each until its limit, counted from that common
    start (as are its seconds), runs out."""
    start = time.perf_counter()
    procs = []
    for part in parts:  # in parallel: one process per part
        log = open(part.log, "w")
        procs.append((part, log, subprocess.Popen(part.command, cwd=ROOT, stdout=log,
                                                  stderr=subprocess.STDOUT)))  # fmt: skip
    for part, log, proc in procs:
        try:
            code = proc.wait(timeout=max(1.0, part.limit - (time.perf_counter() - start)))
            part.status = "ok" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            proc.kill()
            part.status = "stopped at its limit"
        log.close()
        part.seconds = time.perf_counter() - start


def avloc_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "avloc_cli.main", *args]


def step_args(args, batch: int, precision: str, variants: str, json_path: Path) -> list[str]:
    s = shapes(args)
    command = [
        "--device", args.device, "--batch", str(batch), "--precision", precision,
        "--width", str(s["width"]), "--dim", str(s["dim"]),
        "--image-size", str(s["image_size"]), "--clip-seconds", str(s["clip_seconds"]),
        "--stored-size", str(args.stored_size), "--steps", str(args.steps),
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--json", str(json_path),
    ]  # fmt: skip
    if variants:
        command += ["--variants", variants]
    return benchmark_command("train_step", *command)


def cores_for_workers() -> int:
    """Loader workers: the logical CPUs this process may use, less two (at least one)."""
    return max(1, logical_cpus() - 2)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_rates(result: dict | None) -> dict[str, float]:
    """variant -> median samples/s of a train_step.py JSON (variants that ran)."""
    rates = {}
    for name, entry in ((result or {}).get("variants") or {}).items():
        median = (entry.get("samples_per_s") or {}).get("median")
        if median:
            rates[name] = median
    return rates


def epoch_rates(run_dir: Path) -> list[dict[str, float]]:
    """Per epoch: samples/s and seconds from the run's ``timing.csv``, loss from ``log.csv``."""
    try:
        with open(run_dir / "timing.csv") as f:
            timing = list(csv.DictReader(f))
        with open(run_dir / "log.csv") as f:
            losses = {int(r["epoch"]): float(r["loss"]) for r in csv.DictReader(f)}
    except (OSError, KeyError, ValueError):
        return []
    return [
        {"epoch": int(r["epoch"]), "samples_per_s": float(r["samples_per_s"]),
         "seconds": float(r["seconds"]), "loss": losses.get(int(r["epoch"]), float("nan"))}
        for r in timing
    ]  # fmt: skip
