"""Latency and throughput of ``avloc localize`` on generated media.

    KERAS_BACKEND=torch python benchmarks/localize.py                  # tiny network
    KERAS_BACKEND=tensorflow python benchmarks/localize.py --model full --json bench.json

Measures, on a 640x480 JPEG and a 10 s 44.1 kHz stereo WAV:

* **cold single pair**: wall time of a fresh ``python -m cli.main localize IMAGE AUDIO`` process
  (interpreter start, imports, model load, decoding, one pair, PNG written), median of
  ``--cold-runs``; plus a breakdown measured inside one fresh process.
* **warm single pair**: in one process after a warm-up: from the files (decode + localise +
  render + write PNG), and the model part alone (preprocess + network + upsampling).
* **batch pairs/s** per batch size: :func:`avloc.localize.localize_many` on decoded pairs, and
  :func:`avloc.localize.run_batch` end to end over a directory (decode, model, PNG per pair).

``--model tiny`` is the quickstart network (width 8, D 64, 112 px); ``--model full`` the paper
setting (ResNet-18 width 64, D 512, 224 px); ``--checkpoint`` uses an existing network. Weights
are random: latency does not depend on them. ``--threads N`` sets the frameworks' intra-op
threads (``OMP_NUM_THREADS``, ``TF_NUM_INTRAOP_THREADS``); on a CPU shared with other jobs one
thread is often faster than oversubscribed cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = {
    "tiny": dict(
        embed_dim=64,
        visual=dict(width=8, stem_pool=False),
        audio=dict(width=8),
        inputs={"image_size": 112, "sample_rate": 16000, "clip_seconds": 3.0},
    ),
    "full": dict(
        embed_dim=512,
        visual=dict(width=64),
        audio=dict(width=64),
        inputs={"image_size": 224, "sample_rate": 16000, "clip_seconds": 3.0},
    ),
}


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def make_media(folder: Path, pairs: int) -> tuple[Path, Path, Path]:
    """One 640x480 JPEG + 10 s stereo WAV, and a directory of ``pairs`` copies."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([x * 255 // 639, y * 255 // 479, (x + y) % 256], -1).astype(np.uint8)
    img[100:250, 200:400] = (230, 40, 40)
    image = folder / "scene.jpg"
    Image.fromarray(img).save(image, quality=90)
    t = np.arange(441000) / 44100
    wave = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(t.size)], 1)
    audio = folder / "sound.wav"
    sf.write(audio, wave.astype(np.float32), 44100)
    batch = folder / "pairs"
    batch.mkdir()
    for i in range(pairs):
        os.link(image, batch / f"p{i:03d}.jpg")
        os.link(audio, batch / f"p{i:03d}.wav")
    return image, audio, batch


def make_network(kind: str, path: Path) -> Path:
    from avloc.models import AudioVisualNet
    from avloc.models.io import save_network

    net = AudioVisualNet(**MODELS[kind], calibration={"uth": 0.5}, name="avnet")
    return save_network(net, path)


def child_cold(checkpoint: str, image: str, audio: str, out: str) -> None:
    """Run inside a fresh process: time imports, model load, decoding and one pair."""
    t0 = time.perf_counter()
    import keras  # noqa: F401

    from avloc import localize as lz

    t1 = time.perf_counter()
    net = lz.load_model(checkpoint=checkpoint)
    t2 = time.perf_counter()
    item = lz.load_item(lz.Item("x", image=Path(image), audio=Path(audio)), net.inputs)
    t3 = time.perf_counter()
    loc = lz.localize_pair(net, item.image, item.wave, uth=0.5)  # any Uth: same cost
    t4 = time.perf_counter()
    lz.write_outputs(loc, item.image, out)
    t5 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "load_model_s": t2 - t1,
                "decode_s": t3 - t2,
                "first_pair_s": t4 - t3,
                "render_write_s": t5 - t4,
            }
        )
    )


def cold(checkpoint: Path, image: Path, audio: Path, folder: Path, runs: int) -> dict:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "localize", str(image), str(audio),
             "--checkpoint", str(checkpoint), "--uth", "0.5", "-o", str(folder / f"cold{i}.png")],
            cwd=ROOT, env=_env(), capture_output=True, text=True,
        )  # fmt: skip
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"cold run failed: {result.stderr.strip()}")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child-cold", str(checkpoint), str(image), str(audio),
         str(folder / "child.png")],
        cwd=ROOT, env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    total = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"cold breakdown failed: {result.stderr.strip()}")
    breakdown = json.loads(result.stdout.strip().splitlines()[-1])
    breakdown["process_total_s"] = total
    return {"cli_runs_s": times, "cli_median_s": statistics.median(times), "breakdown": breakdown}


def warm(net, image: Path, audio: Path, folder: Path, repeats: int) -> dict:
    from avloc import localize as lz

    item = lz.Item("x", image=image, audio=audio)
    loaded = lz.load_item(item, net.inputs)
    for _ in range(2):
        lz.localize_pair(net, loaded.image, loaded.wave)
    files, model = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        x = lz.load_item(item, net.inputs)
        loc = lz.localize_pair(net, x.image, x.wave)
        lz.write_outputs(loc, x.image, folder / "warm.png")
        files.append(time.perf_counter() - start)
        start = time.perf_counter()
        lz.localize_pair(net, loaded.image, loaded.wave)
        model.append(time.perf_counter() - start)
    return {"files_median_s": statistics.median(files), "model_median_s": statistics.median(model)}


def batch(net, image: Path, audio: Path, folder: Path, pairs: int, sizes: list[int]) -> list:
    from avloc import localize as lz

    loaded = lz.load_item(lz.Item("x", image=image, audio=audio), net.inputs)
    items = lz.items_from_directory(folder / "pairs")
    rows = []
    for size in sizes:
        data = [(loaded.image, loaded.wave)] * pairs
        list(lz.localize_many(net, data[:size], batch_size=size))  # warm-up at this shape
        start = time.perf_counter()
        list(lz.localize_many(net, data, batch_size=size))
        in_memory = pairs / (time.perf_counter() - start)
        start = time.perf_counter()
        summary = lz.run_batch(net, items, folder / f"out{size}", batch_size=size)
        end_to_end = pairs / (time.perf_counter() - start)
        assert summary.ok == pairs, summary.failed
        rows.append(
            {"batch_size": size, "model_pairs_per_s": in_memory, "e2e_pairs_per_s": end_to_end}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="benchmark this .keras network instead")
    parser.add_argument("--pairs", type=int, default=32, help="pairs per batch measurement")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=10, help="warm single-pair repeats")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads (0: the framework's default)"
    )
    parser.add_argument("--child-cold", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:  # before any framework import; inherited by the cold-start processes
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ[name] = str(args.threads)
    if args.child_cold:
        child_cold(*args.child_cold)
        return
    from common import machine_info, print_machine

    machine = machine_info()
    from cli.app import quiet_frameworks

    quiet_frameworks()  # no framework start-up chatter in the table
    import keras

    from avloc import localize as lz

    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        folder = Path(tmp)
        image, audio, _ = make_media(folder, args.pairs)
        checkpoint = args.checkpoint or make_network(args.model, folder / "net.keras")
        net = lz.load_model(checkpoint=checkpoint)
        if net.uth is None:
            net.calibration = {"uth": 0.5}
        results = {
            "backend": keras.backend.backend(),
            "model": str(args.checkpoint) if args.checkpoint else args.model,
            "inputs": net.inputs,
            "parameters": int(net.count_params()),
            "media": "640x480 JPEG + 10 s 44.1 kHz stereo WAV",
            "cpu_count": os.cpu_count(),
            "threads": args.threads or "default",
            "cold": cold(checkpoint, image, audio, folder, args.cold_runs),
            "warm": warm(net, image, audio, folder, args.repeats),
            "batch": batch(net, image, audio, folder, args.pairs, sizes),
            "machine": machine,
        }
    print_table(results)
    print_machine(machine)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def print_table(r: dict) -> None:
    b = r["cold"]["breakdown"]
    print(
        f"avloc localize benchmark: backend {r['backend']}, model {r['model']} "
        f"({r['parameters']:,} parameters, {r['inputs']['image_size']} px), "
        f"{r['media']}, {r['cpu_count']} CPUs, threads {r['threads']}"
    )
    print(f"{'measure':<48}{'value':>12}")
    print("-" * 60)
    print(f"{'cold single pair, CLI process (median)':<48}{r['cold']['cli_median_s']:>10.2f} s")
    print(f"{'  fresh process total (breakdown run)':<48}{b['process_total_s']:>10.2f} s")
    for key, label in [
        ("import_s", "  imports"),
        ("load_model_s", "  load model"),
        ("decode_s", "  decode image + audio"),
        ("first_pair_s", "  first pair (model)"),
        ("render_write_s", "  render + write PNG"),
    ]:
        print(f"{label:<48}{b[key]:>10.2f} s")
    print(f"{'warm single pair, from files':<48}{1000 * r['warm']['files_median_s']:>9.1f} ms")
    print(f"{'warm single pair, model only':<48}{1000 * r['warm']['model_median_s']:>9.1f} ms")
    for row in r["batch"]:
        label = f"batch {row['batch_size']}: pairs/s model | end to end"
        print(f"{label:<48}{row['model_pairs_per_s']:>6.1f} |{row['e2e_pairs_per_s']:>5.1f}")


if __name__ == "__main__":
    main()
