"""Class groups in the offscreen choice: person sounds are never offscreen for a visible person.

Checks the default grouping on VGGSound class names, a user's ``--class-groups`` map, and that
an incomplete download keeps every present sample, its offscreen candidates drawn from the
present files only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avloc.data.sources import build_preparer
from avloc.data.sources.class_groups import default_groups, is_person_class, read_groups
from avloc.errors import DataError

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

PEOPLE_EATING, PEOPLE_SLURPING, DOG = "people eating apple", "people slurping", "dog barking"


def test_default_groups_join_person_and_voice_classes_only():
    person = [
        PEOPLE_EATING, PEOPLE_SLURPING, "people coughing", "male speech, man speaking",
        "baby crying", "child singing", "female singing", "people whistling",
    ]  # fmt: skip
    other = [DOG, "machine gun shooting", "singing bowl", "playing acoustic guitar", "car"]
    assert all(is_person_class(n) for n in person)
    assert not any(is_person_class(n) for n in other)
    groups = default_groups(person + other)
    assert len(set(groups[: len(person)])) == 1
    assert len(set(groups[len(person) :])) == len(other) and groups[0] not in groups[len(person) :]


def test_read_groups_maps_listed_classes_and_rejects_bad_files(tmp_path):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"animals": [DOG, "cat purring"], "eating": [PEOPLE_EATING]}))
    groups = read_groups(path, [PEOPLE_EATING, PEOPLE_SLURPING, DOG, "cat purring"])
    assert groups[2] == groups[3] and len({groups[0], groups[1], groups[2]}) == 3
    path.write_text('["not", "a", "map"]')
    with pytest.raises(DataError, match="groups.json: expected"):
        read_groups(path, [DOG])
    path.write_text(json.dumps({"a": [DOG], "b": [DOG]}))
    with pytest.raises(DataError, match="is in groups"):
        read_groups(path, [DOG])
    with pytest.raises(DataError, match="no such class-group file"):
        read_groups(tmp_path / "missing.json", [DOG])


def _corpus(root: Path, present: dict[str, str], missing: dict[str, str]) -> Path:
    """VGG-SS annotations for ``present`` and ``missing`` ids; media only for ``present``."""
    import soundfile as sf
    from PIL import Image

    entries = []
    for i, (name, cls) in enumerate({**present, **missing}.items()):
        if name in present:
            (root / "frames").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 32, 3), 10 * i, np.uint8)).save(
                root / "frames" / f"{name}.jpg"
            )
            (root / "audio").mkdir(parents=True, exist_ok=True)
            tone = np.sin(np.arange(16000) * (0.05 + 0.01 * i)).astype(np.float32)
            sf.write(root / "audio" / f"{name}.wav", tone, 16000)
        entries.append({"file": name, "class": cls, "bbox": [[0.1, 0.1, 0.5, 0.5]]})
    path = root / "vggss.json"
    path.write_text(json.dumps(entries))
    return path


def _offscreen_classes(plan) -> dict[str, set[str]]:
    return {s.id: {plan.class_names[a.label] for a in s.offscreen} for s in plan.samples}


def test_vggss_person_images_never_get_person_sounds_offscreen(tmp_path):
    present = {f"eat{i}": PEOPLE_EATING for i in range(3)}
    present |= {f"slurp{i}": PEOPLE_SLURPING for i in range(3)}
    present |= {f"dog{i}": DOG for i in range(3)}
    annotations = _corpus(tmp_path / "vggss", present, {})
    plan = build_preparer("vggss", root=tmp_path / "vggss", annotations=annotations).plan()
    chosen = _offscreen_classes(plan)
    for name, cls in present.items():
        expected = {DOG} if cls != DOG else {PEOPLE_EATING, PEOPLE_SLURPING}
        assert chosen[name] and chosen[name] <= expected, (name, chosen[name])
    assert any("class groups: default" in note for note in plan.notes)

    # A user's map replaces the default: here the two person classes are apart again, and
    # "people eating apple" shares a group with the dog.
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"odd": [PEOPLE_EATING, DOG]}))
    plan = build_preparer(
        "vggss", root=tmp_path / "vggss", annotations=annotations, class_groups=groups
    ).plan()
    chosen = _offscreen_classes(plan)
    assert all(chosen[f"eat{i}"] == {PEOPLE_SLURPING} for i in range(3))


def test_vggss_half_missing_keeps_every_present_sample_with_present_candidates(tmp_path):
    classes = [DOG, "car", "cat purring", "bird chirping"]
    present = {f"p{i}": classes[i % 4] for i in range(8)}
    missing = {f"m{i}": classes[i % 4] for i in range(8)}
    root = tmp_path / "vggss"
    annotations = _corpus(root, present, missing)
    plan = build_preparer("vggss", root=root, annotations=annotations).plan()
    assert sorted(s.id for s in plan.samples) == sorted(present)
    skipped = {skip.id: skip for skip in plan.skipped}
    assert sorted(skipped) == sorted(missing)  # each named with the file that is missing
    assert all(skip.file.endswith(f"{name}.jpg") for name, skip in skipped.items())
    for sample in plan.samples:
        assert sample.offscreen
        for ref in sample.offscreen:
            assert Path(ref.path).exists(), ref.path
            assert plan.class_names[ref.label] != present[sample.id]
