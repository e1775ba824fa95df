"""``avloc import-checkpoint NAME``: a published checkpoint of :mod:`avloc.zoo`, downloaded and
converted.

A direct host's file is downloaded into ``CACHE/zoo/NAME<suffix>`` (``CACHE``:
:func:`avloc.utils.files.cache_dir`, ``$AVLOC_CACHE`` or ``~/.cache/avloc``) by
:func:`avloc.utils.download.download` (resumed with a Range request after a break, its SHA-256
checked when the table has one), then converted by
:func:`avloc.models.import_torch.import_checkpoint` into a ``.keras`` network. A host that needs a
browser raises :class:`avloc.zoo.ManualDownload`, one line naming the page, the file and the
command to run on it. No preset folder is written: ``avloc export`` makes presets of runs with a
calibrated Uth, and an imported network has none until ``avloc eval --calibrate``.
"""

from __future__ import annotations

from pathlib import Path

from avloc.utils.download import Progress, download
from avloc.utils.files import cache_dir
from avloc.zoo import Checkpoint, ManualDownload, lookup, manual_instructions


def default_out(name: str) -> Path:
    """Where ``avloc import-checkpoint NAME`` writes without ``--out``: ``models/NAME.keras``."""
    return Path("models") / f"{name}.keras"


def cached_file(entry: Checkpoint) -> Path:
    """The download's place in the cache: ``CACHE/zoo/NAME`` with the file's suffix."""
    suffix = "".join(Path(entry.local_name).suffixes)
    return cache_dir() / "zoo" / f"{entry.name}{suffix}"


def fetch(entry: Checkpoint, out: Path, progress: Progress | None = None) -> Path:
    """The cached file of ``entry``, downloaded first (ManualDownload for a browser host)."""
    if not entry.direct:
        raise ManualDownload(manual_instructions(entry, str(out)))
    return download(entry.url, cached_file(entry), entry.sha256, progress=progress)


def import_published(
    name: str,
    out: str | Path | None = None,
    progress: Progress | None = None,
    *,
    head: int = 0,
    momentum: bool = False,
):
    """Download (or reuse) and convert the published checkpoint ``name``.

    Returns ``(entry, file, out, report)``: the table's entry, the downloaded file, the
    ``.keras`` written and :func:`~avloc.models.import_torch.import_checkpoint`'s report
    (``head`` and ``momentum`` as there: SLAVC's options).
    """
    from avloc.models.import_torch import import_checkpoint

    entry = lookup(name)
    out = Path(out) if out is not None else default_out(entry.name)
    file = fetch(entry, out, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    _, report = import_checkpoint(file, entry.arch, out, head=head, momentum=momentum)
    return entry, file, out, report
