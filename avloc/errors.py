"""User-facing errors: one line that names the file or setting and the problem.

The CLI prints ``avloc: error: <message>`` for an :class:`AvlocError` and exits non-zero with no
traceback; anything else is a bug and keeps its traceback. :class:`SampleFault` is the one
:class:`AvlocError` that may be a bug: whatever stopped one sample of ``avloc prepare`` (a failing
disk, or a bug) is told in one line naming the file, the original exception as its ``__cause__``.
"""

import errno


class AvlocError(Exception):
    """An error told in one line: caused by user input (a recipe, a path, a media file), not by
    a bug (but see :class:`SampleFault`)."""


class RecipeError(AvlocError):
    """A recipe (TOML) or a ``--set`` override is invalid."""


class MediaError(AvlocError):
    """An audio, image or video file cannot be read or is unusable."""


class DataError(AvlocError):
    """Shards or annotations are missing, malformed or of the wrong schema."""


class SampleFault(AvlocError):
    """A sample could not be prepared for a reason that is not its input's: the machine (a
    failing disk or network file system: :func:`machine_fault`) or a bug.

    ``avloc prepare`` stops on it, in one line naming the file, instead of listing the sample as
    a broken input: its chunk is not recorded complete, so running the command again retries it.
    The original exception is its ``__cause__`` (in the process that decoded the sample).
    """


#: ``errno`` values that describe the machine rather than the file being read: an I/O error of
#: the disk, a stale or unreachable network file system, no space or file handles left. (Not
#: ENOMEM: a corrupt header asking for a huge buffer gives it too.)
MACHINE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EIO",
        "ESTALE",
        "ENOSPC",
        "EDQUOT",
        "ENFILE",
        "EMFILE",
        "ETIMEDOUT",
        "ENOTCONN",
        "ECONNRESET",
        "EHOSTDOWN",
        "EREMOTEIO",
    )
    if hasattr(errno, name)
)


def machine_fault(exc: BaseException, path: str | None = None) -> bool:
    """Whether ``exc`` is about the machine (an ``OSError`` of :data:`MACHINE_ERRNOS`) rather
    than about the content of the file being read.

    Decoders that turn whatever a library raises into a :class:`MediaError` ("not a readable
    image") re-raise these instead: the file may well be fine, and reading it again may work.
    FFmpeg (PyAV) also answers EIO for some truncated files, so with ``path`` such an error
    counts only if reading the file's bytes fails the same way.
    """
    if not (isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS):
        return False
    if path is None or type(exc).__module__ != "av.error":
        return True
    try:
        with open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except OSError as again:
        return again.errno in MACHINE_ERRNOS
    return False
