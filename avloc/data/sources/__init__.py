"""Data sources for ``avloc prepare``: one registered preparer per corpus layout (docs/formats.md).

Each preparer is a class whose keyword arguments are its options and whose ``plan()`` lists
the corpus (:class:`avloc.data.prepare.Plan`); :func:`avloc.data.prepare.prepare` does the
rest. A preparer's name is its class's ``source`` attribute, given nowhere else: the registry
below is built from the classes, ``preparer_names()`` lists it, ``build_preparer(name,
**options)`` makes one, and ``avloc prepare`` has one command per name (plus ``synthetic``, the
built-in scenes, and ``inspect``), made from the options the class declares
(:meth:`~avloc.data.sources.common.SourceBase.command_options`). A new source is a class here
and a line in :func:`preparer_classes`.

| name           | split | corpus                                                              |
|----------------|-------|---------------------------------------------------------------------|
| ``vggsound``    | train | VGGSound / VGGSound-144K: videos or ``frames/`` + ``audio/``        |
| ``vggss``       | test  | VGG-SS: ``vggss.json`` normalised boxes, frame at 5.0 s             |
| ``flickr``      | test  | Flickr-SoundNet: ``Annotations/<id>.xml`` 256 px boxes -> consensus |
| ``is3``         | test  | IS3: two sounds per image, ``synthetic3240_bbox.json`` 224 px boxes |
| ``avsbench-s4`` | test  | AVSBench S4: 5 frames per video, binary masks, 5 s audio            |
| ``manifest``    | any   | JSON Lines manifest (IS3+, your own data)                           |
"""

from __future__ import annotations

from typing import Any

from avloc.registry import Registry

PREPARERS = Registry("data source")


def preparer_classes() -> tuple[type, ...]:
    """Every preparer class, in the order ``avloc prepare --help`` lists their commands."""
    from avloc.data.sources.avsbench import AVSBenchS4Preparer
    from avloc.data.sources.flickr import FlickrPreparer
    from avloc.data.sources.is3 import IS3Preparer
    from avloc.data.sources.manifest import ManifestPreparer
    from avloc.data.sources.vggsound import VGGSoundPreparer
    from avloc.data.sources.vggss import VGGSSPreparer

    return (
        VGGSoundPreparer,
        VGGSSPreparer,
        FlickrPreparer,
        IS3Preparer,
        AVSBenchS4Preparer,
        ManifestPreparer,
    )


def _register_all() -> None:
    """Register each preparer class under its ``source`` name (imported on first use)."""
    for cls in preparer_classes():
        if cls.source not in PREPARERS:
            PREPARERS.register(cls.source)(cls)


def preparer_names() -> list[str]:
    _register_all()
    return PREPARERS.names()


def build_preparer(source: str, /, **options: Any):
    """The preparer ``source`` built with ``options`` (an unknown name: a one-line error)."""
    _register_all()
    return PREPARERS.get(source, "prepare")(**options)
