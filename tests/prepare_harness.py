"""Tiny corpora for the ``avloc prepare`` tests (tests/test_prepare_*.py): media written with PIL
and soundfile (JPEG, PNG, 16-bit WAV), tones and a waveform whose values tell their position, a
corpus in VGGSound's extracted layout, one source prepared and what its shards hold, and two
folders of shards compared file by file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import soundfile as sf
from fakemedia import frame_pattern
from PIL import Image

from avloc.data.prepare import prepare
from avloc.data.shards import ShardSet
from avloc.data.sources import build_preparer

RATE = 16000


def write_jpeg(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)
    return path


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def write_wav(path: Path, wave: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(wave, np.float32), rate, subtype="PCM_16")
    return path


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def marker(seconds: float, rate: int = RATE) -> np.ndarray:
    """A waveform whose values tell the position: a 997-sample sawtooth on a slow ramp.

    Neighbouring samples differ by at least 14 LSB, so a clip cut one sample off is caught.
    """
    n = np.arange(int(round(seconds * rate)))
    wave = 0.45 * (n % 997) / 997 + 0.45 * n / len(n)
    return (np.round(wave * 32768) / 32768).astype(np.float32)


def rows(out: Path, fields=None) -> dict[str, np.ndarray]:
    shards = ShardSet(out)
    return shards.read(np.arange(len(shards)), fields or list(shards.fields))


def run(source: str, out: Path, shard_size: int = 500, workers: int = 1, **options):
    return prepare(build_preparer(source, **options), out, shard_size=shard_size, workers=workers)


def extracted_corpus(root: Path, count: int, seconds: float = 1.5) -> list[str]:
    """``frames/<id>.jpg`` + ``audio/<id>.wav`` for ``count`` ids, each image and tone distinct."""
    ids = [f"clip{i:02d}_{i:06d}" for i in range(count)]
    for i, name in enumerate(ids):
        write_jpeg(root / "frames" / f"{name}.jpg", frame_pattern(i, 32, 24))
        write_wav(root / "audio" / f"{name}.wav", tone(300 + 40 * i, seconds))
    return ids


def finished_shards(out: Path) -> list[str]:
    """Names of the finished shards (temporary files start with a dot)."""
    return sorted(p.name for p in out.glob("*.h5") if not p.name.startswith("."))


def shard_contents(out: Path) -> dict[str, tuple[dict, dict]]:
    """Every shard's datasets and attributes, by file name."""
    contents = {}
    for path in (out / name for name in finished_shards(out)):
        with h5py.File(path, "r") as f:
            data = {k: f[k][...] for k in f}
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        contents[path.name] = (data, attrs)
    return contents


def assert_same_shards(a: Path, b: Path) -> None:
    first, second = shard_contents(a), shard_contents(b)
    assert list(first) == list(second) and first
    for name, (data, attrs) in first.items():
        other_data, other_attrs = second[name]
        assert attrs == other_attrs, name
        assert sorted(data) == sorted(other_data)
        for key, value in data.items():
            assert value.dtype == other_data[key].dtype
            assert np.array_equal(value, other_data[key]), f"{name}:{key}"
