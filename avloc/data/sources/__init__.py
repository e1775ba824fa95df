"""Data sources for ``avloc prepare``: one registered preparer per corpus layout (docs/formats.md).

Each preparer is a class whose keyword arguments are its options and whose ``plan()`` lists
the corpus (:class:`avloc.data.prepare.Plan`); :func:`avloc.data.prepare.prepare` does the
rest. ``PREPARERS.names()`` lists them; ``build_preparer(name, **options)`` makes one.

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


def _register_all() -> None:
    from avloc.data.sources import avsbench, flickr, is3, manifest, vggsound, vggss

    for module in (vggsound, vggss, flickr, is3, avsbench, manifest):
        for name, cls in module.PREPARERS.items():
            if name not in PREPARERS:
                PREPARERS.register(name)(cls)


def preparer_names() -> list[str]:
    _register_all()
    return PREPARERS.names()


def build_preparer(source: str, /, **options: Any):
    """The preparer ``source`` built with ``options`` (an unknown name: a one-line error)."""
    _register_all()
    return PREPARERS.get(source, "prepare")(**options)
