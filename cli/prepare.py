"""``avloc prepare SOURCE``: turn media and annotations into avloc shards.

One thin command per registered source (:mod:`avloc.data.sources`) plus ``synthetic`` and
``inspect``. The work is :func:`avloc.data.prepare.prepare`; these functions parse options,
show a progress bar (rate and ETA) and print the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import prepare_app, progress_columns, user_errors

# Options every corpus command shares.
Out = Annotated[Path, typer.Option("--out", help="Output directory (one per data set)")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="Decoding processes")]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Samples per shard")]
ImageSize = Annotated[
    int | None,
    typer.Option("--image-size", min=8, help="Stored image side (default 224 test, 256 train)"),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the offscreen clip choice")]
ClassGroups = Annotated[
    Path | None,
    typer.Option(
        "--class-groups",
        help='JSON {"group": ["class", ...]}: classes of one group are never each other\'s '
        "offscreen clip (default: person and human-voice classes form one group)",
    ),
]
Offscreen = Annotated[
    bool, typer.Option("--offscreen/--no-offscreen", help="Store an offscreen clip (test sets)")
]
MinAudio = Annotated[
    float,
    typer.Option("--min-audio-seconds", min=0.0, help="Shorter audio files are skipped"),
]
AudioSeconds = Annotated[
    float,
    typer.Option(
        "--audio-seconds",
        help="Seconds of audio stored per sample, centred on the frame (10: the whole "
        "VGGSound clip, which --protocol vssl_eval's windows are cut from)",
    ),
]
Layout = Annotated[
    str, typer.Option("--layout", help="auto | video | extracted (frames/ + audio/)")
]
Part = Annotated[
    str,
    typer.Option(
        "--part", help="I/N: prepare only part I of N (a job array's task); parts share --out"
    ),
]


def _run(
    source: str, out: Path, workers: int, shard_size: int, part: str, /, **options: Any
) -> None:
    with user_errors():
        from rich.progress import Progress, TimeElapsedColumn

        from avloc.data.prepare import parse_part, prepare
        from avloc.data.sources import build_preparer

        which = parse_part(part)
        plan = build_preparer(source, **options).plan()  # annotation errors before the bar
        columns = (*progress_columns("samples"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(source, total=None)
            result = prepare(
                plan,
                out,
                workers=workers,
                shard_size=shard_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                part=which,
            )
        rate = result.decoded / result.seconds if result.seconds > 0 else 0.0
        if which[1] > 1:
            typer.echo(
                f"part {which[0]}/{which[1]}: report.tsv and prepare.json cover every part "
                "finished so far"
            )
        typer.echo(
            f"{result.source} ({result.split}): {result.written} of {result.planned} samples in "
            f"{len(result.shards)} shard(s) under {result.out} "
            f"({result.new_shards} written, {result.reused_shards} kept from an earlier run)"
        )
        typer.echo(
            f"decoded {result.decoded} sample(s) in {result.seconds:.1f} s "
            f"({rate:.1f} samples/s, {workers} worker(s)); {len(result.class_names)} classes"
        )
        for note in result.notes:
            typer.echo(note)
        if result.skipped:
            typer.echo(f"skipped {len(result.skipped)} broken input(s): see {result.report}")
        else:
            typer.echo(f"skipped 0 inputs (report: {result.report})")


@prepare_app.command(
    "synthetic",
    epilog="Example: avloc prepare synthetic --out data/synthetic --train 1200 --test 200",
)
def prepare_synthetic(
    out: Annotated[Path, typer.Option("--out", help="Output directory")],
    train: Annotated[int, typer.Option("--train", min=0, help="Training samples")] = 1200,
    test: Annotated[int, typer.Option("--test", min=0, help="Test samples")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 0,
    image_size: Annotated[int, typer.Option("--image-size", help="Image side, pixels")] = 128,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (2-12)")] = 8,
    object_scale: Annotated[
        str,
        typer.Option(
            "--object-scale",
            help="LOW,HIGH: range of an object's side as a fraction of the image side",
        ),
    ] = "0.19,0.36",
    shard_size: ShardSize = 250,
    part: Part = "1/1",
) -> None:
    """The built-in synthetic scenes: objects with sounds, one of them sounding."""
    with user_errors():
        from rich.progress import Progress

        from avloc.data.prepare import parse_part, part_range
        from avloc.data.prepare_synthetic import prepare_synthetic as run_prepare
        from avloc.data.synthetic import SyntheticConfig
        from avloc.errors import RecipeError

        which = parse_part(part)
        try:
            scale = tuple(float(x) for x in object_scale.split(","))
        except ValueError:
            raise RecipeError(f"--object-scale: expected LOW,HIGH, got {object_scale!r}") from None
        config = SyntheticConfig(image_size=image_size, num_classes=classes, object_scale=scale)
        total = 0  # samples of this part, for the bar
        for count in (train, test):
            starts = range(0, count, shard_size)
            total += sum(min(shard_size, count - starts[i]) for i in part_range(len(starts), which))
        with Progress(transient=False) as progress:
            bar = progress.add_task("synthetic scenes", total=total)
            shards = run_prepare(
                out,
                train=train,
                test=test,
                seed=seed,
                config=config,
                shard_size=shard_size,
                progress=lambda n: progress.advance(bar, n),
                part=which,
            )
        for split, paths in shards.items():
            typer.echo(f"{split}: {len(paths)} shard(s) in {out / split}")


@prepare_app.command(
    "vggsound",
    epilog="Example: avloc prepare vggsound --root VGGSound/ --ids vggss_144k.txt "
    "--out data/vggsound144k --workers 8",
)
def prepare_vggsound(
    root: Annotated[Path, typer.Option("--root", help="Videos, or frames/ + audio/")],
    out: Out,
    ids: Annotated[Path | None, typer.Option("--ids", help="Id list (vggss_144k.txt)")] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="vggsound.csv or id,class rows")
    ] = None,
    layout: Layout = "auto",
    frame_time: Annotated[
        float | None, typer.Option("--frame-time", help="Frame time, s (default: middle)")
    ] = None,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    min_audio_seconds: MinAudio = 1.0,
    part: Part = "1/1",
) -> None:
    """VGGSound training pairs: a frame and the 3 s of audio around it."""
    _run(
        "vggsound",
        out,
        workers,
        shard_size,
        part,
        root=root,
        ids=ids,
        labels=labels,
        layout=layout,
        frame_time=frame_time,
        image_size=image_size,
        min_audio_seconds=min_audio_seconds,
    )


@prepare_app.command(
    "vggss",
    epilog="Example: avloc prepare vggss --root VGGSound/ --annotations vggss.json "
    "--out data/vggss",
)
def prepare_vggss(
    root: Annotated[Path, typer.Option("--root", help="Videos, or frames/ + audio/")],
    annotations: Annotated[Path, typer.Option("--annotations", help="vggss.json")],
    out: Out,
    layout: Layout = "auto",
    frame_time: Annotated[
        float, typer.Option("--frame-time", help="Annotated frame time in videos, s")
    ] = 5.0,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    seed: Seed = 0,
    offscreen: Offscreen = True,
    class_groups: ClassGroups = None,
    min_audio_seconds: MinAudio = 1.0,
    audio_seconds: AudioSeconds = 3.0,
    part: Part = "1/1",
) -> None:
    """VGG-SS test set: normalised boxes, ground truth 'boxes', offscreen clips."""
    _run(
        "vggss",
        out,
        workers,
        shard_size,
        part,
        root=root,
        annotations=annotations,
        layout=layout,
        frame_time=frame_time,
        image_size=image_size,
        seed=seed,
        offscreen=offscreen,
        class_groups=class_groups,
        min_audio_seconds=min_audio_seconds,
        audio_seconds=audio_seconds,
    )


@prepare_app.command(
    "flickr", epilog="Example: avloc prepare flickr --root Flickr-SoundNet/ --out data/flickr"
)
def prepare_flickr(
    root: Annotated[Path, typer.Option("--root", help="Annotations/, frames/, audio/")],
    out: Out,
    ids: Annotated[Path | None, typer.Option("--ids", help="Id list (flickr_test.csv)")] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="id,class rows (for offscreen clips)")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="XML folder (default ROOT/Annotations)")
    ] = None,
    frames: Annotated[
        Path | None, typer.Option("--frames", help="Image folder (default ROOT/frames)")
    ] = None,
    audio: Annotated[
        Path | None, typer.Option("--audio", help="Audio folder (default ROOT/audio)")
    ] = None,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    seed: Seed = 0,
    offscreen: Offscreen = True,
    class_groups: ClassGroups = None,
    min_audio_seconds: MinAudio = 1.0,
    audio_seconds: AudioSeconds = 3.0,
    part: Part = "1/1",
) -> None:
    """Flickr-SoundNet test set: 256 px annotator boxes -> soft consensus ground truth."""
    _run(
        "flickr",
        out,
        workers,
        shard_size,
        part,
        root=root,
        ids=ids,
        labels=labels,
        annotations=annotations,
        frames=frames,
        audio=audio,
        image_size=image_size,
        seed=seed,
        offscreen=offscreen,
        class_groups=class_groups,
        min_audio_seconds=min_audio_seconds,
        audio_seconds=audio_seconds,
    )


@prepare_app.command(
    "is3", epilog="Example: avloc prepare is3 --annotations synthetic3240_bbox.json --out data/is3"
)
def prepare_is3(
    annotations: Annotated[
        Path, typer.Option("--annotations", help="synthetic3240_bbox.json (image, audio, gt_box)")
    ],
    out: Out,
    root: Annotated[
        Path | None, typer.Option("--root", help="Where the media are (default: JSON folder)")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option("--masks", help="Mask JSON (image, audio, mask) or folder")
    ] = None,
    box_frame: Annotated[
        float, typer.Option("--box-frame", help="Pixel frame of the boxes")
    ] = 224.0,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    seed: Seed = 0,
    offscreen: Offscreen = True,
    class_groups: ClassGroups = None,
    min_audio_seconds: MinAudio = 1.0,
    audio_seconds: AudioSeconds = 3.0,
    part: Part = "1/1",
) -> None:
    """IS3: two sounds per image, one row per (image, sound) pair, boxes or masks."""
    _run(
        "is3",
        out,
        workers,
        shard_size,
        part,
        annotations=annotations,
        root=root,
        masks=masks,
        box_frame=box_frame,
        image_size=image_size,
        seed=seed,
        offscreen=offscreen,
        class_groups=class_groups,
        min_audio_seconds=min_audio_seconds,
        audio_seconds=audio_seconds,
    )


@prepare_app.command(
    "avsbench-s4",
    epilog="Example: avloc prepare avsbench-s4 --root AVSBench/Single-source --out data/s4",
)
def prepare_avsbench_s4(
    root: Annotated[Path, typer.Option("--root", help="Single-source/ (s4_meta_data.csv)")],
    out: Out,
    split: Annotated[str, typer.Option("--split", help="test | val | train")] = "test",
    meta: Annotated[
        Path | None, typer.Option("--meta", help="Meta CSV (default ROOT/s4_meta_data.csv)")
    ] = None,
    videos: Annotated[
        Path | None,
        typer.Option("--videos", help="Raw videos: frame k at (k - 1 + 15/16) s, as AVSBench"),
    ] = None,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    seed: Seed = 0,
    offscreen: Offscreen = True,
    class_groups: ClassGroups = None,
    min_audio_seconds: MinAudio = 1.0,
    part: Part = "1/1",
) -> None:
    """AVSBench S4: 5 frames per video with masks and the video's 5 s audio."""
    _run(
        "avsbench-s4",
        out,
        workers,
        shard_size,
        part,
        root=root,
        split=split,
        meta=meta,
        videos=videos,
        image_size=image_size,
        seed=seed,
        offscreen=offscreen,
        class_groups=class_groups,
        min_audio_seconds=min_audio_seconds,
    )


@prepare_app.command(
    "manifest", epilog="Example: avloc prepare manifest my_data.jsonl --name mine --out data/mine"
)
def prepare_manifest(
    manifest: Annotated[Path, typer.Argument(help="JSON Lines manifest (docs/formats.md)")],
    out: Out,
    root: Annotated[
        Path | None, typer.Option("--root", help="Base of relative paths (default: its folder)")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="test | train")] = "test",
    name: Annotated[str, typer.Option("--name", help="Source name and shard prefix")] = (
        "manifest"
    ),
    box_format: Annotated[
        str, typer.Option("--box-format", help="normalized | pixel (lines may override)")
    ] = "normalized",
    ground_truth: Annotated[
        str, typer.Option("--ground-truth", help="auto | boxes | consensus | mask | none")
    ] = "auto",
    keep_silent: Annotated[
        bool, typer.Option("--keep-silent", help="Keep silent clips (negative test cases)")
    ] = False,
    workers: Workers = 1,
    shard_size: ShardSize = 500,
    image_size: ImageSize = None,
    seed: Seed = 0,
    offscreen: Offscreen = True,
    class_groups: ClassGroups = None,
    min_audio_seconds: MinAudio = 1.0,
    part: Part = "1/1",
) -> None:
    """Any data set listed in a JSON Lines manifest (IS3+, your own data)."""
    _run(
        "manifest",
        out,
        workers,
        shard_size,
        part,
        manifest=manifest,
        root=root,
        split=split,
        name=name,
        box_format=box_format,
        ground_truth=ground_truth,
        keep_silent=keep_silent,
        image_size=image_size,
        seed=seed,
        offscreen=offscreen,
        class_groups=class_groups,
        min_audio_seconds=min_audio_seconds,
    )


@prepare_app.command(
    "inspect", epilog="Example: avloc prepare inspect data/vggss --png inspect.png"
)
def inspect(
    shards: Annotated[Path, typer.Argument(help="A shard file or a directory of shards")],
    png: Annotated[
        Path | None, typer.Option("--png", help="Sample sheet (default SHARDS/inspect.png)")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=0, help="Samples drawn")] = 8,
) -> None:
    """Counts, classes, fields and a few samples drawn with their boxes."""
    with user_errors():
        from avloc.data.inspect import inspect_shards

        if png is None:
            png = (shards if shards.is_dir() else shards.parent) / "inspect.png"
        s = inspect_shards(shards, png=png, samples=samples)
        attrs = ", ".join(f"{k}={v}" for k, v in s.attrs.items())
        typer.echo(f"{s.location}: {s.count} samples in {s.shards} shard(s); {attrs}")
        typer.echo("fields:")
        for field, (dtype, shape) in s.fields.items():
            typer.echo(f"  {field:<16} {dtype:<8} {shape}")
        if s.classes:
            top = ", ".join(f"{name} {n}" for name, n in s.classes[:10])
            more = f" (+{len(s.classes) - 10} more)" if len(s.classes) > 10 else ""
            typer.echo(f"classes: {len(s.classes)} with samples: {top}{more}")
        if s.unlabelled:
            typer.echo(f"unlabelled samples: {s.unlabelled}")
        if s.groups is not None:
            typer.echo(f"images (groups): {s.groups}")
        if s.boxes_per_sample is not None:
            typer.echo(f"boxes per sample: {s.boxes_per_sample:.2f}")
        if s.skipped is not None:
            typer.echo(f"inputs skipped at preparation: {s.skipped} (report.tsv)")
        if s.png is not None:
            typer.echo(f"samples drawn: {s.png} ({', '.join(s.shown)})")
