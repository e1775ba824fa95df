"""``avloc export RUN --out DIR``: a run's network as a preset folder to share.

The folder's layout and formats: :mod:`avloc.presets`; the job: :mod:`avloc.jobs.export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, quiet_frameworks, user_errors

EXAMPLE = "Example: avloc export runs/sslsan --out presets/sslsan   (then: --model presets/sslsan)"


@app.command("export", epilog=EXAMPLE)
def export(
    run: Annotated[
        Path, typer.Argument(help="Run directory of avloc train (model.keras with its Uth)")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Preset folder to write: new, empty or an earlier preset (replaced)",
        ),
    ],
) -> None:
    """Write a self-contained preset: the network, metadata.json (checksums) and MODEL_CARD.md."""
    with user_errors():
        quiet_frameworks()
        from avloc.jobs.export import export_preset
        from avloc.presets import read_metadata

        export_preset(run, out)
        meta = read_metadata(out)
        evaluated = meta["evaluation"]
        typer.echo(f"Exported {run} -> {out} (Uth {meta['uth']:.4f})")
        typer.echo(f"  model card: {out / 'MODEL_CARD.md'}")
        if isinstance(evaluated, list):
            names = ", ".join(sorted({str(e.get("dataset")) for e in evaluated}))
            typer.echo(f"  evaluation: {names}")
        else:
            typer.echo("  evaluation: not evaluated (avloc eval --run RUN --out RUN/eval first)")
        typer.echo(f"  use it: avloc localize IMAGE AUDIO --model {out}")
