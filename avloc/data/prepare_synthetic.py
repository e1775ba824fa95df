"""``avloc prepare synthetic``: write the built-in synthetic scenes as shards.

Layout: ``OUT/train/synthetic-train-00000.h5 ...`` and ``OUT/test/synthetic-test-00000.h5 ...``,
``shard_size`` samples per shard. Sample ``i`` depends only on ``(seed, split, i)``, so each shard
is written independently and atomically; a re-run skips shards that are already complete and
valid, so an interrupted run resumes with nothing duplicated.

``part = (I, N)`` (``--part I/N``) writes only the I-th of N contiguous runs of each split's
shards (:func:`avloc.data.prepare.part_range`): the N parts write disjoint shard names whose
union is the unsplit run's set.

Changed settings never mix with old shards: every shard stores a fingerprint of what made it
(the scene settings, seed, split size and shard size; :func:`fingerprint`), a shard whose
fingerprint differs is written again, and shards past the split's new end are removed.

The scenes are made, not decoded, and have nothing to skip, so they need neither the engine's
plan nor its state files and report; what the two writers share is one piece of code each in
:mod:`avloc.data.prepare.chunks`: the cut into chunks, the parts and their leftovers, the
fingerprint's hash and the test that a shard is complete. :class:`SyntheticSource` declares the
command's options as the corpus sources do (:mod:`avloc.data.prepare.options`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from avloc.data.prepare.chunks import (
    check_room_for_shard,
    chunk_ranges,
    digest,
    part_chunks,
    part_range,
    shard_holds,
)
from avloc.data.prepare.options import OUT, PART, SHARD_SIZE, Option, resolve
from avloc.data.shards import shard_name, write_shard
from avloc.data.synthetic import CLASS_NAMES, SyntheticConfig, make_scenes
from avloc.errors import RecipeError

TRAIN_FIELDS = ("image", "audio", "label", "box", "mask", "present")
TEST_FIELDS = TRAIN_FIELDS + ("offscreen_audio", "offscreen_label")
#: The shard attribute that holds the fingerprint.
FINGERPRINT_KEY = "fingerprint"


def fingerprint(config: SyntheticConfig, seed: int, split: str, total: int, shard_size: int) -> str:
    """What one split's shards depend on, hashed: a change of any of it rewrites them."""
    settings = {
        "config": dataclasses.asdict(config),
        "seed": seed,
        "split": split,
        "total": total,
        "shard_size": shard_size,
        "fields": list(TRAIN_FIELDS if split == "train" else TEST_FIELDS),
    }
    return digest(settings)[:16]


def prepare_synthetic(
    out: str | Path,
    *,
    train: int,
    test: int,
    seed: int = 0,
    config: SyntheticConfig = SyntheticConfig(),
    shard_size: int = 250,
    progress: Callable[[int], None] | None = None,
    part: tuple[int, int] = (1, 1),
) -> dict[str, list[Path]]:
    """Write ``train`` + ``test`` samples; returns the shard paths per split (of this part).

    ``progress(n)`` is called after each shard with the number of samples it holds.
    """
    out = Path(out)
    written: dict[str, list[Path]] = {}
    class_names = CLASS_NAMES[: config.num_classes]
    for split, total in (("train", train), ("test", test)):
        fields = TRAIN_FIELDS if split == "train" else TEST_FIELDS
        prefix = f"synthetic-{split}"
        paths = []
        chunks = chunk_ranges(total, shard_size)
        print_ = fingerprint(config, seed, split, total, shard_size)
        # Shards past the split's end (an earlier, larger run's) and dead writers' temporaries go.
        for index in part_chunks(out / split, prefix, len(chunks), part):
            rows = chunks[index]
            path = out / split / shard_name(prefix, index)
            paths.append(path)
            if not shard_holds(path, len(rows), print_, key=FINGERPRINT_KEY):
                scenes = make_scenes(rows.start, rows.stop, seed=seed, split=split, config=config)
                arrays = {name: scenes[name] for name in fields}
                arrays["id"] = [f"synthetic-{split}-{seed}-{i:07d}" for i in rows]
                check_room_for_shard(path, arrays)
                write_shard(
                    path,
                    arrays,
                    source="synthetic",
                    split=split,
                    class_names=class_names,
                    sample_rate=config.sample_rate,
                    clip_seconds=config.clip_seconds,
                    extra_attrs={
                        "seed": seed,
                        "first_index": rows.start,
                        "ground_truth": "boxes",
                        FINGERPRINT_KEY: print_,
                    },
                )
            if progress:
                progress(len(rows))
        written[split] = paths
    return written


class SyntheticSource:
    """The synthetic scenes as a source of ``avloc prepare``: its options, declared as the
    corpus sources declare theirs, and the scenes' settings made of them."""

    source = "synthetic"
    summary = "The built-in synthetic scenes: objects with sounds, one of them sounding."
    example = "avloc prepare synthetic --out data/synthetic --train 1200 --test 200"
    options = (
        Option("--train", "Training samples", min=0),
        Option("--test", "Test samples", min=0),
        Option("--seed", "Random seed"),
        Option("--image-size", "Image side, pixels"),
        Option("--classes", "Number of classes (2-12)"),
        Option(
            "--object-scale", "LOW,HIGH: range of an object's side as a fraction of the image side"
        ),
    )

    def __init__(
        self,
        train: int = 1200,
        test: int = 200,
        seed: int = 0,
        image_size: int = 128,
        classes: int = 8,
        object_scale: str = "0.19,0.36",
    ):
        try:
            scale = tuple(float(x) for x in object_scale.split(","))
        except ValueError:
            raise RecipeError(f"--object-scale: expected LOW,HIGH, got {object_scale!r}") from None
        self.train = train
        self.test = test
        self.seed = seed
        self.config = SyntheticConfig(
            image_size=image_size, num_classes=classes, object_scale=scale
        )

    @classmethod
    def command_options(cls) -> tuple[Option, ...]:
        """The options of ``avloc prepare synthetic``, resolved, in help order."""
        out = dataclasses.replace(OUT, help="Output directory")
        out, shard_size, part = resolve(prepare_synthetic, out, SHARD_SIZE, PART)
        return (out, *resolve(cls, *cls.options), shard_size, part)

    def planned(self, shard_size: int, part: tuple[int, int]) -> int:
        """How many samples part ``part`` writes (kept shards included)."""
        total = 0
        for count in (self.train, self.test):
            chunks = chunk_ranges(count, shard_size)
            total += sum(len(chunks[i]) for i in part_range(len(chunks), part))
        return total

    def prepare(
        self,
        out: str | Path,
        *,
        shard_size: int,
        part: tuple[int, int],
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, list[Path]]:
        """:func:`prepare_synthetic` with these settings."""
        return prepare_synthetic(
            out,
            train=self.train,
            test=self.test,
            seed=self.seed,
            config=self.config,
            shard_size=shard_size,
            progress=progress,
            part=part,
        )
