"""The stages of ``gpu.py``'s run, in order, each within what is left of ``--budget``.

:func:`run` runs them and returns the report (``gpu.json``): the train step at ``--batch`` in fp32
and bf16, the largest bf16 batch, the data (``avloc prepare synthetic`` in parallel parts), the
loader, heatmap videos, ``avloc train`` end to end, and the compiled variants last. Every stage
adds its :class:`benchmarks.gpu_parts.Part` children to the run and its figures to the report.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.gpu_parts import (
    Part,
    avloc_cli,
    cores_for_workers,
    epoch_rates,
    read_json,
    run_parallel,
    shapes,
    step_args,
    step_rates,
)
from benchmarks.machine import machine_info
from benchmarks.processes import benchmark_command


class GpuRun:
    """What the stages share: the options, the output folder, the clock and the parts run."""

    def __init__(self, args):
        self.args = args
        self.out: Path = args.out
        self.started = time.perf_counter()
        self.shapes = shapes(args)
        self.batch = args.batch
        self.parts: list[Part] = []
        self.report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "parts": {}}

    def left(self) -> float:
        """Seconds left of ``--budget``."""
        return self.args.budget - (time.perf_counter() - self.started)

    def add(self, part: Part) -> Part:
        self.parts.append(part)
        return part

    def train_step(
        self, batch: int, precision: str, variants: str, limit: float, name: str = ""
    ) -> tuple[Part, dict[str, float]]:
        """Run ``benchmarks.train_step`` as the part ``train_step-[NAME-]PRECISION-bBATCH``;
        returns the part and the median samples/s of each variant that ran."""
        label = f"train_step-{name + '-' if name else ''}{precision}-b{batch}"
        path = self.out / f"{label}.json"
        part = self.add(
            Part(label, step_args(self.args, batch, precision, variants, path), limit, self.out)
        )
        part.run()
        return part, step_rates(read_json(path))


def run(args) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = GpuRun(args)
    train_steps(gpu)
    largest_batch(gpu)
    data, prepared = prepare_data(gpu)
    loader(gpu, data, prepared)
    video(gpu)
    end_to_end(gpu, data, prepared)
    compiled_steps(gpu)
    report = gpu.report
    report["parts"] = {p.name: p.record() for p in gpu.parts}
    report["seconds"] = round(time.perf_counter() - gpu.started, 1)
    report["machine"] = machine_info()
    return report


def train_steps(gpu: GpuRun) -> None:
    """1. Train step at batch 128, fp32 and bf16."""
    args = gpu.args
    gpu.report["train_step"] = {
        precision: gpu.train_step(
            gpu.batch, precision, args.variants, min(args.part_limit, gpu.left())
        )[1]
        for precision in ("fp32", "bf16")
    }


def largest_batch(gpu: GpuRun) -> None:
    """... and the largest bf16 batch of keras-torch that fits, doubling from 2 x batch."""
    args, batch, report = gpu.args, gpu.batch, gpu.report
    largest = {"batch": batch, "samples_per_s": report["train_step"]["bf16"].get("keras-torch")}
    attempts = []
    trial = 2 * batch
    while trial <= args.max_batch and gpu.left() > args.reserve:
        limit = min(args.part_limit, gpu.left() - args.reserve)
        part, rates = gpu.train_step(trial, "bf16", "keras-torch", limit)
        rate = rates.get("keras-torch")
        attempts.append({"batch": trial, "status": part.status, "samples_per_s": rate})
        if part.status != "ok" or not rate:
            break
        largest = {"batch": trial, "samples_per_s": rate}
        trial *= 2
    report["largest_batch"] = {"fits": largest, "attempts": attempts}


def prepare_data(gpu: GpuRun) -> tuple[Path, bool]:
    """2. Data for the loader and the end-to-end run; returns its folder and whether it is whole."""
    args = gpu.args
    data = (args.work or gpu.out) / "data"
    parts_n = max(1, args.parts)
    prepare = [
        Part(
            f"prepare-{i + 1}-of-{parts_n}",
            avloc_cli(
                "prepare", "synthetic", "--out", str(data), "--train", str(args.scenes),
                "--test", "0", "--image-size", str(args.stored_size), "--shard-size",
                str(args.shard_size), "--part", f"{i + 1}/{parts_n}",
            ),
            min(args.part_limit, gpu.left()),
            gpu.out,
        )
        for i in range(parts_n)
    ]  # fmt: skip
    start = time.perf_counter()
    run_parallel(prepare)
    gpu.parts.extend(prepare)
    seconds = time.perf_counter() - start
    prepared = all(p.status == "ok" for p in prepare)
    gpu.report["prepare"] = {
        "scenes": args.scenes, "stored_size": args.stored_size, "parts": parts_n,
        "seconds": round(seconds, 1), "scenes_per_s": args.scenes / seconds if prepared else None,
        "status": "ok" if prepared else "; ".join(p.status for p in prepare),
    }  # fmt: skip
    print(f"[prepare] {gpu.report['prepare']['status']}: {args.scenes} scenes in {seconds:.1f} s")
    return data, prepared


def loader(gpu: GpuRun, data: Path, prepared: bool) -> None:
    """3. Loader with thread workers."""
    args, s = gpu.args, gpu.shapes
    workers = args.loader_workers or f"4,8,{cores_for_workers()}"
    loader_json = gpu.out / "loader.json"
    if prepared and gpu.left() > args.reserve:
        gpu.add(
            Part(
                "loader",
                benchmark_command(
                    "loader", "--shards", str(data / "train"), "--input-size",
                    str(s["image_size"]), "--train-resize", str(s["train_resize"]),
                    "--stored-size", str(args.stored_size), "--batch", str(gpu.batch),
                    "--batches", str(args.loader_batches), "--repeats", "2", "--workers",
                    workers, "--modes", "threads", "--noise", "on", "--inputs", "loader,device",
                    "--piece-samples", "16",
                    "--json", str(loader_json),
                ),
                min(args.part_limit, gpu.left() - args.reserve),
                gpu.out,
            )
        ).run()  # fmt: skip
    result = read_json(loader_json) or {}
    gpu.report["loader"] = {
        name: entry.get("steady_samples_per_s", {}).get("median")
        for name, entry in (result.get("configurations") or {}).items()
    }


def video(gpu: GpuRun) -> None:
    """4. Heatmap videos (avloc localize VIDEO -o heat.mp4) against real time."""
    args = gpu.args
    video_json = gpu.out / "video.json"
    video_args = (
        ["--model", "tiny", "--seconds", "1", "--size", "64x48", "--batch-sizes", "4"]
        if args.dry_run
        else ["--model", "full", "--seconds", "20", "--batch-sizes", "16,64"]
    )
    if gpu.left() > args.reserve:
        gpu.add(
            Part(
                "video",
                benchmark_command(
                    "video", *video_args, "--device", args.device, "--json", str(video_json)
                ),
                min(args.part_limit, gpu.left() - args.reserve),
                gpu.out,
            )
        ).run()
    gpu.report["video"] = (read_json(video_json) or {}).get("results", [])


def end_to_end(gpu: GpuRun, data: Path, prepared: bool) -> None:
    """5. End to end: avloc train on the prepared scenes, against the step alone."""
    args, s, batch = gpu.args, gpu.shapes, gpu.batch
    run_dir = (args.work or gpu.out) / "run"
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
    if prepared and gpu.left() > 10:
        gpu.add(
            Part(
                "train",
                avloc_cli(
                    "train",
                    "recipes/ezvsl_san.toml",
                    "--run-dir",
                    str(run_dir),
                    *[a for v in sets for a in ("--set", v)],
                ),
                gpu.left() - 5,
                gpu.out,
                env=env,
            )
        ).run()
    epochs = epoch_rates(run_dir)
    steady = [e["samples_per_s"] for e in epochs[1:]] or [e["samples_per_s"] for e in epochs]
    e2e = sorted(steady)[len(steady) // 2] if steady else None
    alone = gpu.report["train_step"]["bf16"].get("keras-torch-preprocess")
    gpu.report["end_to_end"] = {
        "workers": e2e_workers,
        "epochs": epochs,
        "samples_per_s": e2e,
        "step_alone_samples_per_s": alone,
        "ratio_to_step_alone": e2e / alone if e2e and alone else None,
    }


def compiled_steps(gpu: GpuRun) -> None:
    """6. Compiled variants, last, each in parts of its own: a slow compilation costs only it."""
    args, batch = gpu.args, gpu.batch
    extra = [v.strip() for v in args.extra_variants.split(",") if v.strip()]
    gpu.report["train_step_extra"] = {}
    for variant in extra:
        for precision in ("fp32", "bf16"):
            if gpu.left() < 60:
                break
            limit = min(args.part_limit, gpu.left() - 10)
            rates = gpu.train_step(batch, precision, variant, limit, name=variant)[1]
            gpu.report["train_step_extra"].setdefault(precision, {}).update(rates)
