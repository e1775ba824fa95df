"""``avloc import-checkpoint --list`` and the download's progress bar (:mod:`avloc.zoo`)."""

from __future__ import annotations

import json

import typer


def print_table(as_json: bool) -> None:
    """Every published checkpoint: a rich table, or a JSON list with ``--json``."""
    from avloc.zoo import CHECKPOINTS, HOSTS

    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in CHECKPOINTS.values()], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Published checkpoints (avloc import-checkpoint NAME)")
    table.add_column("name", no_wrap=True)
    for column in ("--arch", "trained on", "host", "reported", "vssl_eval Uth"):
        table.add_column(column, overflow="fold")
    for c in CHECKPOINTS.values():
        reported = "; ".join(f"{k} {v:.2f}" for k, v in c.reported.items()) or "-"
        host = HOSTS[c.host][0] + ("" if c.direct else " (browser)")
        uth = "-" if c.vssl_uth is None else f"{c.vssl_uth:.4f}"
        table.add_row(c.name, c.arch, c.training_set, host, reported, uth)
    Console(width=max(160, Console().width)).print(table)
    typer.echo(
        "sha256: none published (downloads are not verified); URLs: --list --json or "
        "docs/model-zoo.md"
    )


class DownloadBar:
    """A rich progress bar for :func:`avloc.utils.download.download` (bytes, speed, ETA)."""

    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
        )  # fmt: skip
        self.task = self.bar.add_task(label, total=None)

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def __call__(self, done: int, total: int | None) -> None:
        self.bar.update(self.task, completed=done, total=total)
