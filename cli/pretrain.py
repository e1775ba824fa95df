"""``avloc pretrain RECIPE --out FILE``: pretrain the visual trunk on synthetic objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avloc_cli.app import app, quiet_frameworks, user_errors

EXAMPLE = (
    "Example: avloc pretrain recipes/synthetic/visual_trunk.toml "
    "--out data/synthetic/visual_trunk.pth"
)


@app.command(epilog=EXAMPLE)
def pretrain(
    recipe: Annotated[
        Path, typer.Argument(help="Pretraining recipe, e.g. recipes/synthetic/visual_trunk.toml")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The .pth state_dict to write (a .json goes beside it)"),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe value: --set train.epochs=2"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an output pretrained with another recipe")
    ] = False,
) -> None:
    """Pretrain the visual ResNet trunk by classifying synthetic single-object images.

    The result loads through model.visual.pretrained, as torchvision's ImageNet file does.
    Example:
      avloc pretrain recipes/synthetic/visual_trunk.toml --out data/synthetic/visual_trunk.pth
    """
    with user_errors():
        from avloc.jobs.pretrain import load_pretrain_recipe

        loaded = load_pretrain_recipe(recipe, list(overrides or []))
        quiet_frameworks()
        from avloc.jobs.pretrain import pretrain as run_pretrain

        result = run_pretrain(loaded, out, force=force)
        info = result.info
        if result.reused:
            typer.echo(f"{out}: already pretrained with this recipe; kept.")
        typer.echo(
            f"Visual trunk {out}: held-out accuracy {100 * info['validation_accuracy']:.1f} % "
            f"over {loaded.data.classes} classes (chance {100 * info['chance_accuracy']:.1f} %), "
            f"sha256 {info['sha256'][:16]}..."
        )
