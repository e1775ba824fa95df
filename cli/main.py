"""The ``avloc`` command: thin Typer functions that parse options and call ``avloc`` functions.

Errors caused by user input (:class:`avloc.errors.AvlocError`) print one line
``avloc: error: <what and where>`` on stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import typer  # noqa: E402

from avloc.errors import AvlocError  # noqa: E402

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


@contextlib.contextmanager
def user_errors():
    """Turn AvlocError into one line on stderr and exit status 2."""
    try:
        yield
    except AvlocError as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"avloc: error: {message}", err=True)
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

    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras

            if keras.backend.backend() == "tensorflow" or os.environ.get("AVLOC_TENSORBOARD"):
                import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)

    warnings.filterwarnings("ignore", message=".*build\\(\\)` was called on layer.*")
    warnings.filterwarnings("ignore", message=".*You are saving your model as an HDF5.*")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML, e.g. recipes/quickstart.toml")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Output directory (default runs/<name>)")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe value: --set train.batch_size=8"),
    ] = None,
) -> None:
    """Train a recipe; running the same command again resumes from the last backup."""
    with user_errors():
        quiet_frameworks()
        from avloc.config import load_recipe

        loaded = load_recipe(recipe, overrides or [])
        from avloc.training import train as run_training

        out = run_dir or Path("runs") / loaded.name
        result = run_training(loaded, out)
        typer.echo("")
        typer.echo(f"Trained {loaded.name!r} for {result.epochs_done} epochs.")
        typer.echo(f"  run directory: {result.run_dir}")
        typer.echo(f"  final model:   {result.model_path}")
        typer.echo(f"  loss log:      {result.run_dir / 'log.csv'}")
        typer.echo(f"  metadata:      {result.run_dir / 'meta.json'}")


@prepare_app.command("synthetic")
def prepare_synthetic(
    out: Annotated[Path, typer.Option("--out", help="Output directory")],
    train: Annotated[int, typer.Option("--train", min=0, help="Training samples")] = 1200,
    test: Annotated[int, typer.Option("--test", min=0, help="Test samples")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 0,
    image_size: Annotated[int, typer.Option("--image-size", help="Image side, pixels")] = 128,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (2-12)")] = 8,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1)] = 250,
) -> None:
    """The built-in synthetic scenes: objects with sounds, one of them sounding."""
    with user_errors():
        from rich.progress import Progress

        from avloc.data.prepare_synthetic import prepare_synthetic as run_prepare
        from avloc.data.synthetic import SyntheticConfig

        config = SyntheticConfig(image_size=image_size, num_classes=classes)
        with Progress(transient=False) as progress:
            bar = progress.add_task("synthetic scenes", total=train + test)
            shards = run_prepare(
                out,
                train=train,
                test=test,
                seed=seed,
                config=config,
                shard_size=shard_size,
                progress=lambda n: progress.advance(bar, n),
            )
        for split, paths in shards.items():
            typer.echo(f"{split}: {len(paths)} shard(s) in {out / split}")


def main() -> None:
    app(prog_name="avloc")


if __name__ == "__main__":
    sys.exit(main())
