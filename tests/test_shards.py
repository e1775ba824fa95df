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
