"""``avloc prepare SOURCE``: turn media and annotations into avloc shards.

One thin command per registered source (:mod:`avloc.data.sources`) plus ``synthetic`` and
``inspect``. Each source's command is made from the options the source declares
(:meth:`~avloc.data.sources.common.SourceBase.command_options`,
:meth:`~avloc.data.prepare_synthetic.SyntheticSource.command_options`): a new source adds no
option list here. The work is :func:`avloc.data.prepare.prepare`; these functions parse options,
show a progress bar (rate and ETA) and print the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import Parameter, Signature
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from avloc_cli.app import prepare_app, progress_columns, user_errors

if TYPE_CHECKING:
    from avloc.data.prepare.options import Option


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


def _parameter(option: Option) -> Parameter:
    """A declared :class:`avloc.data.prepare.options.Option` as a Typer parameter."""
    if option.argument:
        info = typer.Argument(help=option.help)
    else:
        info = typer.Option(option.flags, help=option.help, min=option.min)
    return Parameter(
        option.name,
        Parameter.KEYWORD_ONLY,
        default=option.default,
        annotation=Annotated[option.type, info],
    )


def _add_command(source: type, run: Callable[..., None]) -> None:
    """``avloc prepare <source.source>``: the options ``source`` declares (``command_options()``,
    ``summary``, ``example``); the command calls ``run(name, **values)``."""
    signature = Signature([_parameter(o) for o in source.command_options()])
    name = source.source

    def command(**values: Any) -> None:
        bound = signature.bind(**values)
        bound.apply_defaults()
        run(name, **bound.arguments)

    command.__signature__ = signature
    command.__name__ = command.__qualname__ = f"prepare_{name.replace('-', '_')}"
    command.__doc__ = source.summary
    prepare_app.command(name, epilog=f"Example: {source.example}")(command)


def _run_source(source: str, /, *, out: Path, workers: int, shard_size: int, part: str, **options):
    """A corpus source's command (``_run`` is looked up at each call)."""
    _run(source, out, workers, shard_size, part, **options)


def _run_synthetic(_: str, /, *, out: Path, shard_size: int, part: str, **options: Any) -> None:
    with user_errors():
        from rich.progress import Progress

        from avloc.data.prepare import parse_part
        from avloc.data.prepare_synthetic import SyntheticSource

        which = parse_part(part)
        source = SyntheticSource(**options)
        with Progress(transient=False) as progress:
            bar = progress.add_task("synthetic scenes", total=source.planned(shard_size, which))
            shards = source.prepare(
                out,
                shard_size=shard_size,
                part=which,
                progress=lambda n: progress.advance(bar, n),
            )
        for split, paths in shards.items():
            typer.echo(f"{split}: {len(paths)} shard(s) in {out / split}")


def _add_commands() -> None:
    from avloc.data.prepare_synthetic import SyntheticSource
    from avloc.data.sources import preparer_classes

    _add_command(SyntheticSource, _run_synthetic)
    for cls in preparer_classes():
        _add_command(cls, _run_source)


_add_commands()


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
