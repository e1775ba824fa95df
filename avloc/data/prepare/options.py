"""The options of ``avloc prepare SOURCE``, declared where their values are used.

A source declares its own options (:attr:`avloc.data.sources.common.SourceBase.options`), the
options every source shares are declared once (:data:`OUT`, :data:`WORKERS`,
:data:`SHARD_SIZE`, :data:`PART` here, the corpus options beside
:class:`~avloc.data.sources.common.SourceBase`), and ``cli/prepare.py`` makes one command of
each source's list: a new source writes no option list of its own.

An :class:`Option` says how the option is spelled and explained; its type and default are those
of the keyword argument it feeds (the source's constructor, or :func:`avloc.data.prepare.prepare`
for the engine's options), read by :meth:`Option.resolved`, so that each default is written once.
Nothing here knows Typer: the command line turns an :class:`Option` into a Typer parameter.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _FromSignature:
    def __repr__(self) -> str:
        return "FROM_SIGNATURE"


#: The default of an option that must be given (``inspect.Parameter.empty``).
REQUIRED = inspect.Parameter.empty
#: Read the type or default from the function the option feeds (:meth:`Option.resolved`).
FROM_SIGNATURE: Any = _FromSignature()


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a command: ``--name`` (or ``--name/--no-name``), or a positional argument.

    ``name`` (the keyword argument) is the first flag without its dashes, ``-`` read as ``_``.
    ``type`` and ``default`` left unset are the keyword argument's (:meth:`resolved`); ``min``
    is the smallest value the command line accepts.
    """

    flags: str
    help: str
    type: Any = FROM_SIGNATURE
    default: Any = FROM_SIGNATURE
    min: float | None = None
    argument: bool = False

    @property
    def name(self) -> str:
        return self.flags.split("/")[0].lstrip("-").replace("-", "_")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def resolved(self, function: Callable[..., Any]) -> Option:
        """This option with the type and default of ``function``'s keyword argument filled in.

        A class stands for its constructor. An option ``function`` does not take is a bug of the
        declaration (``TypeError`` naming both), found when the command is built.
        """
        target = function.__init__ if inspect.isclass(function) else function
        parameter = inspect.signature(target).parameters.get(self.name)
        if parameter is None or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            raise TypeError(f"option {self.flags}: {function.__qualname__} takes no {self.name!r}")
        kind = self.type
        if kind is FROM_SIGNATURE:
            kind = typing.get_type_hints(target)[self.name]
        default = parameter.default if self.default is FROM_SIGNATURE else self.default
        return dataclasses.replace(self, type=kind, default=default)


def resolve(function: Callable[..., Any], *options: Option) -> tuple[Option, ...]:
    """``options``, each resolved against ``function`` (:meth:`Option.resolved`)."""
    return tuple(option.resolved(function) for option in options)


# The engine's options (:func:`avloc.data.prepare.prepare`), shared by every source.
OUT = Option("--out", "Output directory (one per data set)", type=Path)
WORKERS = Option("--workers", "Decoding processes", min=1)
SHARD_SIZE = Option("--shard-size", "Samples per shard", min=1)
PART = Option(
    "--part",
    "I/N: prepare only part I of N (a job array's task); parts share --out",
    type=str,
    default="1/1",
)
