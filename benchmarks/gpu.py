"""One GPU run: train step, loader and end-to-end ``avloc train``, as one command of minutes.

    python3 -m benchmarks.gpu --out gpu-results          # on a machine with one GPU (~7 min)
    python3 -m benchmarks.gpu --out /tmp/gpu --dry-run    # the same pipeline, tiny, on CPU

Runs, each as a child process with a time limit of its own (a part that fails or runs out of
time is reported and the next part runs):

1. **Train step** (``benchmarks.train_step --device cuda``): the full EZ-VSL ResNet-18 pair (224 px,
   257x200 spectrogram, D 512, Adam) at batch 128 in fp32 and bf16 (the recipe's
   ``train.precision = "mixed_bfloat16"``; ``torch.autocast`` for plain torch): avloc's Keras
   task on torch and plain PyTorch (``--variants``), and the task fed the loader's on-device
   form (``keras-torch-preprocess``: uint8 frames, int16 PCM; ``data.preprocess_on_device``).
   Then bf16 ``keras-torch`` at doubling batches from 256 until one fails (out of memory) or
   ``--max-batch`` is reached: the largest batch that fits.
2. **Data**: ``avloc prepare synthetic`` writes ``--scenes`` training scenes at ``--stored-size``
   px in ``--parts`` parallel parts (seconds and scenes/s).
3. **Loader** (``benchmarks.loader --shards``): ``TrainBatches`` with the SSL-SaN inputs
   (images, audio and noise), preprocessed in the loader and in the on-device form, at batch 128,
   thread workers ``--loader-workers`` (default: 4, 8 and the machine's cores less two):
   samples/s.
4. **Heatmap video** (``benchmarks.video``): ``avloc localize VIDEO -o heat.mp4`` over a generated
   20 s clip with the full network, frames/s and multiple of real time.
5. **End to end**: ``avloc train recipes/sslsan.toml`` (full width, 224 px, batch 128,
   mixed_bfloat16) on those scenes for ``--epochs`` x ``--steps-per-epoch`` steps with the
   loader's thread workers = cores less two; samples/s of each epoch from the run's ``timing.csv``
   (``samples_per_s``: from the end of an epoch's first step to its last), compared with the
   bf16 batch-128 ``keras-torch-preprocess`` step alone. The run sets
   ``data.preprocess_on_device = true``, so the loader only reads rows and draws.
6. **Compiled steps** (``--extra-variants``, default ``keras-torch-jit`` and ``keras-jax-jit``,
   i.e. ``torch.compile`` and XLA), fp32 and bf16, each in parts of its own after the rest,
   while time is left: a slow compilation costs only that part.
   ``keras-tensorflow`` needs TensorFlow's GPU build, which avloc's Linux dependency
   (``tensorflow-cpu``) is not; add it here where that build is installed.

``--budget`` (seconds, default 450) bounds the whole run: the batch search and the later parts
are skipped or cut short as it runs out.

Writes ``OUT/gpu.json`` (every number, the machine, each part's command and status),
``OUT/gpu.md`` (a section for ``RESULTS.md``: commands, tables, ratios) and each part's log
``OUT/<part>.log``. ``--dry-run`` runs every part on the CPU at tiny shapes (seconds each), which
is what the test suite checks. Timing only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import machine_info, machine_lines
from benchmarks.processes import ROOT, benchmark_command
from benchmarks.timing import one_line

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
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 2
    return max(1, cores - 2)


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


def run(args) -> dict:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    s = shapes(args)
    batch = args.batch
    parts: list[Part] = []
    report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "parts": {}}

    def left() -> float:
        return args.budget - (time.perf_counter() - started)

    def add(part: Part) -> Part:
        parts.append(part)
        return part

    # 1. Train step at batch 128, fp32 and bf16.
    steps = {}
    for precision in ("fp32", "bf16"):
        path = out / f"train_step-{precision}-b{batch}.json"
        part = add(
            Part(
                f"train_step-{precision}-b{batch}",
                step_args(args, batch, precision, args.variants, path),
                min(args.part_limit, left()),
                out,
            )
        )
        part.run()
        steps[precision] = read_json(path)
    report["train_step"] = {p: step_rates(r) for p, r in steps.items()}

    # ... and the largest bf16 batch of keras-torch that fits, doubling from 2 x batch.
    largest = {"batch": batch, "samples_per_s": report["train_step"]["bf16"].get("keras-torch")}
    attempts = []
    trial = 2 * batch
    while trial <= args.max_batch and left() > args.reserve:
        path = out / f"train_step-bf16-b{trial}.json"
        part = add(
            Part(
                f"train_step-bf16-b{trial}",
                step_args(args, trial, "bf16", "keras-torch", path),
                min(args.part_limit, left() - args.reserve),
                out,
            )
        )
        ok = part.run()
        rate = step_rates(read_json(path)).get("keras-torch")
        attempts.append({"batch": trial, "status": part.status, "samples_per_s": rate})
        if not ok or not rate:
            break
        largest = {"batch": trial, "samples_per_s": rate}
        trial *= 2
    report["largest_batch"] = {"fits": largest, "attempts": attempts}

    # 2. Data for the loader and the end-to-end run.
    work = args.work or out
    data = work / "data"
    parts_n = max(1, args.parts)
    prepare = [
        Part(
            f"prepare-{i + 1}-of-{parts_n}",
            avloc_cli(
                "prepare", "synthetic", "--out", str(data), "--train", str(args.scenes),
                "--test", "0", "--image-size", str(args.stored_size), "--shard-size",
                str(args.shard_size), "--part", f"{i + 1}/{parts_n}",
            ),
            min(args.part_limit, left()),
            out,
        )
        for i in range(parts_n)
    ]  # fmt: skip
    start = time.perf_counter()
    procs = []
    for part in prepare:  # in parallel: one process per part
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
    parts.extend(prepare)
    seconds = time.perf_counter() - start
    prepared = all(p.status == "ok" for p in prepare)
    report["prepare"] = {
        "scenes": args.scenes, "stored_size": args.stored_size, "parts": parts_n,
        "seconds": round(seconds, 1), "scenes_per_s": args.scenes / seconds if prepared else None,
        "status": "ok" if prepared else "; ".join(p.status for p in prepare),
    }  # fmt: skip
    print(f"[prepare] {report['prepare']['status']}: {args.scenes} scenes in {seconds:.1f} s")

    # 3. Loader with thread workers.
    workers = args.loader_workers or f"4,8,{cores_for_workers()}"
    loader_json = out / "loader.json"
    if prepared and left() > args.reserve:
        add(
            Part(
                "loader",
                benchmark_command(
                    "loader", "--shards", str(data / "train"), "--input-size",
                    str(s["image_size"]), "--train-resize", str(s["train_resize"]),
                    "--stored-size", str(args.stored_size), "--batch", str(batch),
                    "--batches", str(args.loader_batches), "--repeats", "2", "--workers",
                    workers, "--modes", "threads", "--noise", "on", "--inputs", "loader,device",
                    "--piece-samples", "16",
                    "--json", str(loader_json),
                ),
                min(args.part_limit, left() - args.reserve),
                out,
            )
        ).run()  # fmt: skip
    loader = read_json(loader_json) or {}
    report["loader"] = {
        name: entry.get("steady_samples_per_s", {}).get("median")
        for name, entry in (loader.get("configurations") or {}).items()
    }

    # 4. Heatmap videos (avloc localize VIDEO -o heat.mp4) against real time.
    video_json = out / "video.json"
    video_args = (
        ["--model", "tiny", "--seconds", "1", "--size", "64x48", "--batch-sizes", "4"]
        if args.dry_run
        else ["--model", "full", "--seconds", "20", "--batch-sizes", "16,64"]
    )
    if left() > args.reserve:
        add(
            Part(
                "video",
                benchmark_command(
                    "video", *video_args, "--device", args.device, "--json", str(video_json)
                ),
                min(args.part_limit, left() - args.reserve),
                out,
            )
        ).run()
    report["video"] = (read_json(video_json) or {}).get("results", [])

    # 5. End to end: avloc train on the prepared scenes.
    run_dir = work / "run"
    e2e_workers = cores_for_workers()
    sets = [
        f'data.train="{data / "train"}"', 'data.test=""', f"data.workers={e2e_workers}",
        f"data.image_size={s['image_size']}", f"data.train_resize={s['train_resize']}",
        f"model.visual.width={s['width']}", f"model.audio.width={s['width']}",
        f"model.embed_dim={s['dim']}", f"train.batch_size={batch}",
        f"train.epochs={args.epochs}", f"train.steps_per_epoch={args.steps_per_epoch}",
        'train.precision="mixed_bfloat16"', "train.tensorboard=false",
        "train.backup_every_steps=100000", f"eval.calibration_samples={batch}",
        "data.preprocess_on_device=true",
    ]  # fmt: skip
    env = {"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {}
    if prepared and left() > 10:
        add(
            Part(
                "train",
                avloc_cli(
                    "train",
                    "recipes/sslsan.toml",
                    "--run-dir",
                    str(run_dir),
                    *[a for v in sets for a in ("--set", v)],
                ),
                left() - 5,
                out,
                env=env,
            )
        ).run()
    epochs = epoch_rates(run_dir)
    steady = [e["samples_per_s"] for e in epochs[1:]] or [e["samples_per_s"] for e in epochs]
    e2e = sorted(steady)[len(steady) // 2] if steady else None
    alone = report["train_step"]["bf16"].get("keras-torch-preprocess")
    report["end_to_end"] = {
        "workers": e2e_workers,
        "epochs": epochs,
        "samples_per_s": e2e,
        "step_alone_samples_per_s": alone,
        "ratio_to_step_alone": e2e / alone if e2e and alone else None,
    }
    # 6. Compiled variants, last, each in parts of its own: a slow compilation costs only it.
    extra = [v.strip() for v in args.extra_variants.split(",") if v.strip()]
    report["train_step_extra"] = {}
    for variant in extra:
        for precision in ("fp32", "bf16"):
            if left() < 60:
                break
            path = out / f"train_step-{variant}-{precision}-b{batch}.json"
            add(
                Part(
                    f"train_step-{variant}-{precision}-b{batch}",
                    step_args(args, batch, precision, variant, path),
                    min(args.part_limit, left() - 10),
                    out,
                )
            ).run()
            rates = step_rates(read_json(path))
            report["train_step_extra"].setdefault(precision, {}).update(rates)

    report["parts"] = {p.name: p.record() for p in parts}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine_info()
    return report


def fmt_rate(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) and value else "-"


def markdown(report: dict, args) -> str:
    s, b = shapes(args), args.batch
    lines = [
        f"### GPU: one run of `benchmarks.gpu` ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python3 -m benchmarks.gpu {' '.join(args.argv)}` ({report['seconds']:.0f} s)",
        "",
        f"Train step (EZ-VSL ResNet-18 pair, width {s['width']}, {s['image_size']} px, "
        f"{s['clip_seconds']:g} s audio, D {s['dim']}, Adam), samples/s ("
        "--extra-variants in the last rows: timed in parts of their own, after the rest):",
        "",
        f"| variant | fp32, batch {b} | bf16, batch {b} |",
        "| --- | --- | --- |",
    ]
    for table in (report["train_step"], report.get("train_step_extra") or {}):
        names = sorted(set(table.get("fp32", {})) | set(table.get("bf16", {})))
        for name in names:
            fp32 = table.get("fp32", {}).get(name)
            bf16 = table.get("bf16", {}).get(name)
            lines.append(f"| {name} | {fmt_rate(fp32)} | {fmt_rate(bf16)} |")
    big = report["largest_batch"]
    lines += [
        "",
        f"Largest bf16 batch of `keras-torch` that ran: {big['fits']['batch']} "
        f"({fmt_rate(big['fits']['samples_per_s'])} samples/s); tried: "
        + (", ".join(f"{a['batch']} ({a['status']})" for a in big["attempts"]) or "none"),
        "",
        f"Data: {report['prepare']['scenes']} synthetic scenes at "
        f"{report['prepare']['stored_size']} px in {report['prepare']['seconds']} s "
        f"({report['prepare']['parts']} parallel parts).",
        "",
        f"Loader (`TrainBatches`, SSL-SaN inputs, batch {b}), steady samples/s:",
        "",
        "| configuration | samples/s |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {fmt_rate(v)} |" for name, v in report["loader"].items()]
    lines += [
        "",
        "Heatmap video (`benchmarks.video`: decode, maps, draw, encode; 10 output frames/s):",
        "",
        "| engine | batch | frames/s | x real time |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {v['engine']} | {v['batch_size']} | {v['frames_per_s']:.1f} | {v['x_real_time']:.2f} |"
        for v in report.get("video", [])
    ]
    e2e = report["end_to_end"]
    ratio = e2e["ratio_to_step_alone"]
    lines += [
        "",
        f"End to end (`avloc train recipes/sslsan.toml`, bf16, batch {b}, {e2e['workers']} "
        f"loader threads, {args.steps_per_epoch} steps per epoch), per epoch:",
        "",
        "| epoch | samples/s | seconds | loss |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {e['epoch']} | {fmt_rate(e['samples_per_s'])} | {e['seconds']:.1f} | {e['loss']:.3f} |"
        for e in e2e["epochs"]
    ]
    lines += [
        "",
        f"End to end {fmt_rate(e2e['samples_per_s'])} samples/s (median of the epochs after the "
        f"first) vs the step alone {fmt_rate(e2e['step_alone_samples_per_s'])}: "
        + (f"{ratio:.2f}x" if ratio else "-"),
        "",
        "Parts: "
        + "; ".join(
            f"{n} {p['status']} ({p['seconds']:.0f} s)" for n, p in report["parts"].items()
        ),
        "",
        "```",
        *machine_lines(report["machine"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu.json, gpu.md, logs")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU")
    parser.add_argument("--batch", type=int, default=None, help="default 128 (dry run 4)")
    parser.add_argument("--max-batch", type=int, default=None, help="default 1024 (dry run 8)")
    parser.add_argument("--variants", default=None, help="train_step.py variants")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=None, help="default 4096 (dry run 32)")
    parser.add_argument("--stored-size", type=int, default=None, help="default 256 (dry run 40)")
    parser.add_argument("--shard-size", type=int, default=512)
    parser.add_argument("--parts", type=int, default=None, help="default: cores less two")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the scenes and the run (default OUT)"
    )
    parser.add_argument("--loader-workers", default="", help="default 4,8,cores-2 (dry run 1,2)")
    parser.add_argument("--loader-batches", type=int, default=None, help="default 40 (dry 2)")
    parser.add_argument(
        "--extra-variants",
        default="keras-torch-jit,keras-jax-jit",
        help="train_step.py variants timed last, in parts of their own, if time is left",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default 100 (dry 2)")
    parser.add_argument("--budget", type=float, default=450, help="seconds for everything")
    parser.add_argument("--part-limit", type=float, default=150, help="seconds per part at most")
    parser.add_argument("--reserve", type=float, default=120, help="seconds kept for the end")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    dry = args.dry_run
    args.device = "cpu" if dry else "cuda"
    defaults = dict(
        batch=(4, 128), max_batch=(8, 1024), steps=(1, 10), scenes=(32, 4096),
        stored_size=(40, 256), loader_batches=(2, 40), steps_per_epoch=(2, 100),
    )  # fmt: skip
    for key, (tiny, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if dry else full)
    if args.variants is None:
        args.variants = "torch,keras-torch,keras-torch-preprocess"
    if dry and not args.loader_workers:
        args.loader_workers = "1,2"
    if args.parts is None:
        args.parts = 2 if dry else cores_for_workers()
    if dry:
        args.warmup, args.repeats = 1, 1
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("gpu.py: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"gpu.py: error: {one_line(exc)}", file=sys.stderr)
        return 1
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2))
    text = markdown(report, args)
    (args.out / "gpu.md").write_text(text)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
