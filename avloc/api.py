"""avloc from Python: load a network, localise images + audio held in memory or on disk, and run
the jobs the CLI runs (docs/api.md).

Data contract (the same as ``avloc localize``, :mod:`avloc.jobs.localize`, whose functions this
module calls):

* ``image``: a file path, a PIL image, or a ``uint8`` RGB array ``(H, W, 3)`` of any size. Paths
  go through :func:`avloc.media.image.load_image` (EXIF orientation, any mode to RGB); a PIL
  image through the same orientation and mode conversion.
* ``audio``: a file path (any format avloc reads, resampled to the network's rate), or a 1-D
  float waveform in [-1, 1] with ``sample_rate`` in Hz (required for arrays). Either way the
  network's ``clip_seconds`` clip around the middle is used (short audio tiled), as the CLI does.
* :class:`Result`: ``heatmap`` ``(H, W)`` float32 raw cosine similarity at the image's own size
  (what ``avloc localize --raw`` saves), ``raw_map`` ``(h, w)`` float32 at the network's
  resolution, ``score`` (= ``heatmap.max()``) and ``uth`` in cosine units, ``sounding``
  (``score > uth``), ``peak`` as ``(x, y)`` pixels; ``save(path)`` writes the CLI's overlay PNG.
* Errors are :class:`avloc.errors.AvlocError` subclasses whose message is the one line the CLI
  prints after ``avloc: error:``.

The network is loaded as ``avloc localize`` loads it (:func:`avloc.jobs.localize.load_cached_model`
first on torch, else the Keras network), so the API and the CLI compute the same map, bit for
bit, for the same files (the two copies agree to about 1e-6; a batch's maps agree with one-by-one
maps to about 1e-6 too). :attr:`Localizer.keras_model` gives the Keras network in either case.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avloc.api_jobs import evaluate, prepare, train
from avloc.errors import DataError, MediaError
from avloc.jobs import localize as lz

__all__ = ["Localizer", "Result", "evaluate", "load", "prepare", "train"]

PathLike = str | os.PathLike


@dataclass(frozen=True, eq=False)
class Result:
    """One localised pair: the map at the image's size, the network's map and the verdict."""

    localization: lz.Localization  # the CLI's record of the map (heatmap, Uth, peak, ...)
    image: np.ndarray  # (H, W, 3) uint8: the picture the map belongs to
    raw_map: np.ndarray  # (h, w) float32 raw cosines at the network's resolution

    @property
    def heatmap(self) -> np.ndarray:
        """``(H, W)`` float32 raw cosine map at the image's size (``--raw``'s ``.npy``)."""
        return self.localization.heatmap

    @property
    def score(self) -> float:
        """The map's maximum, cosine units."""
        return self.localization.max_score

    @property
    def uth(self) -> float:
        return self.localization.uth

    @property
    def sounding(self) -> bool:
        """Whether something visible is sounding: ``score > uth``."""
        return self.localization.sounding

    @property
    def peak(self) -> tuple[int, int]:
        """``(x, y)`` pixels of the map's first maximum."""
        return self.localization.peak

    def caption(self) -> str:
        return self.localization.caption()

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``avloc localize --json`` (without the file names)."""
        return self.localization.to_dict()

    def overlay(self, value_range: tuple[float, float] | str = (-1.0, 1.0)) -> np.ndarray:
        """uint8 ``(H', W', 3)``: the PNG's picture (:func:`avloc.jobs.localize.render`)."""
        return lz.render(self.image, self.localization, value_range)

    def save(
        self,
        path: PathLike,
        *,
        raw: PathLike | None = None,
        json_path: PathLike | None = None,
        value_range: tuple[float, float] | str = (-1.0, 1.0),
    ) -> dict[str, Any]:
        """Write the overlay PNG (and the ``.npy`` map, a JSON record) as ``avloc localize``
        does (:func:`avloc.jobs.localize.write_outputs`); returns the JSON record."""
        return lz.write_outputs(
            self.localization, self.image, path, raw=raw, json_path=json_path,
            value_range=value_range,
        )  # fmt: skip


class Localizer:
    """A loaded network with its input contract (``inputs``) and its Uth; see :func:`load`."""

    def __init__(self, net, run_dir: Path | None, checkpoint: Path | None):
        from avloc.runs import calibrate_command, model_file

        self._net = net
        self._run_dir, self._checkpoint = run_dir, checkpoint
        self.path = model_file(run_dir, checkpoint)  # the .keras file
        self._calibrate = calibrate_command(run_dir, checkpoint)
        self._keras = None

    def __repr__(self) -> str:
        return f"Localizer({os.fspath(self.path)!r}, uth={self.uth})"

    @property
    def inputs(self) -> dict[str, Any]:
        """The input contract: ``image_size`` (px), ``sample_rate`` (Hz), ``clip_seconds`` (s)."""
        return dict(self._net.inputs)

    @property
    def uth(self) -> float | None:
        """The calibrated Uth (cosine units), or None when the network has none."""
        uth = getattr(self._net, "uth", None)
        return None if uth is None else float(uth)

    @property
    def keras_model(self):
        """The Keras :class:`~avloc.models.avnet.AudioVisualNet` (loaded on first use when
        localisation runs on the Keras-free torch copy)."""
        from avloc.maps.torch_engine import TorchNet

        if not isinstance(self._net, TorchNet):
            return self._net
        if self._keras is None:
            self._keras = lz.load_model(self._run_dir, self._checkpoint)
        return self._keras

    def _threshold(self, uth: float | None) -> float:
        source = os.fspath(self._checkpoint or self._run_dir)
        return lz.resolve_uth(self._net, uth, source=source, calibrate=self._calibrate)

    def localize(
        self, image, audio, *, sample_rate: float | None = None, uth: float | None = None
    ) -> Result:
        """Localise one pair (see the module docstring for what ``image`` and ``audio`` may be);
        ``uth`` overrides the network's Uth."""
        threshold = self._threshold(uth)
        pair = self._pair(image, audio, sample_rate)
        return self._results([pair], threshold, 1)[0]

    def localize_batch(
        self,
        images: Sequence,
        audios: Sequence,
        *,
        sample_rate: float | None = None,
        uth: float | None = None,
        batch_size: int = 8,
    ) -> list[Result]:
        """Localise ``images[i]`` with ``audios[i]``, ``batch_size`` pairs per network call."""
        if len(images) != len(audios):
            raise MediaError(f"{len(images)} images but {len(audios)} audio inputs")
        if batch_size < 1:
            raise MediaError(f"batch_size must be at least 1, got {batch_size}")
        threshold = self._threshold(uth)
        pairs = [self._pair(i, a, sample_rate) for i, a in zip(images, audios, strict=True)]
        return self._results(pairs, threshold, batch_size)

    def _pair(self, image, audio, sample_rate) -> tuple[np.ndarray, np.ndarray]:
        if _is_path(image) and _is_path(audio) and sample_rate is None:
            item = lz.item_from_paths([Path(image), Path(audio)])  # the CLI's own path
            loaded = lz.load_item(item, self._net.inputs)
            return loaded.image, loaded.wave
        return _image(image), _wave(audio, sample_rate, self._net.inputs)

    def _results(self, pairs, threshold: float, batch_size: int) -> list[Result]:
        # localize_many's steps (avloc.jobs.localize), keeping the network's own map too
        from avloc.maps.engine import MapsEngine
        from avloc.utils.interpolation import upsample

        engine = MapsEngine(self._net)
        out = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            maps = engine.pair_maps([p[0] for p in chunk], [p[1] for p in chunk])
            for (image, _), small in zip(chunk, maps, strict=True):
                heat = upsample(small[None], image.shape[:2])[0]
                loc = lz.Localization.from_map(heat, threshold)
                out.append(Result(loc, image, np.asarray(small, np.float32)))
        return out


def load(path: PathLike) -> Localizer:
    """A :class:`Localizer` for a run directory (its ``model.keras``), a ``.keras`` file, a
    preset folder of ``avloc export`` (its checksums verified first: :mod:`avloc.presets`) or a
    published checkpoint's name (``avloc import-checkpoint --list``; downloaded and converted
    into the cache once, as ``avloc import-checkpoint NAME`` does; a host that needs a browser
    gets the one line saying what to download).

    Loaded as ``avloc localize --run DIR`` / ``--checkpoint FILE`` loads it. A network without a
    calibrated Uth loads; localising with it then needs ``uth=``.
    """
    path = Path(path)
    if not path.exists() and _published(str(path)):
        run, checkpoint = None, _published_network(str(path))
    elif path.is_dir():
        run, checkpoint = path, None
    elif path.suffix.lower() == ".keras":
        run, checkpoint = None, path  # a missing file: the CLI's "no such checkpoint file"
    elif path.exists():
        raise DataError(f"{path}: not a run directory or a .keras file")
    else:
        raise DataError(f"{path}: no such run directory or .keras file")
    net = lz.load_cached_model(run, checkpoint)
    if net is None:
        net = lz.load_model(run, checkpoint)
    return Localizer(net, run, checkpoint)


def _published(name: str) -> bool:
    """Whether ``name`` (not a path that exists) is a published checkpoint's name."""
    from avloc.zoo import CHECKPOINTS

    return name.lower() in CHECKPOINTS


def _published_network(name: str) -> Path:
    """The converted network of the published checkpoint ``name``: ``CACHE/zoo/NAME.keras``,
    downloaded and converted the first time (:mod:`avloc.jobs.fetch_checkpoint`)."""
    from avloc.jobs.fetch_checkpoint import import_published
    from avloc.utils.files import cache_dir

    out = cache_dir() / "zoo" / f"{name.lower()}.keras"
    if not out.is_file():
        import_published(name, out)
    return out


# --------------------------------------------------------------------------------------------
# Inputs in memory -> the arrays the CLI's loaders return


def _is_path(x) -> bool:
    return isinstance(x, str | os.PathLike)


def _image(image) -> np.ndarray:
    """uint8 ``(H, W, 3)`` from a path, a PIL image or an array (one-line MediaError else)."""
    from PIL import Image

    from avloc.media import image as media_image

    if _is_path(image):
        return media_image.load_image(image)
    if isinstance(image, Image.Image):
        media_image.check_pixels("image", *image.size)
        return media_image.upright_rgb(image)  # load_image's orientation and mode conversion
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.size:
            raise MediaError(
                f"image: expected a uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}"
            )
        return image
    raise MediaError(
        "image: expected a path, a PIL image or a uint8 (H, W, 3) array, got "
        f"{type(image).__name__}"
    )


def _wave(audio, sample_rate: float | None, inputs: dict[str, Any]) -> np.ndarray:
    """The network's clip: mono float32 ``(round(clip_seconds * rate),)`` at its rate, from a
    path (:func:`~avloc.media.audio.load_clip`) or a 1-D waveform at ``sample_rate`` Hz (the
    steps of :func:`~avloc.media.audio.load_audio` after decoding)."""
    from avloc.media.audio import clip_centered, load_clip, resample

    rate, seconds = int(inputs["sample_rate"]), float(inputs["clip_seconds"])
    if _is_path(audio):
        if sample_rate is not None:
            raise MediaError(f"{audio}: sample_rate is for waveform arrays; a file has its own")
        return load_clip(audio, rate, seconds)[0]
    if not isinstance(audio, np.ndarray):
        kind = type(audio).__name__
        raise MediaError(f"audio: expected a path or a 1-D waveform array, got {kind}")
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise MediaError(f"audio: expected a 1-D float waveform, got {audio.dtype} {audio.shape}")
    if sample_rate is None:
        raise MediaError("audio: a waveform array needs sample_rate=HZ")
    try:
        given = float(sample_rate)
    except (TypeError, ValueError):
        given = float("nan")
    if not (np.isfinite(given) and given > 0 and given.is_integer()):
        raise MediaError(f"audio: sample_rate must be a whole number of Hz > 0, got {sample_rate}")
    if audio.size == 0:
        raise MediaError("audio: contains no audio samples")
    wave = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    if int(given) != rate:
        wave = resample(wave, int(given), rate)
        if wave.size == 0:
            raise MediaError("audio: contains no audio samples (too short to resample)")
    wave = np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)
    return clip_centered(wave, rate, seconds)
