"""``avloc import-checkpoint FILE.pth --arch ARCH --out model.keras``: a published PyTorch model.

The mapping per architecture is documented in :mod:`avloc.models.import_torch`. With a published
checkpoint's name instead of a file (``--list`` prints them: :mod:`avloc.zoo`), the file is
downloaded into the cache first (:mod:`avloc.jobs.fetch_checkpoint`) or, for a host that needs a
browser, the command says in one line what to download and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avloc.errors import AvlocError
from avloc_cli.app import app, quiet_frameworks, user_errors
from avloc_cli.zoo_list import DownloadBar, print_table

EXAMPLE = (
    "Example: avloc import-checkpoint ezvsl_vggss144k.pth --arch ezvsl --out models/ezvsl.keras"
    "   (or a published name: avloc import-checkpoint rcgrad-vggsound; --list names them)"
)


@app.command("import-checkpoint", epilog=EXAMPLE)
def import_checkpoint(
    checkpoint: Annotated[
        str | None,
        typer.Argument(
            help="PyTorch checkpoint (.pth) of a published model, or a published checkpoint's "
            "name (--list; docs/model-zoo.md)",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="The avloc network to write (.keras); for a name, default models/NAME.keras",
        ),
    ] = None,
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
    list_: Annotated[
        bool,
        typer.Option("--list", help="Print the published checkpoints (names, hosts, numbers)"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: print it as JSON")] = False,
) -> None:
    """Convert a published checkpoint into an avloc network for eval, localize and training."""
    with user_errors():
        if list_:
            print_table(as_json)
            return
        if checkpoint is None:
            raise AvlocError("give a checkpoint file or a published name (--list names them)")
        quiet_frameworks()
        if not Path(checkpoint).is_file() and _is_name(checkpoint):
            _import_name(checkpoint, out, arch, head, momentum)
            return
        from avloc.models.import_torch import import_checkpoint as run_import

        if out is None:
            raise AvlocError(f"{checkpoint}: give --out, the .keras network to write")
        _, report = run_import(checkpoint, arch and arch.lower(), out, head=head, momentum=momentum)
        how = "" if arch else ", detected from its keys"
        typer.echo(f"Imported {checkpoint} (--arch {report.arch}{how}) -> {out}")
        _describe(report, out)


def _is_name(text: str) -> bool:
    """A published name rather than a path: in the table, or without a folder or suffix."""
    from avloc.zoo import CHECKPOINTS

    return text.lower() in CHECKPOINTS or not any(ch in text for ch in "./\\")


def _import_name(name: str, out: Path | None, arch, head: int, momentum: bool) -> None:
    """``avloc import-checkpoint NAME``: download into the cache, then convert."""
    from avloc.jobs.fetch_checkpoint import default_out, import_published
    from avloc.zoo import ManualDownload, lookup, manual_instructions

    entry = lookup(name)
    if arch and arch.lower() != entry.arch:
        raise AvlocError(f"{entry.name} is --arch {entry.arch}, not {arch}")
    if not entry.direct:
        raise ManualDownload(manual_instructions(entry, str(out or default_out(entry.name))))
    with DownloadBar(f"downloading {entry.name}") as bar:
        entry, file, out, report = import_published(
            entry.name, out, progress=bar, head=head, momentum=momentum
        )
    if not entry.sha256:
        typer.echo(f"Downloaded {entry.url} -> {file} (no published sha256: not verified)")
    else:
        typer.echo(f"Downloaded {entry.url} -> {file} (sha256 verified)")
    typer.echo(f"Imported {entry.name} (--arch {entry.arch}) -> {out}")
    _describe(report, out)


def _describe(report, out) -> None:
    """What was imported, and the calibration command to run next."""
    c, i = report.config, report.config["inputs"]
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
