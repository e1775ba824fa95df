"""``avloc eval`` (alias ``avloc evaluate``): the negative-audio protocol, a table row per model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, progress_columns, quiet_frameworks, user_errors

EXAMPLE = "Example: avloc eval --dataset vggss --run runs/sslsan --out runs/sslsan/eval --verdict"


def evaluate(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Prepared data set: its folder's name under --data-root (the --out of `avloc "
            "prepare`, e.g. vggss) or a shard directory/file",
        ),
    ] = None,
    runs: Annotated[
        list[Path] | None, typer.Option("--run", help="Run directory (repeat for more rows)")
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help=".keras checkpoint (repeat for more rows)"),
    ] = None,
    samples: Annotated[
        list[Path] | None,
        typer.Option("--samples", help="Saved per-sample results (.npz): recompute, no model"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default evaluations/<data>)")
    ] = None,
    uth: Annotated[
        float | None,
        typer.Option(
            "--uth",
            help="Universal threshold (overrides calibration); with --protocol vssl_eval, on "
            "its map scale",
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Measure Uth (silence/noise maxima), store it in the "
            "checkpoint, then evaluate if --dataset is given",
        ),
    ] = False,
    calibration_data: Annotated[
        Path | None,
        typer.Option("--calibration-data", help="Calibration shards (default: the run's train)"),
    ] = None,
    calibration_samples: Annotated[
        int | None,
        typer.Option(
            "--calibration-samples", min=1, help="Images used to calibrate (default: the run's)"
        ),
    ] = None,
    uth_statistic: Annotated[
        str | None,
        typer.Option(
            "--uth-statistic", help="q1, median, q3, max, mean or pXX (default: the run's)"
        ),
    ] = None,
    calibration_audio: Annotated[
        str | None,
        typer.Option(
            "--calibration-audio",
            help="Comma list of silence, noise, other (another clip's audio); default: the run's",
        ),
    ] = None,
    verdict: Annotated[
        bool,
        typer.Option(
            "--verdict",
            help="Print whether each model localizes and abstains (the quickstart's targets); "
            "exit 3 if one does not",
        ),
    ] = False,
    control: Annotated[
        str | None,
        typer.Option("--control", help="'shuffled': also score audio taken from other samples"),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            help="Comma list of localization, negatives, retrieval, s4, interactive; each "
            "must be computable (default: all the data allow)",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Samples per forward pass")
    ] = 32,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N samples")] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the generated noise and shuffled audio (default 0; with --calibrate: "
            "the run's seed)",
        ),
    ] = None,
    overlays: Annotated[int, typer.Option("--overlays", min=0, help="Samples in the grid")] = 4,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Where names resolve (default data/)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON")] = False,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="avloc (default) or vssl_eval: the conventions of xavijuanola/vssl_eval (its "
            "audio per model, silence and noise without the log, offscreen over 10 seeds, "
            "mean-IoU CIoU; docs/protocol.md)",
        ),
    ] = "avloc",
    floors: Annotated[
        bool,
        typer.Option(
            "--floors/--no-floors",
            help="Add audio-free reference rows (whole image, centre prior, random map) scored "
            "the same way (docs/protocol.md, 'Floors')",
        ),
    ] = True,
) -> None:
    """Evaluate models with positive, silence, noise and offscreen audio (docs/protocol.md)."""
    with user_errors():
        quiet_frameworks()
        from rich.console import Console
        from rich.progress import Progress

        from avloc.jobs import evaluate as ev

        sources = ev.resolve_models(runs or [], checkpoints or [], samples or [])
        check_protocol(protocol, control, metrics, verdict)
        target = output_folder(out, dataset, protocol)
        if dataset is not None or not calibrate:  # an evaluation follows: its outputs first
            ev.EvalOutputs(target).check(sources, protocol)
        console = Console(stderr=as_json)
        columns = progress_columns("samples")
        if calibrate:
            for source in sources:
                audio = (
                    tuple(a.strip() for a in calibration_audio.split(",") if a.strip())
                    if calibration_audio
                    else None
                )
                with Progress(*columns, console=console, transient=True) as bar:
                    task = bar.add_task(f"calibrating {source.name}", total=None)
                    entry = ev.calibrate_checkpoint(
                        source,
                        data=calibration_data,
                        samples=calibration_samples,
                        statistic=uth_statistic,
                        seed=seed,
                        batch_size=batch_size,
                        progress=lambda n, t=task, b=bar: b.advance(t, n),
                        audio=audio,
                    )
                console.print(
                    f"{source.name}: Uth = {entry['uth']:.4f} ({entry['statistic']} of "
                    f"{entry['samples']} images' {' + '.join(entry['audio'])} map maxima), "
                    f"saved in {source.checkpoint}"
                )
            if dataset is None:
                return
        groups = [g.strip() for g in metrics.split(",") if g.strip()] if metrics else None
        if protocol == "vssl_eval":
            run_vssl_eval(sources, dataset, target, uth, batch_size, limit, seed, data_root,
                          floors, as_json, console)  # fmt: skip
            return
        with Progress(*columns, console=console, transient=False) as bar:

            def progress(label: str, total: int):
                task = bar.add_task(f"evaluating {label}", total=total)
                return lambda n: bar.advance(task, n)

            result = ev.evaluate(
                sources,
                dataset,
                target,
                uth=uth,
                control=control,
                metric_groups=groups,
                batch_size=batch_size,
                limit=limit,
                seed=0 if seed is None else seed,
                overlays=overlays,
                data_root_dir=data_root,
                progress=progress,
                floors=floors,
            )
        verdicts = {}
        if verdict:
            from avloc.evaluation.verdict import judge

            verdicts = {
                row["name"]: judge(row["metrics"]) for row in result.rows if not row.get("floor")
            }
        if as_json:
            if verdict:
                from avloc.evaluation.verdict import verdict_json

                for row in result.rows:
                    if row["name"] in verdicts:
                        row["verdict"] = verdict_json(verdicts[row["name"]])
            typer.echo(json.dumps({"models": result.rows}, indent=2))
        else:
            typer.echo(result.text.rstrip())
        console.print(
            f"results: {result.out_dir / 'results.json'}, plots: "
            f"{result.out_dir / 'plots'}, per-sample: {result.out_dir / 'samples'}"
        )
        if verdict:
            from avloc.evaluation.verdict import learned, verdict_lines

            if not as_json:
                for name, outcomes in verdicts.items():
                    typer.echo("")
                    typer.echo("\n".join(verdict_lines(name, outcomes)))
            if not all(learned(o) for o in verdicts.values()):
                raise typer.Exit(3)


PROTOCOLS = ("avloc", "vssl_eval")


def output_folder(out: Path | None, dataset: str | None, protocol: str) -> Path:
    """``--out``, or ``evaluations/<data set>`` (``-vssl_eval`` appended for that protocol)."""
    if out is not None:
        return out
    name = Path(dataset).name if dataset else "saved"
    return Path("evaluations") / (f"{name}-vssl_eval" if protocol == "vssl_eval" else name)


def check_protocol(protocol: str, control, metrics, verdict: bool) -> None:
    from avloc.errors import RecipeError

    if protocol not in PROTOCOLS:
        raise RecipeError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if protocol == "vssl_eval":
        given = [o for o, v in (("--control", control), ("--metrics", metrics)) if v]
        given += ["--verdict"] if verdict else []
        if given:
            raise RecipeError(f"{given[0]} belongs to avloc's protocol, not --protocol vssl_eval")


def run_vssl_eval(
    sources, dataset, target, uth, batch_size, limit, seed, data_root, floors, as_json, console
) -> None:
    """``--protocol vssl_eval``: print the table (or JSON) and say where the files are."""
    from rich.progress import Progress

    from avloc.errors import DataError
    from avloc.jobs.evaluate_vssl import evaluate_vssl

    if dataset is None:
        raise DataError("--protocol vssl_eval needs --dataset")
    with Progress(*progress_columns("samples"), console=console, transient=False) as bar:

        def progress(label: str, total: int):
            task = bar.add_task(f"evaluating {label} (vssl_eval)", total=total)
            return lambda n: bar.advance(task, n)

        result = evaluate_vssl(
            sources, dataset, target, uth=uth, batch_size=batch_size, limit=limit,
            seed=0 if seed is None else seed, data_root_dir=data_root, progress=progress,
            floors=floors,
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"protocol": "vssl_eval", "models": result.rows}, indent=2))
    else:
        typer.echo(result.text.rstrip())
    console.print(f"results: {result.out_dir / 'results.json'}")


app.command("eval", epilog=EXAMPLE)(evaluate)
app.command("evaluate", hidden=True, epilog=EXAMPLE)(evaluate)
