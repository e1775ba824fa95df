"""Benchmark ``avloc prepare``: samples per second (and per worker) on generated MP4s.

    python3 -m benchmarks.prepare                      # 32 clips of 10 s, 320x240 @ 25 fps
    python3 -m benchmarks.prepare --videos 48 --workers 1,2,4 --json bench.json

Writes ``--videos`` H.264/AAC MP4s with PyAV (VGGSound-like 10 s clips whose frames and tones
are known, ``tests/fakemedia.py``), then prepares them with the ``vggsound`` source (frame
in the middle of each clip, 3 s of its audio, 256 px images) once per worker count, each into a
fresh directory. The parent process decodes one clip first so its one-off import costs are not
timed; the worker processes' start-up (spawn + imports, a few seconds each) is part of the
timed run, as it is for a user, and is also reported on its own together with the steady rate
after it. Prints a table and optionally writes JSON. Timing only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from avloc.data.prepare import prepare, process_sample
from avloc.data.sources import build_preparer
from benchmarks.machine import machine_info, print_machine
from benchmarks.processes import ROOT


def make_corpus(directory: Path, count: int, seconds: float, fps: int, size: tuple[int, int]):
    # tests/ is not a package: the test suite's media maker is imported as pytest imports it
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))
    from fakemedia import write_video

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_video(directory / f"bench{i:04d}_{i:06d}.mp4", seconds, fps, size, 44100)


def run(videos: Path, out: Path, workers: int, shard_size: int) -> dict:
    """One timed run; ``steady`` excludes the time until each worker has finished a sample."""
    preparer = build_preparer("vggsound", root=videos)
    stamps: list[float] = []
    started = time.perf_counter()
    result = prepare(
        preparer,
        out,
        workers=workers,
        shard_size=shard_size,
        progress=lambda done, total: stamps.append(time.perf_counter()) if done else None,
    )
    seconds = time.perf_counter() - started
    rate = result.decoded / seconds
    warm = stamps[min(workers, len(stamps)) - 1] if stamps else started
    steady_n = result.decoded - min(workers, result.decoded)
    steady = steady_n / (stamps[-1] - warm) if steady_n and stamps[-1] > warm else float("nan")
    return {
        "workers": workers,
        "samples": result.decoded,
        "written": result.written,
        "skipped": len(result.skipped),
        "seconds": round(seconds, 3),
        "startup_seconds": round(warm - started, 3),
        "samples_per_s": round(rate, 2),
        "samples_per_s_per_worker": round(rate / workers, 2),
        "steady_samples_per_s": round(steady, 2),
        "steady_samples_per_s_per_worker": round(steady / workers, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=32, help="number of generated clips")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    machine = machine_info()

    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        base = args.dir or Path(tmp)
        videos = base / "videos"
        started = time.perf_counter()
        make_corpus(videos, args.videos, args.seconds, args.fps, (width, height))
        print(
            f"wrote {args.videos} MP4s ({args.seconds:g} s, {width}x{height} @ {args.fps} fps, "
            f"AAC 44.1 kHz) in {time.perf_counter() - started:.1f} s"
        )
        # Warm this process's imports (librosa, PyAV) so workers=1 times decoding only.
        plan = build_preparer("vggsound", root=videos).plan()
        process_sample(plan.samples[0], plan.settings)

        results = [run(videos, base / f"out-w{w}", w, args.shard_size) for w in counts]

    print(
        f"{'workers':>7} {'samples':>7} {'seconds':>8} {'start-up':>8} {'samples/s':>10} "
        f"{'per worker':>11} {'steady/s':>9} {'steady/worker':>13}"
    )
    for r in results:
        print(
            f"{r['workers']:>7} {r['samples']:>7} {r['seconds']:>8.2f} "
            f"{r['startup_seconds']:>8.2f} {r['samples_per_s']:>10.2f} "
            f"{r['samples_per_s_per_worker']:>11.2f} {r['steady_samples_per_s']:>9.2f} "
            f"{r['steady_samples_per_s_per_worker']:>13.2f}"
        )
    print(
        "start-up: until every worker has finished its first sample (process spawn + imports); "
        "steady: the rest"
    )
    print_machine(machine)
    if args.json:
        payload = {
            "benchmark": "prepare vggsound (videos)",
            "videos": args.videos,
            "clip_seconds": args.seconds,
            "fps": args.fps,
            "size": [width, height],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "results": results,
            "machine": machine,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
