"""Negative-audio evaluation: shared visual features vs one network pass per audio condition.

    python3 -m benchmarks.evaluation --json evaluation.json

Writes ``--samples`` synthetic test scenes (images of ``--stored-size`` px, their audio and an
off-screen clip) as shards in a temporary directory, builds one network with random weights
(ResNet-18 pair, width 64, D 512, 224 px: the paper setting; ``--width``, ``--dim``,
``--image-size``, ``--clip-seconds`` shrink it for a smoke test) and times two ways of getting
every sample's similarity maps for the four audio conditions (positive, silence, noise,
off-screen), on the current ``KERAS_BACKEND``:

- ``shared``: :func:`avloc.maps.records.collect_records`, what ``avloc eval`` runs: the
  visual map once per image, all of a batch's clips through the audio encoder in one call, the
  silence embedding once, each condition's map a dot product;
- ``naive``: one full forward pass of the network per condition and batch (visual and audio
  branch both, so the visual branch is computed four times), the same clips and spectrograms;

Both run their network calls under :func:`avloc.runtime.backend.inference_mode` (no autograd graph
on
torch), as ``avloc eval`` does.

Both read the shards and compute the same spectrograms inside the timed region; images are
preprocessed once per batch in both. They run in ``--repeats`` interleaved rounds (shared, naive,
shared, ...) over all samples after one untimed warm-up batch each; ``--threads N`` sets the
frameworks' intra-op threads. Reported: **samples/s**
(median over rounds, min-max) and the speed-up (median over rounds of shared / naive samples/s
in the same round), and the largest absolute difference between the two methods' maps per
condition (cosine units; float rounding only, as batch norm runs in inference mode). Timing
only: nothing is asserted.
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

from benchmarks.environment import set_threads  # noqa: E402
from benchmarks.flops import ezvsl_forward_flops  # noqa: E402
from benchmarks.machine import machine_info, print_machine  # noqa: E402
from benchmarks.report import print_table, write_json  # noqa: E402
from benchmarks.timing import alternate, paired_ratio, summarize  # noqa: E402

CONDITIONS = ("positive", "silence", "noise", "offscreen")


def make_shards(folder: Path, samples: int, stored_size: int) -> tuple[Path, float]:
    from avloc.data.prepare_synthetic import prepare_synthetic
    from avloc.data.synthetic import SyntheticConfig

    start = time.perf_counter()
    prepare_synthetic(folder, train=0, test=samples, config=SyntheticConfig(image_size=stored_size))
    return folder / "test", time.perf_counter() - start


def build_net(args):
    import keras

    from avloc.models import AudioVisualNet
    from avloc.runtime import configure

    configure(widths=[args.width])  # this process's kernels, as avloc does before building
    keras.utils.set_random_seed(0)
    return AudioVisualNet(
        embed_dim=args.dim,
        visual=dict(width=args.width),
        audio=dict(width=args.width),
        inputs={
            "image_size": args.image_size,
            "sample_rate": 16000,
            "clip_seconds": args.clip_seconds,
        },
        name="avnet",
    )


def numpy(x) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x), dtype=np.float32)


def shared_maps(net, shards, indices, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    from avloc.maps.records import collect_records

    records = collect_records(
        net,
        shards,
        indices=indices,
        batch_size=batch_size,
        seed=seed,
        negatives=("silence", "noise", "offscreen"),
    )
    return records.maps


def naive_maps(net, shards, indices, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One full forward pass (visual + audio) per condition and batch; same inputs as shared."""
    from avloc.inputs.contract import InputContract
    from avloc.inputs.images import preprocess_test
    from avloc.maps.conditions import noise_rng
    from avloc.runtime.backend import inference_mode

    size = int(net.inputs["image_size"])
    contract = InputContract(net.inputs)
    rate = int(shards.attrs.get("sample_rate", 16000))
    silence = contract.silence()
    maps: dict[str, list[np.ndarray]] = {c: [] for c in CONDITIONS}
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start : start + batch_size]
        rows = shards.read(batch_idx, ["image", "audio", "offscreen_audio"])
        images = np.stack([preprocess_test(i, size) for i in rows["image"]])
        spectrograms = {
            "positive": [contract.spectrogram(w, rate) for w in rows["audio"]],
            "silence": [silence] * len(batch_idx),
            "noise": [contract.noise(noise_rng(seed, i)) for i in batch_idx],
            "offscreen": [contract.spectrogram(w, rate) for w in rows["offscreen_audio"]],
        }
        for condition, specs in spectrograms.items():
            with inference_mode():
                out = net({"image": images, "audio": np.stack(specs)[..., None]})
            v, a = numpy(out["v_map"]), numpy(out["a_emb"])
            maps[condition].append(np.einsum("bhwd,bd->bhw", v, a))
    return {c: np.concatenate(m) for c, m in maps.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64, help="synthetic test scenes")
    parser.add_argument("--stored-size", type=int, default=256, help="image side in the shards")
    parser.add_argument("--batch", type=int, default=16, help="evaluation batch size")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    machine = machine_info()

    import keras

    from avloc.data.shards import ShardSet
    from avloc.inputs.spectrogram import spectrogram

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        location, seconds = make_shards(Path(tmp), args.samples, args.stored_size)
        shards = ShardSet(location)
        print(f"wrote {len(shards)} synthetic test scenes in {seconds:.1f} s", flush=True)
        net = build_net(args)
        indices = np.arange(len(shards))
        outputs: dict[str, dict[str, np.ndarray]] = {}
        methods = {"shared": shared_maps, "naive": naive_maps}
        for fn in methods.values():  # warm-up: one batch each, untimed
            fn(net, shards, indices[: args.batch], args.batch)

        def timed(name):
            def run():
                start = time.perf_counter()
                outputs[name] = methods[name](net, shards, indices, args.batch)
                return len(indices) / (time.perf_counter() - start)

            return run

        print(f"timing shared vs naive: {args.repeats} rounds x {len(indices)} samples ...")
        values, failed = alternate(
            {name: timed(name) for name in methods},
            args.repeats,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )

    diffs = {}
    if "shared" in outputs and "naive" in outputs:
        for c in CONDITIONS:
            diffs[c] = float(np.max(np.abs(outputs["shared"][c] - outputs["naive"][c])))
    speedup = paired_ratio(values["shared"], values["naive"])
    freq, frames = spectrogram(np.zeros(int(round(16000 * args.clip_seconds)))).shape
    f = ezvsl_forward_flops(1, args.image_size, (freq, frames), args.width, args.dim)
    visual = f["visual_per_sample"] + f["img_proj_per_sample"]
    audio = f["audio_per_sample"] + f["aud_proj_per_sample"]
    gflop = {"shared": (visual + 3 * audio) / 1e9, "naive": 4 * (visual + audio) / 1e9}
    passes = {
        "shared": "1 visual + 1 audio (3B clips); silence once",
        "naive": "4 x (visual + audio, B each)",
    }
    for name in methods:
        results[name] = {
            "samples_per_s": summarize(values[name]),
            "rounds": values[name],
            "network_calls_per_batch": passes[name],
            "network_gflop_per_sample": gflop[name],
            "error": failed.get(name),
        }

    print()
    print(
        f"negative-audio evaluation, backend {keras.backend.backend()}: {len(indices)} samples, "
        f"batch {args.batch}, 4 conditions (positive, silence, noise, offscreen), ResNet-18 "
        f"width {args.width}, D {args.dim}, {args.image_size} px; {args.repeats} interleaved "
        "rounds"
    )
    rows = []
    for name, r in results.items():
        s = r["samples_per_s"]
        rows.append(
            [
                name,
                r["network_calls_per_batch"],
                r["network_gflop_per_sample"],
                s["median"],
                f"{s['min']:.3g}-{s['max']:.3g}" if s["n"] else "-",
            ]
        )
    print_table(["method", "network calls per batch", "GFLOP/sample", "samples/s", "min-max"], rows)
    print(
        f"speed-up of shared over naive: {f'{speedup:.2f}x' if speedup else '-'} "
        "(median over rounds of shared / naive samples/s in the same round); network FLOPs "
        f"alone would give {gflop['naive'] / gflop['shared']:.2f}x"
    )
    if diffs:
        text = ", ".join(f"{c} {d:.2e}" for c, d in diffs.items())
        print(f"max |shared - naive| of the maps (cosine units): {text}")
    for name, r in results.items():
        if r["error"]:
            print(f"{name}: failed: {r['error']}")
    print_machine(machine)
    write_json(
        args.json,
        {
            "benchmark": "evaluation",
            "units": "samples/s (4 audio conditions per sample); speed-up = shared / naive",
            "backend": keras.backend.backend(),
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "methods": results,
            "speedup": speedup,
            "max_abs_map_diff": diffs,
            "machine": machine,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
