"""The ``avloc`` command: thin Typer functions that parse options and call ``avloc`` functions.

Each sub-command lives in its own module of :mod:`cli` and registers itself on the shared
:data:`avloc_cli.app.app` when imported here.
"""

from __future__ import annotations

import sys

from avloc_cli import (  # noqa: F401  (registers the commands)
    evaluate,
    export,
    import_checkpoint,
    localize,
    prepare,
    pretrain,
    reproduce,
    serve,
    train,
)
from avloc_cli.app import app, start


def main() -> None:
    start()
    app(prog_name="avloc")


if __name__ == "__main__":
    sys.exit(main())
