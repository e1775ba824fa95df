"""Training-loader throughput: samples/s (and per worker) of ``TrainBatches`` from shards.

    python3 -m benchmarks.loader --json loader.json

Writes ``--scenes`` synthetic training scenes (``avloc prepare synthetic``'s generator, images of
``--stored-size`` px, 3 s of 16 kHz audio) as shards in a temporary directory, then measures
:class:`avloc.data.loader.TrainBatches` as ``model.fit`` drives it: through Keras' own
``PyDatasetAdapter`` (workers 1 with threads means no worker at all: each batch is built in the
training thread when it is asked for; more threads or any processes start Keras' enqueuer, a
thread or process pool that builds batches ahead). Every batch holds the train-augmented images
(shorter side -> ``--train-resize``, random ``--input-size`` crop, flip, normalisation), the
audio's log spectrograms and, with noise on, one clipped-noise spectrogram per image (SSL-SaN's
noise input; silence is a constant in the task, not a loader input).

Configurations: workers ``--workers`` (default 1,2) x threads/processes x noise off/on, measured
in ``--repeats`` interleaved rounds of ``--batches`` batches of ``--batch`` each (one Keras
epoch per round, so a process pool is started in every round, as in training). Reported per
configuration (medians over rounds), in **samples/s**:

- steady: after every worker has delivered its first batch, ``(n - w) x batch / time``;
- per worker: steady / workers;
- with start-up: all ``n`` batches over the whole round, pool start included; first batch: s.

Where the time goes: each piece of a sample timed alone in this process (median over rounds of
the mean over ``--piece-samples`` samples, **ms per sample**): the shard read (HDF5, per batch
/ batch size), bicubic resize, crop + flip + normalise, the audio spectrogram (computed per
batch, as the loader does), the noise waveform and its spectrogram; and the whole serial
``make_batch`` per sample for comparison. Timing only: nothing is asserted.

Modules: ``loader_runs`` (a configuration timed as ``model.fit`` reads it), ``loader_pieces``
(each piece of a sample alone); this one writes the shards and prints the tables.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.loader_pieces import piece_results, piece_runners  # noqa: E402
from benchmarks.loader_runs import configuration_results, configurations  # noqa: E402
from benchmarks.machine import machine_info, print_machine  # noqa: E402
from benchmarks.report import (  # noqa: E402
    print_failures,
    print_progress,
    print_table,
    settings,
    write_json,
)
from benchmarks.timing import alternate  # noqa: E402


def make_shards(folder: Path, scenes: int, stored_size: int, shard_size: int) -> float:
    """Write ``scenes`` synthetic training scenes as shards under ``folder``; returns seconds."""
    from avloc.data.prepare_synthetic import prepare_synthetic
    from avloc.data.synthetic import SyntheticConfig

    start = time.perf_counter()
    prepare_synthetic(
        folder,
        train=scenes,
        test=0,
        config=SyntheticConfig(image_size=stored_size),
        shard_size=shard_size,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=256, help="synthetic training scenes")
    parser.add_argument("--stored-size", type=int, default=256, help="image side in the shards")
    parser.add_argument("--input-size", type=int, default=224, help="model input (crop) side")
    parser.add_argument("--train-resize", type=int, default=246, help="shorter side before crop")
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="batches per round (epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--modes", default="threads,processes", help="threads, processes")
    parser.add_argument("--noise", default="off,on", help="noise input: off, on")
    parser.add_argument(
        "--inputs",
        default="loader",
        help="comma list: loader (the loader preprocesses), device "
        "(data.preprocess_on_device: it only reads rows and draws; the training step does)",
    )
    parser.add_argument("--max-queue-size", type=int, default=8)
    parser.add_argument("--piece-samples", type=int, default=64, help="samples per piece timing")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dir", type=Path, help="shard directory (default: a temporary one)")
    parser.add_argument(
        "--shards", type=Path, help="read these prepared shards instead of writing new ones"
    )
    args = parser.parse_args(argv)
    machine = machine_info()

    from avloc.data.shards import ShardSet

    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        if args.shards:
            seconds, shards = 0.0, ShardSet(args.shards)
        else:
            folder = args.dir or Path(tmp)
            seconds = make_shards(folder, args.scenes, args.stored_size, args.shard_size)
            shards = ShardSet(folder / "train")
        print(
            f"{'read' if args.shards else 'wrote'} {len(shards)} synthetic scenes "
            f"({args.stored_size} px, "
            f"{shards.attrs['clip_seconds']:g} s at {shards.attrs['sample_rate']} Hz) "
            f"in {seconds:.1f} s",
            flush=True,
        )

        configs = configurations(shards, args)
        print(f"timing {len(configs)} loader configurations ...", flush=True)
        values, failed = alternate(configs, args.repeats, gap=0.2, progress=print_progress)

        pieces = piece_runners(shards, args)
        print(f"timing {len(pieces)} pieces ...", flush=True)
        piece_values, piece_failed = alternate(pieces, args.repeats)

    results = configuration_results(configs, values, failed)
    piece_figures = piece_results(piece_values, piece_failed)
    print_report(args, results, piece_figures, machine)
    write_json(
        args.json,
        {
            "benchmark": "loader",
            "units": "samples/s; pieces in ms per sample",
            "settings": settings(args),
            "shard_write_s": seconds,
            "configurations": results,
            "pieces": piece_figures,
            "machine": machine,
        },
    )
    return 0


def print_report(args, results: dict, pieces: dict, machine: dict) -> None:
    """The configurations' table, the pieces' table, failures and the machine."""
    print()
    print(
        f"loader: TrainBatches, batch {args.batch}, {args.batches} batches per round, "
        f"{args.repeats} interleaved rounds; images {args.stored_size} px -> resize "
        f"{args.train_resize} -> crop {args.input_size}, flip, normalise; audio and noise "
        "log spectrograms 257 x frames"
    )
    rows = []
    for name, r in results.items():
        ratio = r["ratio_vs_serial"]
        rows.append(
            [
                name,
                r["steady_samples_per_s"]["median"],
                r["steady_per_worker"],
                r["with_startup_samples_per_s"]["median"],
                r["first_batch_s"]["median"],
                f"{ratio:.2f}" if ratio is not None else "-",
            ]
        )
    print_table(
        [
            "configuration",
            "samples/s",
            "per worker",
            "with start-up",
            "first batch s",
            "x 1 thread",
        ],
        rows,
    )
    print(
        "samples/s: steady, after every worker's first batch; x 1 thread: vs threads x1 (no "
        "worker: batches built in the training thread) with the same noise setting"
    )
    print_failures(results)
    print()
    print(f"where the time goes (one thread, mean over {args.piece_samples} samples):")
    print_table(
        ["piece", "ms/sample", "% of make_batch (noise on)"],
        [
            [
                name,
                r["ms_per_sample"]["median"],
                r["pct_of_make_batch_noise_on"],
            ]
            for name, r in pieces.items()
        ],
    )
    print_failures(pieces)
    print_machine(machine)


if __name__ == "__main__":
    raise SystemExit(main())
