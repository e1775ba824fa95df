"""Speed of heatmap videos (``avloc localize VIDEO -o heat.mp4``) against real time.

    KERAS_BACKEND=torch python3 -m benchmarks.video --model full             # 2-core target
    KERAS_BACKEND=torch python3 -m benchmarks.video --model full --device cuda --json v.json

Writes a generated ``--seconds`` long H.264 + AAC video (``--size`` WxH at 25 frames/s, a
moving coloured square with a tone), then times :func:`avloc.jobs.video.localize_video` over the
whole clip at ``--fps`` output frames/s for each ``--batch-sizes`` and each engine: the Keras
network, and (torch only) the plain-torch copy that ``avloc localize`` uses once a network is
cached (:mod:`avloc.maps.torch_engine`). The timed part is everything the command does after
loading the model: decoding frames and audio, the maps (visual features once per frame, the
audio windows of a batch in one call), drawing, encoding the MP4 with its audio and writing the
timeline files. Each setting runs once after one untimed warm-up pass of the shortest clip.

Columns: ``frames`` output frames; ``wall s``; ``frames/s``; ``x real time`` = video seconds /
wall seconds (>= 1: keeps up with playback at that output rate).

``--model tiny`` is the quickstart network (width 8, D 64, 112 px); ``--model full`` the paper
setting (ResNet-18 width 64, D 512, 224 px). Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.processes import ROOT

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_video(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    # tests/ is not a package: the test suite's media maker is imported as pytest imports it
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))
    from fakemedia import write_video

    write_video(path, seconds=seconds, fps=25, size=size, audio_rate=44100, crf=23)
    return path


def engines(kind: str, folder: Path, device: str) -> dict[str, object]:
    """``{"keras": net, "plain torch": TorchNet}`` (the second on the torch backend only)."""
    import keras

    from avloc.maps import torch_engine
    from avloc.models import AudioVisualNet
    from avloc.models.io import load_network, save_network
    from avloc.runtime import configure
    from benchmarks.localize import MODELS

    configure(MODELS[kind])  # this process's kernels for its widths, as avloc does before building
    keras.utils.set_random_seed(0)
    net = AudioVisualNet(**MODELS[kind], calibration={"uth": 0.5}, name="avnet")
    path = save_network(net, folder / f"{kind}.keras")
    out = {"keras": load_network(path)}
    if keras.backend.backend() == "torch" and device == "cpu":
        os.environ["AVLOC_CACHE"] = str(folder / "cache")
        torch_engine.write_cache(path, out["keras"])
        out["plain torch"] = torch_engine.load_cached(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "full"), default="full")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the clip, s")
    parser.add_argument("--size", default="640x360", help="WxH of the generated video")
    parser.add_argument("--fps", type=float, default=10.0, help="output frames per second")
    parser.add_argument("--batch-sizes", default="8,16", help="frames per model call")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from benchmarks.environment import set_device, set_threads
    from benchmarks.machine import machine_info, print_machine
    from benchmarks.report import print_table, write_json

    set_threads(args.threads)
    set_device(args.device)
    from avloc.jobs.video import localize_video

    width, height = (int(v) for v in args.size.lower().split("x"))
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = make_video(folder / "clip.mp4", args.seconds, (width, height))
        warm = make_video(folder / "warm.mp4", 2.0, (width, height))
        for engine, net in engines(args.model, folder, args.device).items():
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                localize_video(net, warm, folder / "warm_heat.mp4", fps=args.fps, batch_size=batch)
                start = time.perf_counter()
                result = localize_video(
                    net, video, folder / "heat.mp4", fps=args.fps, batch_size=batch
                )
                wall = time.perf_counter() - start
                speed = args.seconds / wall
                rows.append([engine, batch, result.frames, wall, result.frames / wall, speed])
                results.append(
                    {
                        "engine": engine,
                        "batch_size": batch,
                        "frames": result.frames,
                        "wall_s": wall,
                        "frames_per_s": result.frames / wall,
                        "x_real_time": speed,
                    }  # fmt: skip
                )
                print(f"{engine} batch {batch}: {speed:.2f}x real time", flush=True)
    print(
        f"\nHeatmap video, {args.model} network, {args.seconds:g} s of {width}x{height} video "
        f"at {args.fps:g} output frames/s, {args.device}:"
    )
    print_table(["engine", "batch", "frames", "wall s", "frames/s", "x real time"], rows)
    machine = machine_info()
    print_machine(machine)
    write_json(args.json, {"settings": vars(args), "results": results, "machine": machine})


if __name__ == "__main__":
    main()
