"""The Typer application shared by every ``avloc`` sub-command module in :mod:`cli`.

Errors caused by user input (:class:`avloc.errors.AvlocError`) print one line
``avloc: error: <what and where>`` on stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from avloc.errors import AvlocError

#: The command's Keras backend when KERAS_BACKEND is unset (or empty): torch, whatever
#: ~/.keras/keras.json says, so that every machine runs the same kernels and `avloc localize`
#: gets its Keras-free fast start. Export KERAS_BACKEND=tensorflow (or jax) to choose another.
DEFAULT_BACKEND = "torch"


def start() -> None:
    """What every ``avloc`` command sets up before it runs, once per process (called by
    :func:`avloc_cli.main.main` and the application's callback, never at import): the default Keras
    backend, quiet framework logs, help that shows boolean flags as flags, and the runtime's
    provisional kernels (:func:`avloc.runtime.configure` with no widths: TensorFlow's own
    kernels unless a job knows its networks before TensorFlow starts, as ``avloc train`` does).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not os.environ.get("KERAS_BACKEND"):
        os.environ["KERAS_BACKEND"] = DEFAULT_BACKEND
    option = typer.core.TyperOption
    if hasattr(option, "display_type_rich") and not hasattr(option, "_avloc_flags"):
        option.display_type_rich = _flags_without_type(option.display_type_rich)
        option._avloc_flags = True
    from avloc.runtime import configure

    configure()


def _flags_without_type(display_type_rich):
    """Help shows boolean flags as flags (``--json``), not ``--json <bool>`` (Typer 0.29)."""

    def display(self, ctx):
        if getattr(self, "is_flag", False):
            return None
        return display_type_rich(self, ctx)

    return display


app = typer.Typer(
    name="avloc",
    help="Visual sound source localization that says when nothing visible is sounding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
prepare_app = typer.Typer(
    help="Turn media and annotations into avloc shards.", no_args_is_help=True
)
app.add_typer(prepare_app, name="prepare")


def _print_version(value: bool) -> None:
    if value:
        from avloc import __version__

        start()
        typer.echo(f"avloc {__version__} (Keras backend: {os.environ['KERAS_BACKEND']})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print avloc's version and Keras backend, then exit",
        ),
    ] = False,
) -> None:
    """Visual sound source localization that says when nothing visible is sounding.

    The Keras backend is KERAS_BACKEND's, torch when it is unset.
    """
    start()


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised while handling) is a full disk or quota.

    h5py reports a failed write as ``OSError`` or ``RuntimeError`` with the C errno in the
    message (``errno = 28``), so the words count as much as ``errno``.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "No space left on device" in text or "errno = 28," in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def hdf5_write_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised while handling) came out of h5py's code.

    After a write of HDF5 1.14 fails for want of space, closing the file frees its datasets but
    keeps their ids: the next close of one (h5py dropping its last reference, or HDF5's own
    clean-up at exit) reads freed memory and the process dies of a segmentation fault.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.startswith("h5py"):
            return True
        tb = exc.__traceback__
        while tb is not None:
            if f"{os.sep}h5py{os.sep}" in tb.tb_frame.f_code.co_filename:
                return True
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return False


def exit_now(code: int) -> None:
    """End the process at once with ``code``: output flushed, no clean-up of the interpreter or
    of C libraries (where HDF5's would crash: :func:`hdf5_write_failed`). Outputs are atomic
    (their temporaries are already removed), so nothing is left half-written."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _full_file(exc: BaseException) -> str:
    """The file a full-disk error names, if any."""
    filename = getattr(exc, "filename", None)
    if filename:
        return str(filename)
    found = re.search(r"filename = '([^']+)'", str(exc))
    return found.group(1) if found else "the output"


@contextlib.contextmanager
def user_errors():
    """Turn AvlocError (and a full disk) into one line on stderr and exit status 2."""
    try:
        yield
    except AvlocError as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"avloc: error: {message}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        if not disk_full(exc):
            raise
        where = _full_file(exc)
        typer.echo(
            f"avloc: error: {where}: no space left on device (finished outputs and backups are "
            "kept; free space and run the same command again)",
            err=True,
        )
        if hdf5_write_failed(exc):
            exit_now(2)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("avloc: interrupted (finished shards and backups are kept)", err=True)
        raise typer.Exit(130) from None


def quiet_frameworks() -> None:
    """Silence framework start-up chatter so progress and results stay readable.

    TensorFlow 2.21 prints absl/oneDNN notices straight to file descriptor 2 on import,
    ignoring TF_CPP_MIN_LOG_LEVEL; the import therefore runs with fd 2 pointed at /dev/null.
    """
    import logging
    import warnings

    from avloc.utils.quiet import silenced_fd2

    with silenced_fd2():
        import keras

        if keras.backend.backend() == "tensorflow" or os.environ.get("AVLOC_TENSORBOARD"):
            import tensorflow  # noqa: F401

    warnings.filterwarnings("ignore", message=".*build\\(\\)` was called on layer.*")
    warnings.filterwarnings("ignore", message=".*You are saving your model as an HDF5.*")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def progress_columns(unit: str = "items") -> tuple:
    """rich progress columns: description, bar, done/total, rate in ``unit``/s, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {unit}/s" if speed else "", style="progress.data.speed")

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )


# --------------------------------------------------------------------------------------------
# The network a command serves (localize, serve): options and loading, in one place

RunOption = Annotated[Path | None, typer.Option("--run", help="Run directory holding model.keras")]
CheckpointOption = Annotated[
    Path | None, typer.Option("--checkpoint", help="A .keras network file")
]
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model", help="A run directory, a .keras file or a preset folder (`avloc export`)"
    ),
]
UthOption = Annotated[
    float | None,
    typer.Option("--uth", help="Universal threshold (raw cosine); overrides the calibrated"),
]


def pick_model(model: Path | None, run: Path | None, checkpoint: Path | None):
    """``(run, checkpoint)`` from ``--model`` (a folder: run directory or preset; else a file)
    or the two options as given (:func:`avloc.runs.model_file` checks that one is)."""
    if model is None:
        return run, checkpoint
    if run is not None or checkpoint is not None:
        raise AvlocError("give the model with exactly one of --model, --run or --checkpoint")
    return (model, None) if model.is_dir() else (None, model)


def network_and_uth(
    run: Path | None, checkpoint: Path | None, uth: float | None, model: Path | None = None
):
    """``(net, Uth)``: the plain-torch copy when cached (no Keras import on torch), else the Keras
    network; Uth is ``uth`` or the network's calibration (an error says how to calibrate).
    ``model`` is ``--model`` (:func:`pick_model`); a preset folder is verified first."""
    from avloc.jobs import localize as lz
    from avloc.runs import calibrate_command

    run, checkpoint = pick_model(model, run, checkpoint)
    net = lz.load_cached_model(run, checkpoint)
    if net is None:
        quiet_frameworks()
        net = lz.load_model(run, checkpoint)
    threshold = lz.resolve_uth(
        net, uth, source=str(checkpoint or run), calibrate=calibrate_command(run, checkpoint)
    )
    return net, threshold
