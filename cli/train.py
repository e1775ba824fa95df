"""``avloc train RECIPE``: train a recipe, resumable, on one or several devices.

``--devices N`` is ``--set distribute.devices=N``. On torch, several devices are several
processes: outside torchrun the command starts itself again under ``torch.distributed.run``
(``--standalone``, one process per device) and exits with its status.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, quiet_frameworks, user_errors

EXAMPLE = "Example: avloc train recipes/sslsan.toml --run-dir runs/sslsan --set train.batch_size=64"


@app.command(epilog=EXAMPLE)
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML, e.g. recipes/quickstart.toml")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Output directory (default runs/<name>)")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe value: --set train.batch_size=8"),
    ] = None,
    devices: Annotated[
        int | None,
        typer.Option("--devices", help="Data-parallel devices per machine (distribute.devices)"),
    ] = None,
) -> None:
    """Train a recipe; running the same command again resumes from the last backup."""
    with user_errors():
        from avloc.config import load_recipe
        from avloc.runtime import configure
        from avloc.runtime.distribute import prepare_host

        sets = list(overrides or [])
        if devices is not None:
            sets.append(f"distribute.devices={devices}")
        # Before any framework starts: CPU-only machines split their CPU into devices, and the
        # kernels are chosen for the recipe's networks (the call avloc.jobs.train.train repeats).
        first = load_recipe(recipe, sets)
        prepare_host(first.distribute.devices)
        configure(first)
        quiet_frameworks()
        from avloc.recipe_checks import check_recipe

        loaded = check_recipe(load_recipe(recipe, sets), recipe)
        from avloc.runtime.distribute import torchrun_command

        argv = ["train", str(recipe), *(["--run-dir", str(run_dir)] if run_dir else [])]
        argv += [arg for value in sets for arg in ("--set", value)]
        command = torchrun_command(loaded.distribute.devices, argv)
        if command is not None:
            raise typer.Exit(subprocess.call(command))
        from avloc.jobs.train import train as run_training

        out = run_dir or Path("runs") / loaded.name
        result = run_training(loaded, out)
        if not result.writer:
            return  # a data-parallel process other than the one that writes
        typer.echo("")
        typer.echo(f"Trained {loaded.name!r} for {result.epochs_done} epochs.")
        typer.echo(f"  run directory: {result.run_dir}")
        typer.echo(f"  final model:   {result.model_path}")
        typer.echo(f"  loss log:      {result.run_dir / 'log.csv'}")
        typer.echo(f"  metadata:      {result.run_dir / 'meta.json'}")
