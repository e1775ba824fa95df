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
  one ``task.train_on_batch`` per step, with ``train.jit_compile`` off, which on JAX means
  op-by-op execution (``avloc train`` compiles JAX's step: ``keras-jax-jit``);
  ``keras-torch-graph`` (by name only) replays torch's step from its recording
  (``train.step_graph = true``, ``avloc/runtime/step_graph.py``) instead of running it through
  Keras' layers;
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

Modules: ``train_step_build`` (the batch and each variant's step), ``train_step_groups`` (the
processes that build and time the variants), ``train_step_report`` (figures and table).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.environment import set_device, set_threads
from benchmarks.flops import ezvsl_forward_flops
from benchmarks.machine import machine_info
from benchmarks.processes import serve
from benchmarks.report import settings, write_json
from benchmarks.train_step_build import audio_shape
from benchmarks.train_step_groups import (
    VARIANTS,
    StepGroup,
    resolve_variants,
    start_groups,
    time_variants,
)
from benchmarks.train_step_report import print_report, step_peak, variant_results


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
        values, failed = time_variants(args, names, handles, setup)
    finally:
        for handle in handles.values():
            handle.close()

    peak = step_peak(args, setup.pop("_peak", None))
    results = variant_results(args, names, setup, values, failed, flops, peak)
    print_report(args, freq, frames, flops, peak, results, machine)
    write_json(
        args.json,
        {
            "benchmark": "train_step",
            "units": "samples/s (training steps x batch / s); ratio = variant / plain torch",
            "settings": settings(args, "worker"),
            "audio_shape": [freq, frames],
            "flops": flops,
            "peak": peak,
            "variants": results,
            "machine": machine,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
