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
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks.machine import machine_info, print_machine  # noqa: E402
from benchmarks.report import print_table, write_json  # noqa: E402
from benchmarks.timing import alternate, paired_ratio, summarize  # noqa: E402


def make_shards(folder: Path, scenes: int, stored_size: int, shard_size: int) -> float:
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


def iterate_epoch(dataset) -> list[float]:
    """One epoch as ``model.fit`` runs it; returns the arrival time of every batch."""
    try:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    except ImportError:  # Keras moved its adapter: iterate serially (workers are then ignored)
        PyDatasetAdapter = None
    stamps = [time.perf_counter()]
    if PyDatasetAdapter is None:
        for index in range(len(dataset)):
            dataset[index]
            stamps.append(time.perf_counter())
        dataset.on_epoch_end()
        return stamps
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    try:
        for _ in adapter.get_numpy_iterator():
            stamps.append(time.perf_counter())
    finally:
        adapter.on_epoch_end()
    return stamps


class LoaderRun:
    """One configuration; each call is one round (epoch) and returns steady samples/s."""

    def __init__(
        self, shards, args, workers: int, processes: bool, noise: bool, on_device: bool = False
    ):
        from avloc.data.loader import TrainBatches

        self.workers = workers
        self.batch = args.batch
        self.dataset = TrainBatches(
            shards,
            batch_size=args.batch,
            seed=0,
            image_size=args.input_size,
            train_resize=args.train_resize,
            with_noise=noise,
            steps_per_epoch=args.batches,
            workers=workers,
            use_multiprocessing=processes,
            max_queue_size=args.max_queue_size,
            on_device=on_device,
        )
        self.rounds: list[dict[str, float]] = []

    def __call__(self) -> float:
        stamps = iterate_epoch(self.dataset)
        n = len(stamps) - 1
        w = min(self.workers, n - 1)
        span = stamps[-1] - stamps[w] if n > w else 0.0
        steady = (n - w) * self.batch / span if span > 0 else float("nan")
        self.rounds.append(
            {
                "batches": n,
                "first_batch_s": stamps[1] - stamps[0],
                "with_startup": n * self.batch / (stamps[-1] - stamps[0]),
                "steady": steady,
            }
        )
        return steady


def piece_runners(shards, args) -> dict:
    """Runners timing each piece of a sample alone; each returns ms per sample."""
    from avloc.data.loader import TrainBatches
    from avloc.inputs.images import _resize, normalize, preprocess_train, train_crop
    from avloc.inputs.noise import noise_waveform
    from avloc.inputs.spectrogram import spectrogram

    count = max(args.batch, min(args.piece_samples, len(shards)) // args.batch * args.batch)
    indices = np.arange(count) % len(shards)
    # the shard read takes the rows in a shuffled order, as training does (batch b of epoch 0)
    shuffled = np.random.default_rng([0, 0]).permutation(len(shards))
    shuffled = np.resize(shuffled, count)
    batches = [shuffled[i : i + args.batch] for i in range(0, count, args.batch)]
    rows = shards.read(indices, ["image", "audio"])
    images, waves = rows["image"], rows["audio"]
    clip = int(round(shards.attrs["sample_rate"] * shards.attrs["clip_seconds"]))
    size, resize = args.input_size, args.train_resize
    crops = [
        train_crop(np.random.default_rng(i), *img.shape[:2], size, resize)
        for i, img in enumerate(images)
    ]
    scaled = [_resize(img, c[1], c[0]) for img, c in zip(images, crops, strict=True)]
    noise = np.stack([noise_waveform(np.random.default_rng(i), clip) for i in range(count)])
    serial = {
        (noise_on, on_device): TrainBatches(
            shards,
            batch_size=args.batch,
            image_size=size,
            train_resize=resize,
            with_noise=noise_on,
            workers=1,
            on_device=on_device,
        )
        for noise_on in (False, True)
        for on_device in (False, True)
    }

    def per_sample(fn):
        def run():
            start = time.perf_counter()
            fn()
            return 1000 * (time.perf_counter() - start) / count

        return run

    def read():
        for b in batches:
            shards.read(b, ["image", "audio"])

    def resize_images():
        for img, (h, w, *_) in zip(images, crops, strict=True):
            _resize(img, w, h)

    def crop_normalise():
        for img, (_, _, top, left, flip) in zip(scaled, crops, strict=True):
            crop = img[top : top + size, left : left + size]
            normalize(crop[:, ::-1] if flip else crop)

    def preprocess():
        rng = np.random.default_rng(0)
        for img in images:
            preprocess_train(img, rng, size, resize)

    def audio_spectrogram():
        for i in range(0, count, args.batch):
            spectrogram(waves[i : i + args.batch])

    def noise_wave():
        rng = np.random.default_rng(0)
        for _ in range(count):
            noise_waveform(rng, clip)

    def noise_spectrogram():
        for i in range(0, count, args.batch):
            spectrogram(noise[i : i + args.batch])

    def make_batches(noise_on, on_device=False):
        loader = serial[noise_on, on_device]

        def run():
            for b in range(len(batches)):
                loader.make_batch(0, b % len(loader))

        return run

    return {
        "shard read (HDF5 image + PCM audio, shuffled)": per_sample(read),
        "image resize (bicubic, shorter side)": per_sample(resize_images),
        "image crop + flip + normalise": per_sample(crop_normalise),
        "preprocess_train (the two above)": per_sample(preprocess),
        "audio spectrogram (batched)": per_sample(audio_spectrogram),
        "noise waveform (clipped N(0, 1))": per_sample(noise_wave),
        "noise spectrogram (batched)": per_sample(noise_spectrogram),
        "make_batch, noise off (serial)": per_sample(make_batches(False)),
        "make_batch, noise on (serial)": per_sample(make_batches(True)),
        "make_batch, noise on, on device (serial)": per_sample(make_batches(True, True)),
    }


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
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    noises = [n.strip() == "on" for n in args.noise.split(",") if n.strip()]
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

        configs = {}
        places = [a.strip() for a in args.inputs.split(",") if a.strip()]
        for place in places:
            for noise in noises:
                for mode in modes:
                    for w in counts:
                        name = f"{mode} x{w}, noise {'on' if noise else 'off'}"
                        if place == "device":
                            name += ", on device"
                        configs[name] = LoaderRun(
                            shards, args, w, mode == "processes", noise, place == "device"
                        )
        print(f"timing {len(configs)} loader configurations ...", flush=True)
        values, failed = alternate(
            configs,
            args.repeats,
            gap=0.2,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )

        pieces = piece_runners(shards, args)
        print(f"timing {len(pieces)} pieces ...", flush=True)
        piece_values, piece_failed = alternate(pieces, args.repeats)

    results = {}
    for name, run in configs.items():
        base = f"threads x1, noise {'on' if run.dataset.with_noise else 'off'}"
        stats = summarize(values[name])
        results[name] = {
            "mode": "processes" if run.dataset.use_multiprocessing else "threads",
            "workers": run.workers,
            "noise": run.dataset.with_noise,
            "preprocessing": "device" if run.dataset.on_device else "loader",
            "steady_samples_per_s": stats,
            "steady_per_worker": stats["median"] / run.workers if stats["median"] else None,
            "with_startup_samples_per_s": summarize([r["with_startup"] for r in run.rounds]),
            "first_batch_s": summarize([r["first_batch_s"] for r in run.rounds]),
            "ratio_vs_serial": paired_ratio(values[name], values[base]) if base in values else None,
            "rounds": run.rounds,
            "error": failed.get(name),
        }
    total = summarize(piece_values.get("make_batch, noise on (serial)", []))["median"]
    piece_results = {
        name: {
            "ms_per_sample": summarize(v),
            "pct_of_make_batch_noise_on": (
                100 * summarize(v)["median"] / total if total and summarize(v)["median"] else None
            ),
            "error": piece_failed.get(name),
        }
        for name, v in piece_values.items()
    }

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
    for name, r in results.items():
        if r["error"]:
            print(f"{name}: failed: {r['error']}")
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
            for name, r in piece_results.items()
        ],
    )
    for name, r in piece_results.items():
        if r["error"]:
            print(f"{name}: failed: {r['error']}")
    print_machine(machine)
    write_json(
        args.json,
        {
            "benchmark": "loader",
            "units": "samples/s; pieces in ms per sample",
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "shard_write_s": seconds,
            "configurations": results,
            "pieces": piece_results,
            "machine": machine,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
