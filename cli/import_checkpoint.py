"""``avloc import-checkpoint FILE.pth --arch ARCH --out model.keras``: a published PyTorch model.

The mapping per architecture is documented in :mod:`avloc.models.import_torch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, quiet_frameworks, user_errors

EXAMPLE = (
    "Example: avloc import-checkpoint ezvsl_vggss144k.pth --arch ezvsl --out models/ezvsl.keras"
)


@app.command("import-checkpoint", epilog=EXAMPLE)
def import_checkpoint(
    checkpoint: Annotated[
        Path, typer.Argument(help="PyTorch checkpoint (.pth) of a published model")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The avloc network to write (.keras)")],
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="Its architecture: ezvsl, slavc, fnac, marginnce, lvs, ssltie, sslsan, sslalign "
            "or rcgrad (default: detected from the keys; SSL-SaN's keys are SSL-TIE's, so pass "
            "--arch sslsan for it)",
        ),
    ] = None,
    head: Annotated[
        int,
        typer.Option(
            "--head",
            help="slavc only: one projection pair (1 or 2); default 0: both, SLAVC's own map",
        ),
    ] = 0,
    momentum: Annotated[
        bool, typer.Option("--momentum", help="slavc only: import the momentum encoders")
    ] = False,
) -> None:
    """Convert a published checkpoint into an avloc network for eval, localize and training."""
    with user_errors():
        quiet_frameworks()
        from avloc.models.import_torch import import_checkpoint as run_import

        _, report = run_import(checkpoint, arch and arch.lower(), out, head=head, momentum=momentum)
        c, i = report.config, report.config["inputs"]
        how = "" if arch else ", detected from its keys"
        typer.echo(f"Imported {checkpoint} (--arch {report.arch}{how}) -> {out}")
        typer.echo(
            f"  network: {c['arch']}, D = {c['embed_dim']}, visual width {c['visual']['width']} "
            f"blocks {c['visual']['blocks']}, audio width {c['audio']['width']} "
            f"blocks {c['audio']['blocks']}; inputs {i['image_size']} px, "
            f"{i['sample_rate'] / 1000:g} kHz, {i['clip_seconds']:g} s"
            + (f", {i['audio_frontend']} spectrogram" if "audio_frontend" in i else "")
        )
        typer.echo(f"  tensors used: {len(report.used)}")
        if report.ignored:
            typer.echo(
                f"  ignored by design for {report.arch}: {len(report.ignored)} tensors "
                f"({', '.join(report.ignored[:3])}{', ...' if len(report.ignored) > 3 else ''})"
            )
        for note in report.notes:
            typer.echo(f"  note: {note}")
        typer.echo("  not calibrated yet; set its universal threshold with")
        typer.echo(f"    avloc eval --calibrate --checkpoint {out} --calibration-data SHARDS")
