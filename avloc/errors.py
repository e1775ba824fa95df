"""User-facing errors: one line that names the file or setting and the problem.

The CLI prints ``avloc: error: <message>`` for an :class:`AvlocError` and exits non-zero with no
traceback; anything else is a bug and keeps its traceback.
"""


class AvlocError(Exception):
    """An error caused by user input (a recipe, a path, a media file), not by a bug."""


class RecipeError(AvlocError):
    """A recipe (TOML) or a ``--set`` override is invalid."""


class MediaError(AvlocError):
    """An audio, image or video file cannot be read or is unusable."""


class DataError(AvlocError):
    """Shards or annotations are missing, malformed or of the wrong schema."""
