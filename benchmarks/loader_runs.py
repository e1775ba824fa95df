"""One configuration of ``loader.py``: ``TrainBatches`` read as ``model.fit`` reads it, timed.

- :func:`iterate_epoch`: one epoch through Keras' ``PyDatasetAdapter`` (its thread or process
  pool when there are workers), with the arrival time of every batch;
- :class:`LoaderRun`: a configuration (workers, threads or processes, noise, preprocessing in the
  loader or on the device) whose every call times one round and returns steady samples/s;
- :func:`configurations`: the configurations a command asks for, by name;
- :func:`configuration_results`: their figures over the rounds (what ``--json`` holds).
"""

from __future__ import annotations

import time

from benchmarks.timing import paired_ratio, summarize


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


def configurations(shards, args) -> dict[str, LoaderRun]:
    """name -> run, for every ``--inputs`` x ``--noise`` x ``--modes`` x ``--workers``."""
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    noises = [n.strip() == "on" for n in args.noise.split(",") if n.strip()]
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
    return configs


def configuration_results(configs: dict[str, LoaderRun], values: dict, failed: dict) -> dict:
    """name -> steady samples/s (and per worker), with start-up, first batch, ratio to 1 thread."""
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
    return results
