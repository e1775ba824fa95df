"""Shard round trip: rows come back in the asked order, across shards, with repeats."""

import numpy as np
import pytest

from avloc.data.prepare_synthetic import prepare_synthetic
from avloc.data.shards import ShardSet, read_info
from avloc.data.synthetic import SyntheticConfig, make_scene
from avloc.errors import DataError

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

CONFIG = SyntheticConfig(image_size=32)


def test_read_matches_generator_across_shards_in_any_order(tmp_path):
    prepare_synthetic(tmp_path, train=30, test=0, seed=1, config=CONFIG, shard_size=10)
    shards = ShardSet(tmp_path / "train")
    assert len(shards) == 30 and len(shards.infos) == 3
    order = [25, 3, 3, 14, 0, 29]
    rows = shards.read(order, ["id", "image", "label", "audio"])
    for k, i in enumerate(order):
        scene = make_scene(i, seed=1, split="train", config=CONFIG)
        assert np.array_equal(rows["image"][k], scene["image"])
        assert rows["label"][k] == scene["label"]
        assert rows["id"][k].endswith(f"{i:07d}")
        assert np.abs(rows["audio"][k] - scene["audio"]).max() <= 1 / 32767 + 1e-6  # int16 PCM


def test_rerun_keeps_finished_shards_and_schema_is_described(tmp_path):
    written = prepare_synthetic(tmp_path, train=20, test=0, seed=2, config=CONFIG, shard_size=10)
    first = written["train"][0]
    stamp = first.stat().st_mtime_ns
    prepare_synthetic(tmp_path, train=20, test=0, seed=2, config=CONFIG, shard_size=10)
    assert first.stat().st_mtime_ns == stamp  # skipped, not rewritten
    info = read_info(first)
    assert info.attrs["schema_version"] == 1 and info.attrs["source"] == "synthetic"
    assert info.count == 10 and "image" in info.fields


def test_rerun_with_other_settings_rewrites_and_never_mixes(tmp_path):
    prepare_synthetic(tmp_path, train=30, test=0, seed=2, config=CONFIG, shard_size=10)
    # Another image size: every shard is written again, none of the old ones is kept.
    bigger = SyntheticConfig(image_size=40)
    prepare_synthetic(tmp_path, train=30, test=0, seed=2, config=bigger, shard_size=10)
    shards = ShardSet(tmp_path / "train")
    assert len(shards) == 30
    assert shards.read(np.arange(30), ["image"])["image"].shape[1:] == (40, 40, 3)
    # Fewer samples: the shards past the new end go.
    prepare_synthetic(tmp_path, train=15, test=0, seed=2, config=bigger, shard_size=10)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        "synthetic-train-00000.h5",
        "synthetic-train-00001.h5",
    ]
    assert len(ShardSet(tmp_path / "train")) == 15
    # Another shard size with the same samples: the rows are the same, the files new.
    prepare_synthetic(tmp_path, train=15, test=0, seed=2, config=bigger, shard_size=15)
    shards = ShardSet(tmp_path / "train")
    assert len(shards.infos) == 1 and len(shards) == 15
    expected = make_scene(14, seed=2, split="train", config=bigger)["image"]
    assert np.array_equal(shards.read([14], ["image"])["image"][0], expected)


def test_garbage_file_is_a_one_line_data_error(tmp_path):
    (tmp_path / "x.h5").write_text("garbage")
    with pytest.raises(DataError, match=r"x\.h5: not a readable HDF5 shard") as err:
        ShardSet(tmp_path)
    assert "\n" not in str(err.value)


def _damage(tmp_path, change) -> tuple:
    """A one-shard set whose file ``change(h5py.File)`` damaged; returns (folder, shard)."""
    import h5py

    written = prepare_synthetic(tmp_path, train=4, test=0, seed=1, config=CONFIG, shard_size=4)
    shard = written["train"][0]
    with h5py.File(shard, "r+") as f:
        change(f)
    return shard.parent, shard


def _set(key, value):
    return lambda f: f.attrs.__setitem__(key, value)


@pytest.mark.parametrize(
    "change, words",
    [
        (_set("count", 9), "attribute count = 9, but dataset audio holds 4 rows"),
        (_set("count", -1), "attribute count = -1 is not a number of rows"),
        (_set("fields", '["id", "image"'), 'attribute fields = \'["id", "image"\' is not valid'),
        (_set("fields", '{"id": 1}'), "attribute fields = '{\"id\": 1}' is not a list of names"),
        (_set("fields", '["id", "image"]'), "attribute fields = ['id', 'image'] lacks the req"),
        (_set("class_names", "x"), "attribute class_names = 'x' is not valid JSON"),
        (_set("schema_version", "x"), "attribute schema_version = 'x' is not a schema number"),
        (_set("schema_version", 7), "shard schema 7 is not supported"),
        (lambda f: f.__delitem__("audio"), "attribute fields lists 'audio', a dataset not in"),
        (_set("sample_rate", 0), "attribute sample_rate = 0 must be between 1000 and 192000 (Hz)"),
        (_set("sample_rate", 16000.5), "attribute sample_rate = 16000.5 must be an integer"),
        (_set("clip_seconds", -3.0), "attribute clip_seconds = -3.0 must be between 0.05"),
    ],
)
def test_damaged_shard_attributes_are_one_line_data_errors(tmp_path, change, words):
    folder, shard = _damage(tmp_path, change)
    with pytest.raises(DataError) as err:
        ShardSet(folder)
    message = str(err.value)
    assert message.startswith(f"{shard}: ") and words in message and "\n" not in message
