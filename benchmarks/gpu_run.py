"""The stages of ``gpu.py``'s run, in order, each within what is left of ``--budget``.

:func:`run` runs them and returns the report (``gpu.json``): the train step at ``--batch`` in fp32
and bf16, the largest bf16 batch, the data (``avloc prepare synthetic`` in parallel parts), the
loader, heatmap videos, ``avloc train`` end to end (EZ-VSL's setting on torch and JAX,
SSL-TIE's on torch), and the compiled variants last. Every stage
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
    compare_end_to_end(gpu)
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


#: The end-to-end runs: (name, recipe, KERAS_BACKEND, the step alone it is compared with: the
#: train_step part's (precision, variant), or None). The first is ``report["end_to_end"]``,
#: the others ``report["end_to_end_more"][name]``. SSL-TIE's setting (14 x 14 maps, 10 s mel,
#: moco_v2 in the loader, the transformed view) has no plain-torch twin to time its step alone.
END_TO_END = [
    (
        "EZ-VSL setting, torch",
        "recipes/ezvsl_san.toml",
        "torch",
        ("bf16", "keras-torch-preprocess"),
    ),
    ("EZ-VSL setting, JAX", "recipes/ezvsl_san.toml", "jax", ("bf16", "keras-jax-jit")),
    ("SSL-TIE setting, torch", "recipes/sslsan.toml", "torch", None),
]


def end_to_end_sets(gpu: GpuRun, data: Path, recipe: str) -> list[str]:
    """``--set`` values of an end-to-end run of ``recipe`` on the prepared scenes."""
    args, s, batch = gpu.args, gpu.shapes, gpu.batch
    sets = [
        f'data.train="{data / "train"}"', 'data.test=""', f"data.workers={cores_for_workers()}",
        f"data.image_size={s['image_size']}", f"model.visual.width={s['width']}",
        f"model.audio.width={s['width']}", f"train.batch_size={batch}",
        f"train.epochs={args.epochs}", f"train.steps_per_epoch={args.steps_per_epoch}",
        'train.precision="mixed_bfloat16"', "train.tensorboard=false",
        "train.backup_every_steps=100000", f"eval.calibration_samples={batch}",
    ]  # fmt: skip
    if "sslsan" in recipe:  # LVS's network: D is the trunk's width; moco_v2 runs in the loader
        sets += [f"model.embed_dim={8 * s['width']}", "data.preprocess_on_device=false"]
        if gpu.args.dry_run:
            sets += [f"data.clip_seconds={s['clip_seconds']}", "data.spec_time_mask=4"]
    else:
        sets += [
            f"data.train_resize={s['train_resize']}", f"model.embed_dim={s['dim']}",
            "data.preprocess_on_device=true",
        ]  # fmt: skip
    return sets


def end_to_end(gpu: GpuRun, data: Path, prepared: bool) -> None:
    """5. End to end: avloc train on the prepared scenes, each setting of :data:`END_TO_END`;
    the step-alone comparison is filled in by :func:`compare_end_to_end` at the end."""
    args = gpu.args
    gpu.report["end_to_end_more"] = {}
    for i, (name, recipe, backend, _) in enumerate(END_TO_END):
        run_dir = (args.work or gpu.out) / f"run-{i}"
        env = {"KERAS_BACKEND": backend}
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        if prepared and gpu.left() > 10 + (args.reserve if i else 0):
            sets = end_to_end_sets(gpu, data, recipe)
            command = avloc_cli(
                "train", recipe, "--run-dir", str(run_dir), *[a for v in sets for a in ("--set", v)]
            )
            gpu.add(Part(f"train-{i}", command, gpu.left() - 5, gpu.out, env=env)).run()
        epochs = epoch_rates(run_dir)
        steady = [e["samples_per_s"] for e in epochs[1:]] or [e["samples_per_s"] for e in epochs]
        entry = {
            "recipe": recipe,
            "backend": backend,
            "workers": cores_for_workers(),
            "epochs": epochs,
            "samples_per_s": sorted(steady)[len(steady) // 2] if steady else None,
        }
        if i == 0:
            gpu.report["end_to_end"] = entry
        else:
            gpu.report["end_to_end_more"][name] = entry


def compare_end_to_end(gpu: GpuRun) -> None:
    """Each end-to-end rate against its step alone (compiled variants are timed last)."""
    steps = {**gpu.report.get("train_step", {})}
    for precision, rates in gpu.report.get("train_step_extra", {}).items():
        steps[precision] = {**steps.get(precision, {}), **rates}
    entries = [gpu.report["end_to_end"], *gpu.report["end_to_end_more"].values()]
    for (_, _, _, alone_key), entry in zip(END_TO_END, entries, strict=True):
        alone = steps.get(alone_key[0], {}).get(alone_key[1]) if alone_key else None
        e2e = entry["samples_per_s"]
        entry["step_alone"] = "/".join(alone_key) if alone_key else None
        entry["step_alone_samples_per_s"] = alone
        entry["ratio_to_step_alone"] = e2e / alone if e2e and alone else None


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
