"""``avloc reproduce synthetic``: the SSL-SaN paper's claims in miniature, trained and tested here.

Writes ``OUT/synthetic.md``, ``OUT/synthetic.json`` and plots in ``OUT/synthetic/``; the runs,
data and per-sample records stay in ``--work`` so that running the command again resumes.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, progress_columns, quiet_frameworks, user_errors

EXAMPLE = "Example: avloc reproduce synthetic (hours on 2 CPU cores; --quick: minutes)"

reproduce_app = typer.Typer(help="Reproduce the paper's claims in miniature.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")


def _seeds(text: str) -> tuple[int, ...]:
    from avloc.errors import RecipeError

    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise RecipeError(f"--seeds {text!r}: expected comma-separated integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise RecipeError(f"--seeds {text!r}: expected distinct integers, e.g. 0,1,2")
    return seeds


@reproduce_app.command("synthetic", epilog=EXAMPLE)
def synthetic(
    out: Annotated[Path, typer.Option("--out", help="Where the report goes")] = Path(
        "docs/results"
    ),
    work: Annotated[
        Path | None,
        typer.Option("--work", help="Data, runs and records (default runs/reproduce-synthetic)"),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny data and models: checks the pipeline, not claims")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", min=0, help="Trainings at a time (0: 2 if 2+ cores)")
    ] = 0,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="Threads per training (0: cores / jobs)")
    ] = 0,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Training seeds, e.g. 0,1,2 (default 0,1,2,3,4; --quick: 0)"),
    ] = None,
    train_samples: Annotated[
        int | None, typer.Option("--train-samples", min=1, help="Synthetic training scenes")
    ] = None,
    test_samples: Annotated[
        int | None, typer.Option("--test-samples", min=1, help="Synthetic test scenes")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override every row's recipe: --set train.epochs=2"),
    ] = None,
) -> None:
    """Train EZ-VSL, marginNCE, FNAC, SSL-TIE, SSL-SaN and the ablation rows; test the claims.

    The claims are the SSL-SaN paper's (docs/reproduction.md).
    """
    with user_errors():
        quiet_frameworks()
        import dataclasses

        from rich.console import Console
        from rich.progress import Progress

        from avloc.jobs.reproduce import Budget, reproduce_synthetic

        budget = Budget.quick() if quick else Budget.full()
        if seeds is not None:
            budget = dataclasses.replace(budget, seeds=_seeds(seeds))
        if train_samples:
            budget = dataclasses.replace(budget, train_samples=train_samples)
        if test_samples:
            budget = dataclasses.replace(budget, test_samples=test_samples)
        budget = budget.with_overrides(list(overrides or []))
        workers = jobs or (1 if quick or (os.cpu_count() or 1) < 2 else 2)
        work_dir = work or Path("runs") / ("reproduce-quick" if quick else "reproduce-synthetic")
        command = shlex.join(["avloc", "reproduce", "synthetic", *sys.argv[3:]])
        from avloc.jobs.reproduce.plan import plan_jobs

        total = len(plan_jobs(budget, work_dir / "data"))  # bad --set fails here, before output
        console = Console(stderr=True)
        with Progress(*progress_columns("trainings"), console=console) as progress:
            task = progress.add_task("training + recording", total=None)

            def on_job(job, seconds: float) -> None:
                progress.advance(task)
                progress.console.print(
                    f"  {job.key}: {seconds / 60:.1f} min ({', '.join(r.label for r in job.rows)})"
                )

            progress.update(task, total=total)
            result = reproduce_synthetic(
                out,
                work_dir,
                budget,
                workers=workers,
                threads=threads or None,
                command=command,
                quick=quick,
                log=progress.console.print,
                on_job=on_job,
            )
        _print_claims(result)
        typer.echo(f"Report: {result.files['markdown']} (+ {result.files['json'].name}, plots)")


def _print_claims(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="The SSL-SaN paper's claims on the synthetic scenes")
    table.add_column("#")
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("evidence", overflow="fold")
    names = {"holds": "[green]holds[/]", "fails": "[red]fails[/]",
             "too close to call": "[yellow]too close to call[/]", None: "not run"}  # fmt: skip
    for i, claim in enumerate(result.claims, 1):
        table.add_row(str(i), claim.text, names[claim.verdict], claim.evidence)
    Console(width=160).print(table)
