"""Training-step throughput of EZ-VSL: avloc's Keras task on each backend vs plain PyTorch.

    python3 -m benchmarks.train_step --json train_step.json

Measures **samples/s** of full training steps (forward, EZ-VSL loss, backward, Adam update) of
the ResNet-18 audio-visual pair on a fixed random batch: visual 224 px RGB, audio 257x200 log
spectrogram (3 s at 16 kHz), D = 512, batch 16 (``--batch``, ``--width``, ``--image-size``,
``--dim``, ``--clip-seconds`` change the shapes; small values make a quick smoke test).

Variants (``--variants``, comma-separated; default: every one whose framework is installed, but
``torch-native`` and ``torch-avx512`` only with ``--plain-cpu-kernels`` and the XLA variant only
by name):

- ``keras-torch``, ``keras-tensorflow``, ``keras-jax``: avloc's own path, as ``avloc train``
  runs it: ``avloc.jobs.train.build_task`` on ``recipes/ezvsl.toml`` (with the shape overrides),
  one ``task.train_on_batch`` per step. The recipe leaves ``train.jit_compile`` off, which on
  JAX means op-by-op execution;
- ``keras-jax-jit``, ``keras-tensorflow-xla``: the same with ``train.jit_compile=true``;
  ``keras-torch-jit`` (by name only): on torch, where that is ``torch.compile`` (minutes of
  compilation before the first step);
- ``torch``: the same model and loss in plain PyTorch (``benchmarks/plain_torch.py``,
  ``torch.optim.Adam``), with oneDNN's cap as avloc chooses it for ``--width`` (AVX2 below 16,
  uncapped otherwise; ``avloc/runtime/cpu_kernels.py``), so the comparison with ``keras-torch``
  is like for like;
- ``torch-native``: plain PyTorch with oneDNN off (torch's own CPU convolution kernels);
- ``torch-avx512``: plain PyTorch with oneDNN uncapped (``ONEDNN_MAX_CPU_ISA=DEFAULT``, torch's
  own default). It runs in a process of its own: these kernels crash on layers under 16
  channels, and a crash then costs only this variant;
- ``keras-torch-avx512``: ``keras-torch`` in that process (by name only): what a user gets with
  ``export ONEDNN_MAX_CPU_ISA=DEFAULT`` (at widths of 16 and more avloc's own choice);
- ``torch-avx2``, ``keras-torch-avx2`` (by name only): both in a process of their own with
  oneDNN capped at AVX2, the cap avloc put on every network before it chose per network;
- ``keras-tensorflow-own`` (by name only): TensorFlow in a process with
  ``TF_ENABLE_ONEDNN_OPTS=0``, its own kernels (``keras-tensorflow`` runs oneDNN's, as
  ``avloc train`` chooses them for widths of 8 and more);
- ``keras-torch-preprocess``, ``keras-tensorflow-preprocess`` (by name only): the step with
  ``data.preprocess_on_device``, fed what the loader then hands over: the stored frames (uint8,
  ``--stored-size`` px) with crop draws and int16 PCM; the step resizes, crops, flips and
  normalises the images and makes the spectrograms (``avloc.inputs.training``).

Processes: the variants of the current ``KERAS_BACKEND`` (default torch) run in this process,
so on torch ``keras-torch`` and ``torch`` share one process; every other backend runs in a child
process of its own that builds its variants once and then waits for requests. Each variant runs
``--warmup`` untimed steps after it is built (tracing, compilation), then the variants take turns:
in each of ``--repeats`` rounds every variant times ``--steps`` steps, one after the other, while
the others wait idle. Reported: the median samples/s over the rounds (min-max beside it) and,
per round, the ratio to plain ``torch`` in the same round, whose median is the ratio column.

GFLOP/s: forward FLOPs counted analytically (convolutions, projections and the loss' all-pairs
similarity, 2 x multiply-accumulates; see ``benchmarks.flops.ezvsl_forward_flops`` and
``python3 -m benchmarks.plain_torch`` which checks the count against torch's flop counter),
training taken as 3 x forward. The peak is an estimate: on CPU cores x GHz x FMA units x FLOP per
FMA from the vector flags (``--fma-units``, default 2), on CUDA SMs x FP32 lanes x 2 x clock.

Options: ``--device cpu|cuda`` (cpu hides every GPU), ``--precision fp32|bf16`` (the recipe's
``train.precision = "mixed_bfloat16"``; ``torch.autocast`` for plain torch), ``--threads N``
(intra-op threads of every framework; 0 = their defaults). Prints a table and the machine, and
writes everything to ``--json``. Timing only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

from benchmarks.environment import child_onednn_env, set_device, set_threads
from benchmarks.flops import ezvsl_forward_flops
from benchmarks.machine import cpu_cores, cpu_fp32_peak, cuda_peak, machine_info, print_machine
from benchmarks.processes import ROOT, Worker, WorkerDied, benchmark_command, serve
from benchmarks.report import print_table, write_json
from benchmarks.timing import alternate, one_line, paired_ratio, summarize

RECIPE = ROOT / "recipes" / "ezvsl.toml"
#: variant -> (process group, kind); a group is one process (its name is its Keras backend).
VARIANTS = {
    "torch": ("torch", "plain"),
    "torch-native": ("torch", "plain"),
    "torch-avx512": ("torch-avx512", "plain"),
    "keras-torch": ("torch", "keras"),
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


def audio_shape(clip_seconds: float, sample_rate: int = 16000) -> tuple[int, int]:
    import numpy as np

    from avloc.inputs.spectrogram import spectrogram

    return spectrogram(np.zeros(int(round(sample_rate * clip_seconds)), np.float32)).shape


def make_raw_inputs(args) -> dict:
    """The loader's on-device form of a batch (``data.preprocess_on_device``): uint8 frames
    ``(B, stored, stored, 3)``, crop draws ``(B, 3)``, int16 PCM ``(B, samples)``."""
    import numpy as np

    from avloc.inputs.images import train_crop

    rng = np.random.default_rng(args.seed)
    size, stored = args.image_size, args.stored_size
    image = rng.integers(0, 256, (args.batch, stored, stored, 3), dtype=np.uint8)
    crops = [train_crop(rng, stored, stored, size, train_resize(size)) for _ in range(args.batch)]
    samples = int(round(16000 * args.clip_seconds))
    return {
        "image": image,
        "crop": np.asarray([c[2:] for c in crops], np.int32),
        "audio": rng.integers(-8000, 8000, (args.batch, samples), dtype=np.int16),
    }


def train_resize(image_size: int) -> int:
    """The shorter side before the crop: 246/224 of the input, as the recipes set it."""
    return int(round(image_size * 246 / 224))


def make_inputs(args) -> tuple:
    """The fixed batch, channels last: image ``(B, S, S, 3)``, audio ``(B, F, T, 1)``."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    freq, frames = audio_shape(args.clip_seconds)
    image = rng.standard_normal((args.batch, args.image_size, args.image_size, 3), np.float32)
    audio = rng.uniform(-1.3, 0.0, (args.batch, freq, frames, 1)).astype(np.float32)
    return image, audio


# --------------------------------------------------------------------------------------------
# Building one variant (inside the process of its group)


def _check_keras_device(device: str) -> str:
    import keras

    backend = keras.backend.backend()
    if device != "cuda":
        return "cpu"
    if backend == "torch":
        import torch

        ok = torch.cuda.is_available()
    elif backend == "tensorflow":
        import tensorflow as tf

        ok = bool(tf.config.list_physical_devices("GPU"))
    else:
        import jax

        ok = jax.default_backend() in ("gpu", "cuda", "rocm")
    if not ok:
        raise RuntimeError(f"{backend} sees no GPU (install its GPU build)")
    return "cuda"


def build_keras(name: str, args, inputs_on_device: bool = False):
    import keras
    import numpy as np

    device = _check_keras_device(args.device)
    from avloc.config import load_recipe
    from avloc.training.build import build_task

    overrides = [
        f"train.batch_size={args.batch}",
        f"model.visual.width={args.width}",
        f"model.audio.width={args.width}",
        f"model.embed_dim={args.dim}",
        f"data.image_size={args.image_size}",
        f"data.clip_seconds={args.clip_seconds}",
        "train.tensorboard=false",
    ]
    if name.endswith(("-jit", "-xla")):
        overrides.append("train.jit_compile=true")
    raw = name.endswith("-preprocess")
    if raw:
        overrides += [
            "data.preprocess_on_device=true",
            f"data.train_resize={train_resize(args.image_size)}",
        ]
    if args.precision == "bf16":
        overrides.append('train.precision="mixed_bfloat16"')
    keras.utils.set_random_seed(args.seed)
    recipe = load_recipe(RECIPE, overrides)
    task = build_task(recipe)
    image, audio = make_inputs(args)
    batch = {"image": image, "audio": audio}
    if task.needs_noise:  # not for EZ-VSL; kept so another recipe would still run
        batch["noise"] = audio
    if raw:
        batch = make_raw_inputs(args)
    if inputs_on_device:  # a batch already on the accelerator (profile_step.py)
        batch = {key: keras.ops.convert_to_tensor(value) for key, value in batch.items()}

    def step():
        task.train_on_batch(batch)

    info = {
        "params": int(sum(np.prod(v.shape) for v in task.trainable_weights)),
        "device": device,
        "jit_compile": bool(task.jit_compile),
        "policy": task.net.dtype_policy.name,
    }
    return step, info


def build_plain(name: str, args):
    import numpy as np
    import torch

    from benchmarks import plain_torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no GPU")
    image, audio = make_inputs(args)
    plain = plain_torch.TrainStep(
        np.ascontiguousarray(image.transpose(0, 3, 1, 2)),
        np.ascontiguousarray(audio.transpose(0, 3, 1, 2)),
        width=args.width,
        dim=args.dim,
        tau=0.03,
        lr=1e-4,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
    )
    # oneDNN as avloc runs it (on for widths it computes correctly, avloc/runtime/backend.py),
    # always
    # for torch-avx512, never for torch-native. The switch is global and keras-torch shares this
    # process, so each step sets it and then puts back what it found.
    from avloc.runtime.cpu_kernels import onednn_min_width

    onednn = args.device == "cpu" and (
        name == "torch-avx512"
        or (name in ("torch", "torch-avx2") and args.width >= onednn_min_width())
    )

    def step():
        found = torch.backends.mkldnn.enabled
        plain_torch.set_onednn(onednn)
        try:
            return plain()
        finally:
            plain_torch.set_onednn(found)

    info = {
        "params": plain.parameters,
        "device": args.device,
        "onednn": onednn,
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "DEFAULT") if onednn else None,
        "autocast": "bfloat16" if args.precision == "bf16" else "off",
    }
    return step, info


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


# --------------------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width (64 = paper)")
    parser.add_argument("--dim", type=int, default=512, help="embedding size D")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="3 s -> 257x200")
    parser.add_argument(
        "--stored-size", type=int, default=256, help="stored frames of the -preprocess variants"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (at least 1)")
    parser.add_argument("--variants", default="", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument(
        "--plain-cpu-kernels",
        action="store_true",
        help="add plain torch with oneDNN off (torch-native) and uncapped (torch-avx512)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    parser.add_argument("--fma-units", type=int, default=2, help="per core, for the CPU peak")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    set_threads(args.threads)  # before any framework import; inherited by the children
    set_device(args.device, args.width)
    if args.worker:
        serve(StepGroup(args).handle)
        return 0
    os.environ.setdefault("KERAS_BACKEND", "torch")
    machine = machine_info()
    names = resolve_variants(args)
    freq, frames = audio_shape(args.clip_seconds)
    flops = ezvsl_forward_flops(args.batch, args.image_size, (freq, frames), args.width, args.dim)

    handles, setup = start_groups(args, names, list(sys.argv[1:] if argv is None else argv))
    try:
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
        values, failed = alternate(
            runners, args.repeats, gap=0.2, progress=lambda m: print(m, file=sys.stderr, flush=True)
        )
    finally:
        for handle in handles.values():
            handle.close()

    peak = setup.pop("_peak", None)
    if peak is None:
        peak = cpu_fp32_peak(fma_units=args.fma_units) if args.device == "cpu" else {}
    if args.device == "cpu" and args.threads:  # the peak of the cores the frameworks may use
        peak = cpu_fp32_peak(cores=min(args.threads, cpu_cores()), fma_units=args.fma_units)
    reference = values.get(REFERENCE)
    results = {}
    for name in names:
        entry = dict(setup[name])
        if name in failed:
            entry["error"] = failed[name]
        rounds = values.get(name, [])
        stats = summarize(rounds)
        rate = stats["median"]
        gflops = flops["train_per_batch"] * rate / args.batch / 1e9 if rate else None
        entry.update(
            samples_per_s=stats,
            rounds=rounds,
            ratio_vs_torch=paired_ratio(rounds, reference) if reference else None,
            ms_per_step=1000 * args.batch / rate if rate else None,
            gflops=gflops,
            pct_fp32_peak=100 * gflops / peak["gflops"] if gflops and peak.get("gflops") else None,
            pct_bf16_peak=(
                100 * gflops / peak["bf16_gflops"]
                if gflops and peak.get("bf16_gflops") and args.precision == "bf16"
                else None
            ),
        )
        results[name] = entry

    print_report(args, freq, frames, flops, peak, results, machine)
    write_json(
        args.json,
        {
            "benchmark": "train_step",
            "units": "samples/s (training steps x batch / s); ratio = variant / plain torch",
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "worker")},
            "audio_shape": [freq, frames],
            "flops": flops,
            "peak": peak,
            "variants": results,
            "machine": machine,
        },
    )
    return 0


def print_report(args, freq, frames, flops, peak, results, machine) -> None:
    print()
    print(
        f"train step, EZ-VSL ResNet-18 pair: batch {args.batch}, image {args.image_size} px, "
        f"audio {freq}x{frames}, width {args.width}, D {args.dim}, {args.precision}, "
        f"{args.device}, threads {args.threads or 'default'}; {args.repeats} interleaved rounds "
        f"x {args.steps} steps, {max(1, args.warmup)} warm-up steps"
    )
    print(
        f"FLOPs (analytic, 2 x MACs): forward {flops['forward_per_batch'] / 1e9:.2f} GFLOP per "
        f"batch, training ~3x = {flops['train_per_batch'] / 1e9:.2f} GFLOP per step"
    )
    if peak.get("gflops"):
        if "sms" in peak:
            where = f"{peak['gpu']}, {peak['sms']} SMs x {peak['ghz']:.2f} GHz"
        else:
            where = (
                f"{peak['cores']} core{'s' if peak['cores'] != 1 else ''} x "
                f"{peak['ghz']:.2f} GHz x "
                f"{peak['flop_per_cycle_per_core']} FLOP/cycle ({peak['isa']}, "
                f"{peak['fma_units']} FMA units)"
            )
        bf16 = f"; BF16 tensor ~{peak['bf16_gflops']:,.0f}" if peak.get("bf16_gflops") else ""
        print(f"FP32 peak ~{peak['gflops']:,.0f} GFLOP/s ({where}; {peak['note']}){bf16}")
    else:
        print("FP32 peak: unknown")
    headers = [
        "variant",
        "process",
        "params",
        "samples/s",
        "min-max",
        f"x {REFERENCE}",
        "ms/step",
        "GFLOP/s",
        "% FP32 peak",
    ]
    bf16 = args.precision == "bf16" and any(r["pct_bf16_peak"] for r in results.values())
    if bf16:
        headers.append("% BF16 peak")
    rows = []
    for name, r in results.items():
        s = r["samples_per_s"]
        span = f"{s['min']:.3g}-{s['max']:.3g}" if s["n"] else "-"
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        row = [
            name,
            r["process"],
            params,
            s["median"],
            span,
            f"{r['ratio_vs_torch']:.3f}" if r["ratio_vs_torch"] is not None else "-",
            r["ms_per_step"],
            r["gflops"],
            r["pct_fp32_peak"] if r["pct_fp32_peak"] is not None else "unknown",
        ]
        if bf16:
            row.append(r["pct_bf16_peak"] if r["pct_bf16_peak"] is not None else "unknown")
        rows.append(row)
    print_table(headers, rows)
    for name, r in results.items():
        if r.get("error"):
            print(f"{name}: failed: {r['error']}")
    setup = ", ".join(f"{n} {r['setup_s']} s" for n, r in results.items() if "setup_s" in r)
    print(f"build + warm-up (untimed): {setup or '-'}")
    print(
        f"x {REFERENCE}: median over rounds of (variant samples/s / plain torch samples/s in "
        "the same round); > 1 is faster than plain PyTorch"
    )
    print_machine(machine)


if __name__ == "__main__":
    raise SystemExit(main())
