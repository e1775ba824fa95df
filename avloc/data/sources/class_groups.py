"""Class groups for the offscreen choice: classes that look alike on screen count as one.

An offscreen clip must be of a class absent from the image. By label alone, VGG-SS pairs a
visible person with another person's sound ("people eating apple" gets "people slurping"; a
visible shooter's "machine gun shooting" gets "people coughing"), which is not offscreen at all.
So classes in one group exclude each other: a clip is a candidate only if no class of its group
is in the image.

Default (:func:`default_groups`): every class whose name starts with a person word (people,
person, child, baby, man, woman, male, female, ...) or names a human voice (speech, singing
other than a singing bowl, laughter, crying, whistling, ...) joins one "person" group; every
other class is a group of its own. A user's map (``--class-groups FILE``, :func:`read_groups`)
replaces it: JSON ``{"group name": ["class", ...], ...}``; classes it does not list stay alone.

Both return one group id (int) per class index, in the order of ``class_names``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from avloc.errors import DataError

PERSON_WORDS = (
    "people", "person", "child", "children", "kid", "kids", "baby", "babies", "man", "men",
    "woman", "women", "male", "female", "girl", "boy", "adult", "crowd", "toddler",
)  # fmt: skip
VOICE = re.compile(
    r"\b(speech|speaking|singing|sing|laughter|laughing|crying|sobbing|whistling|yodelling|"
    r"beatboxing|coughing|sneezing|screaming|shouting|babbling|giggling|humming|choir)\b"
)
NOT_PERSON = re.compile(r"\bsinging bowl\b")


def is_person_class(name: str) -> bool:
    """Whether a class name is a person or a human voice (see the module docstring)."""
    text = name.lower().strip()
    if NOT_PERSON.search(text):
        return False
    first = re.split(r"[\s,]+", text, maxsplit=1)[0]
    return first in PERSON_WORDS or bool(VOICE.search(text))


def default_groups(class_names: Sequence[str]) -> list[int]:
    """Person and human-voice classes share one group; every other class is its own."""
    person = len(class_names)  # a group id no single class uses
    return [person if is_person_class(n) else i for i, n in enumerate(class_names)]


def read_groups(path: str | Path, class_names: Sequence[str]) -> list[int]:
    """Groups from a JSON map ``{"group": ["class", ...]}``; unlisted classes stay alone."""
    path = Path(path)
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such class-group file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON class-group map ({exc})") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in mapping.values()
    ):
        raise DataError(f'{path}: expected {{"group": ["class", ...], ...}}')
    index = {name: i for i, name in enumerate(class_names)}
    groups = list(range(len(class_names)))
    seen: dict[str, str] = {}
    for number, (group, members) in enumerate(mapping.items()):
        for name in members:
            if name in seen and seen[name] != group:
                raise DataError(f"{path}: class {name!r} is in groups {seen[name]!r} and {group!r}")
            seen[name] = group
            if name in index:  # classes of other corpora may be listed too
                groups[index[name]] = len(class_names) + number
    return groups


def expand(classes: frozenset[int], groups: Sequence[int]) -> frozenset[int]:
    """``classes`` plus every class that shares a group with one of them."""
    wanted = {groups[c] for c in classes}
    return frozenset(i for i, g in enumerate(groups) if g in wanted) | classes
