"""``avloc localize``: heatmap of the sounding object in an image + audio or a video, or "none".

avloc localize IMAGE AUDIO -o heat.png [--json] [--raw]
avloc localize VIDEO [AUDIO] [--time SEC] -o heat.png
avloc localize VIDEO -o heat.mp4 [--fps 10] [--start S] [--end S]   (a heatmap video + timeline)
avloc localize DIR|MANIFEST.jsonl -o OUT_DIR          (batch mode, progress bar)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avloc.media.formats import MANIFEST_EXTS, VIDEO_EXTS
from avloc_cli.app import (
    CheckpointOption,
    ModelOption,
    RunOption,
    UthOption,
    app,
    network_and_uth,
    progress_columns,
    user_errors,
)

EXAMPLE = (
    "Example: avloc localize photo.jpg sound.wav --run runs/quickstart -o heat.png "
    "(a video: avloc localize clip.mp4 --run runs/quickstart -o heat.mp4)"
)


def _single_output(out: Path | None, name: str) -> Path:
    if out is None:
        return Path(f"{name}_heat.png")
    if out.is_dir() or str(out).endswith(("/", "\\")):
        return out / f"{name}.png"
    return out


@app.command(epilog=EXAMPLE)
def localize(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="IMAGE AUDIO, or VIDEO [AUDIO], or a directory / JSON Lines manifest (batch)",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output PNG (default NAME_heat.png); a video file (.mp4) for a heatmap video "
            "of a VIDEO input; in batch mode the output directory",
        ),
    ] = None,
    model: ModelOption = None,
    run: RunOption = None,
    checkpoint: CheckpointOption = None,
    time: Annotated[
        float | None,
        typer.Option("--time", min=0.0, help="Seconds into the video/audio (default: the middle)"),
    ] = None,
    uth: UthOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (batch: NAME.json files)")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Also save the raw map as .npy next to the PNG")
    ] = False,
    scale: Annotated[
        str,
        typer.Option("--scale", help="Heatmap colours: 'fixed' (cosine -1..1) or 'minmax'"),
    ] = "fixed",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Pairs (or video frames) per model call")
    ] = 8,
    fps: Annotated[
        float, typer.Option("--fps", help="Heatmap video: output frames per second")
    ] = 10.0,
    start: Annotated[
        float | None, typer.Option("--start", min=0.0, help="Heatmap video: first second")
    ] = None,
    end: Annotated[
        float | None, typer.Option("--end", min=0.0, help="Heatmap video: last second")
    ] = None,
    max_side: Annotated[
        int, typer.Option("--max-side", min=16, help="Heatmap video: longer side of its frames")
    ] = 640,
) -> None:
    """Localise the sounding object, or say that nothing visible is making the sound."""
    with user_errors():
        from avloc.errors import AvlocError

        if scale not in ("fixed", "minmax"):
            raise AvlocError(f"--scale must be 'fixed' or 'minmax', got {scale!r}")
        value_range = "minmax" if scale == "minmax" else (-1.0, 1.0)
        batch = len(inputs) == 1 and (
            inputs[0].is_dir() or inputs[0].suffix.lower() in MANIFEST_EXTS
        )
        from avloc.jobs import localize as lz
        from avloc.utils.files import check_outputs

        if not batch:
            item = lz.item_from_paths(inputs, time)  # argument errors before the model loads
            png = _single_output(out, item.name)
            if png.suffix.lower() not in VIDEO_EXTS:  # and taken output paths
                check_outputs(png, png.with_suffix(".npy") if raw else None)
        net, threshold = network_and_uth(run, checkpoint, uth, model)
        if batch:
            _batch(lz, net, inputs[0], out, threshold, time, batch_size, as_json, raw, value_range)
            return
        if out is not None and out.suffix.lower() in VIDEO_EXTS:
            _video(item, net, out, threshold, fps, start, end, batch_size, max_side, value_range)
            return
        loaded = lz.load_item(item, net.inputs)
        loc = lz.localize_pair(net, loaded.image, loaded.wave, uth=threshold)
        extra = item.describe()
        if loaded.time is not None:
            extra["time"] = loaded.time
        record = lz.write_outputs(
            loc,
            loaded.image,
            png,
            raw=png.with_suffix(".npy") if raw else None,
            extra=extra,
            value_range=value_range,
        )
        if as_json:
            typer.echo(json.dumps(record, sort_keys=True))
        else:
            typer.echo(loc.caption())
            typer.echo(f"  heatmap: {png}")
            if raw:
                typer.echo(f"  raw map: {record['raw']}")


def _batch(lz, net, source, out, threshold, time, batch_size, as_json, raw, value_range):
    from rich.console import Console
    from rich.progress import Progress

    from avloc.errors import AvlocError

    if out is None:
        raise AvlocError(f"{source}: batch mode needs an output directory: -o DIR")
    if source.is_dir():
        items = lz.items_from_directory(source, time)
    else:
        items = lz.items_from_manifest(source, time)
    console = Console(stderr=True)
    # Columns without markup: an error line printed mid-run must not break the label.
    with Progress(*progress_columns("items"), console=console) as progress:
        task = progress.add_task("localizing", total=len(items))

        def report(message: str) -> None:
            console.print(f"avloc: error: {message}", soft_wrap=True, markup=False, highlight=False)

        summary = lz.run_batch(
            net,
            items,
            out,
            uth=threshold,
            batch_size=batch_size,
            write_json=as_json,
            write_raw=raw,
            value_range=value_range,
            on_progress=lambda n: progress.advance(task, n),
            on_error=report,
        )
    typer.echo(
        f"Localized {summary.ok} of {summary.total} item(s): {summary.sounding} sounding, "
        f"{summary.ok - summary.sounding} with no sounding object found."
    )
    typer.echo(f"  outputs: {out}")
    typer.echo(f"  results: {summary.results}")
    if summary.failed:
        typer.echo(f"avloc: {len(summary.failed)} item(s) failed (see above)", err=True)
        raise typer.Exit(1)


def _video(item, net, out, threshold, fps, start, end, batch_size, max_side, value_range):
    from rich.console import Console
    from rich.progress import Progress

    from avloc.errors import AvlocError
    from avloc.jobs.video import localize_video

    if item.video is None or item.audio is not None:
        raise AvlocError(f"{out}: a heatmap video needs one VIDEO input (its own audio track)")
    with Progress(
        *progress_columns("frames"), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("frames", total=None)
        result = localize_video(
            net,
            item.video,
            out,
            uth=threshold,
            fps=fps,
            start=start,
            end=end,
            batch_size=batch_size,
            max_side=max_side,
            value_range=value_range,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    typer.echo(
        f"Localized {result.frames} frames at {fps:g} frames/s: {result.sounding_frames} "
        f"sounding, {result.frames - result.sounding_frames} with nothing visible sounding."
    )
    typer.echo(f"  heatmap video: {result.video}")
    typer.echo(f"  timeline:      {result.timeline_json}, {result.timeline_csv.name}")
    typer.echo(f"  plot:          {result.timeline_png}")
