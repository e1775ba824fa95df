"""``avloc prepare --part I/N``: a job array's parts are disjoint and their union equals an
unsplit run, for a source and for the synthetic set; the option's errors."""

from __future__ import annotations

import json

import pytest
from prepare_harness import assert_same_shards, extracted_corpus, finished_shards
from typer.testing import CliRunner

from avloc.data.prepare import prepare, read_report
from avloc.data.shards import ShardSet
from avloc.data.sources import build_preparer
from avloc_cli.main import app

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# --------------------------------------------------------------------------------------------
# --part I/N: a job array prepares a corpus in parallel
# --------------------------------------------------------------------------------------------


def test_parts_are_disjoint_and_their_union_equals_an_unsplit_run(tmp_path):
    from avloc.data.inspect import inspect_shards

    root = tmp_path / "corpus"
    ids = extracted_corpus(root, 9)
    (root / "frames" / f"{ids[4]}.jpg").write_bytes(b"not a JPEG")  # a skip in part 2
    (root / "audio" / f"{ids[8]}.wav").write_bytes(b"not a WAV")  # the last chunk: no shard

    def preparer():
        return build_preparer("vggsound", root=root, image_size=32)

    reference = tmp_path / "reference"
    prepare(preparer(), reference, shard_size=2)
    assert len(finished_shards(reference)) == 4  # of 5 chunks: part 1 has 0, 2 has 1-2, 3 has 3-4

    out = tmp_path / "out"
    # A dead writer's leftover of a chunk of part 3: parts 1 and 2 leave it alone.
    leftover = out / ".vggsound-train-00003.tmp-999999999.h5"
    out.mkdir()
    leftover.write_bytes(b"half a shard")
    names = []
    for index in (2, 1, 3):  # any order
        result = prepare(preparer(), out, shard_size=2, part=(index, 3))
        names.append({p.name for p in result.shards})
        assert leftover.exists() == (index != 3)
    assert [len(n) for n in names] == [2, 1, 1]
    assert not set.intersection(*names) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert set.union(*names) == set(finished_shards(reference))
    assert_same_shards(reference, out)
    assert read_report(out) == read_report(reference)  # every part's skips
    assert {s.id for s in read_report(out)} == {ids[4], ids[8]}
    summary, expected = (json.loads((d / "prepare.json").read_text()) for d in (out, reference))
    assert summary == expected
    assert inspect_shards(out).count == inspect_shards(reference).count == 7
    assert list(ShardSet(out).read(range(7), ["id"])["id"]) == sorted(set(ids) - {ids[4], ids[8]})

    # A part run again keeps its shards (resumable like any run).
    again = prepare(preparer(), out, shard_size=2, part=(3, 3))
    assert again.reused_shards == 1 and again.decoded == 0  # chunk 4 has no shard


def test_parts_of_the_synthetic_set_union_to_the_unsplit_set(tmp_path):
    from avloc.data.prepare_synthetic import prepare_synthetic
    from avloc.data.synthetic import SyntheticConfig

    config = SyntheticConfig(image_size=32, clip_seconds=0.5)
    options = dict(train=7, test=4, seed=2, config=config, shard_size=3)
    reference = prepare_synthetic(tmp_path / "reference", **options)
    first = prepare_synthetic(tmp_path / "out", part=(1, 2), **options)
    second = prepare_synthetic(tmp_path / "out", part=(2, 2), **options)
    for split in ("train", "test"):
        a, b = {p.name for p in first[split]}, {p.name for p in second[split]}
        assert a and b and not a & b
        assert a | b == {p.name for p in reference[split]}
        assert_same_shards(tmp_path / "reference" / split, tmp_path / "out" / split)


def test_cli_part_option_and_its_errors(tmp_path):
    root = tmp_path / "corpus"
    extracted_corpus(root, 4)
    args = ["prepare", "vggsound", "--root", str(root), "--out", str(tmp_path / "out")]
    args += ["--shard-size", "2", "--image-size", "32"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--part", "2/2"])
    assert result.exit_code == 0, result.output
    assert "part 2/2" in result.output and "2 of 2 samples in 1 shard(s)" in result.output
    assert finished_shards(tmp_path / "out") == ["vggsound-train-00001.h5"]
    for bad in ("3/2", "0/2", "two", "1/0"):
        result = runner.invoke(app, [*args, "--part", bad])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("avloc: error: --part"), result.output
    result = runner.invoke(
        app,
        ["prepare", "synthetic", "--out", str(tmp_path / "s"), "--train", "4", "--test", "0"]
        + ["--shard-size", "2", "--image-size", "32", "--part", "1/2"],
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in sorted((tmp_path / "s" / "train").glob("*.h5"))] == [
        "synthetic-train-00000.h5"
    ]
