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
5. **End to end**: ``avloc train recipes/ezvsl_san.toml`` (full width, 224 px, batch 128,
   mixed_bfloat16) on those scenes for ``--epochs`` x ``--steps-per-epoch`` steps with the
   loader's thread workers = cores less two; samples/s of each epoch from the run's ``timing.csv``
   (``samples_per_s``: from the end of an epoch's first step to its last), compared with the
   bf16 batch-128 ``keras-torch-preprocess`` step alone. The run sets
   ``data.preprocess_on_device = true``, so the loader only reads rows and draws. Then the same
   on JAX (XLA, against the ``keras-jax-jit`` step alone when part 6 timed it), and SSL-TIE's
   setting on torch (``recipes/sslsan.toml``: 14 x 14 maps, 10 s mel clips, moco_v2 in the
   loader, the transformed view; no step-alone twin), while time is left.
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

Modules: ``gpu_parts`` (child processes, their command lines, the figures read back),
``gpu_run`` (the stages in order), ``gpu_markdown`` (``gpu.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.gpu_markdown import markdown
from benchmarks.gpu_parts import cores_for_workers
from benchmarks.gpu_run import run
from benchmarks.timing import one_line


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
