"""Latency and throughput of ``avloc localize`` on generated media.

    KERAS_BACKEND=torch python3 -m benchmarks.localize                  # tiny network
    KERAS_BACKEND=tensorflow python3 -m benchmarks.localize --model full --json bench.json

Measures, on a 640x480 JPEG and a 10 s 44.1 kHz stereo WAV:

* **cold single pair**: wall time of a fresh ``python -m avloc_cli.main localize IMAGE AUDIO``
  process (interpreter start, imports, model load, decoding, one pair, PNG written), median of
  ``--cold-runs``, through Keras (``AVLOC_TORCH_INFER=0``) and from the cached plain-torch copy
  (:mod:`avloc.maps.torch_engine`, what every start after a network's first uses on torch), plus the
  first start with an empty cache; and a breakdown of each measured inside one fresh process.
* **warm single pair**: in one process after a warm-up: from the files (decode + localise +
  render + write PNG), and the model part alone (preprocess + network + upsampling).
* **batch pairs/s** per batch size, for both engines: :func:`avloc.jobs.localize.localize_many` on
  decoded pairs, and :func:`avloc.jobs.localize.run_batch` end to end over a directory (decode,
  model, PNG per pair).

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

from benchmarks.processes import ROOT, benchmark_command

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
    from avloc.runtime import configure

    configure(MODELS[kind])  # this process's kernels for its widths, as avloc does before building
    net = AudioVisualNet(**MODELS[kind], calibration={"uth": 0.5}, name="avnet")
    return save_network(net, path)


def child_cold(checkpoint: str, image: str, audio: str, out: str) -> None:
    """Run inside a fresh process: time imports, model load, decoding and one pair.

    With ``AVLOC_TORCH_INFER=0`` the Keras path (``import keras`` first, as the CLI then does);
    otherwise the cached plain-torch network, falling back to Keras without a cache entry.
    """
    t0 = time.perf_counter()
    if os.environ.get("AVLOC_TORCH_INFER") == "0":
        import keras  # noqa: F401

    from avloc.jobs import localize as lz

    t1 = time.perf_counter()
    net = lz.load_cached_model(checkpoint=checkpoint) or lz.load_model(checkpoint=checkpoint)
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
                "engine": type(net).__name__,
                "import_s": t1 - t0,
                "load_model_s": t2 - t1,
                "decode_s": t3 - t2,
                "first_pair_s": t4 - t3,
                "render_write_s": t5 - t4,
            }
        )
    )


def _cli_start(checkpoint: Path, image: Path, audio: Path, out: Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "avloc_cli.main", "localize", str(image), str(audio),
         "--checkpoint", str(checkpoint), "--uth", "0.5", "-o", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"cold run failed: {result.stderr.strip()}")
    return time.perf_counter() - start


def _breakdown(checkpoint: Path, image: Path, audio: Path, out: Path, env: dict) -> dict:
    start = time.perf_counter()
    result = subprocess.run(
        benchmark_command("localize", "--child-cold", str(checkpoint), str(image), str(audio),
                          str(out)),
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    total = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"cold breakdown failed: {result.stderr.strip()}")
    breakdown = json.loads(result.stdout.strip().splitlines()[-1])
    breakdown["process_total_s"] = total
    return breakdown


def cold(checkpoint: Path, image: Path, audio: Path, folder: Path, runs: int) -> dict:
    """Fresh CLI processes: through Keras, the first start (Keras, writes the torch cache) with
    an empty cache, and cached starts (plain torch), each with a breakdown run."""
    keras_env = {**_env(), "AVLOC_TORCH_INFER": "0"}
    keras_runs = [
        _cli_start(checkpoint, image, audio, folder / f"keras{i}.png", keras_env)
        for i in range(runs)
    ]
    cache_env = {**_env(), "AVLOC_CACHE": str(folder / "cache"), "AVLOC_TORCH_INFER": "1"}
    first = _cli_start(checkpoint, image, audio, folder / "first.png", cache_env)
    cached_runs = [
        _cli_start(checkpoint, image, audio, folder / f"cached{i}.png", cache_env)
        for i in range(runs)
    ]
    return {
        "keras_runs_s": keras_runs,
        "keras_median_s": statistics.median(keras_runs),
        "first_start_s": first,
        "cached_runs_s": cached_runs,
        "cached_median_s": statistics.median(cached_runs),
        "breakdown_keras": _breakdown(checkpoint, image, audio, folder / "bk.png", keras_env),
        "breakdown_cached": _breakdown(checkpoint, image, audio, folder / "bc.png", cache_env),
    }


def warm(net, image: Path, audio: Path, folder: Path, repeats: int) -> dict:
    from avloc.jobs import localize as lz

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
    """Pairs/s of ``net`` per batch size (run_batch reads ``folder/pairs``, writes beside it)."""
    from avloc.jobs import localize as lz

    loaded = lz.load_item(lz.Item("x", image=image, audio=audio), net.inputs)
    items = lz.items_from_directory(folder / "pairs")
    name = type(net).__name__
    rows = []
    for size in sizes:
        data = [(loaded.image, loaded.wave)] * pairs
        list(lz.localize_many(net, data[:size], batch_size=size))  # warm-up at this shape
        start = time.perf_counter()
        list(lz.localize_many(net, data, batch_size=size))
        in_memory = pairs / (time.perf_counter() - start)
        start = time.perf_counter()
        summary = lz.run_batch(net, items, folder / f"{name}-out{size}", batch_size=size)
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
    from benchmarks.machine import machine_info, print_machine

    machine = machine_info()
    from avloc_cli.app import quiet_frameworks

    quiet_frameworks()  # no framework start-up chatter in the table
    import keras

    from avloc.jobs import localize as lz

    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        folder = Path(tmp)
        image, audio, _ = make_media(folder, args.pairs)
        checkpoint = args.checkpoint or make_network(args.model, folder / "net.keras")
        os.environ["AVLOC_CACHE"] = str(folder / "cache-main")
        net = lz.load_model(checkpoint=checkpoint)  # writes the torch copy
        torch_net = lz.load_cached_model(checkpoint=checkpoint)
        nets = {"keras": net, **({"torch": torch_net} if torch_net is not None else {})}
        for each in nets.values():
            if each.uth is None:
                each.calibration = {"uth": 0.5}
        results = {
            "backend": keras.backend.backend(),
            "model": str(args.checkpoint) if args.checkpoint else args.model,
            "inputs": net.inputs,
            "parameters": int(net.count_params()),
            "media": "640x480 JPEG + 10 s 44.1 kHz stereo WAV",
            "cpu_count": os.cpu_count(),
            "threads": args.threads or "default",
            "cold": cold(checkpoint, image, audio, folder, args.cold_runs),
            "warm": {k: warm(n, image, audio, folder, args.repeats) for k, n in nets.items()},
            "batch": {
                k: batch(n, image, audio, folder, args.pairs, sizes) for k, n in nets.items()
            },
            "machine": machine,
        }
    print_table(results)
    print_machine(machine)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def print_table(r: dict) -> None:
    c = r["cold"]
    print(
        f"avloc localize benchmark: backend {r['backend']}, model {r['model']} "
        f"({r['parameters']:,} parameters, {r['inputs']['image_size']} px), "
        f"{r['media']}, {r['cpu_count']} CPUs, threads {r['threads']}"
    )
    print(f"{'measure':<52}{'keras':>10}{'torch':>10}")
    print("-" * 72)
    print(f"{'cold single pair, CLI process (median)':<52}{c['keras_median_s']:>8.2f} s"
          f"{c['cached_median_s']:>8.2f} s")  # fmt: skip
    print(f"{'  first start of a network (writes the torch cache)':<52}{'':>10}"
          f"{c['first_start_s']:>8.2f} s")  # fmt: skip
    bk, bc = c["breakdown_keras"], c["breakdown_cached"]
    for key, label in [
        ("process_total_s", "  fresh process total (breakdown run)"),
        ("import_s", "  imports"),
        ("load_model_s", "  load model"),
        ("decode_s", "  decode image + audio"),
        ("first_pair_s", "  first pair (model)"),
        ("render_write_s", "  render + write PNG"),
    ]:
        print(f"{label:<52}{bk[key]:>8.2f} s{bc[key]:>8.2f} s")
    for engine, w in r["warm"].items():
        label = f"warm single pair ({engine}): from files | model only"
        files, model = 1000 * w["files_median_s"], 1000 * w["model_median_s"]
        print(f"{label:<52}{files:>7.1f} ms{model:>7.1f} ms")
    for engine, rows in r["batch"].items():
        for row in rows:
            label = f"batch {row['batch_size']} ({engine}): pairs/s model | end to end"
            print(f"{label:<52}{row['model_pairs_per_s']:>8.1f}  {row['e2e_pairs_per_s']:>8.1f}")
    print(
        "keras: AVLOC_TORCH_INFER=0, the network through Keras; torch: the cached plain-torch "
        "copy (avloc/maps/torch_engine.py), as avloc localize starts from the second run on"
    )


if __name__ == "__main__":
    main()
