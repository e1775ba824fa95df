"""Training inputs: what a stored row becomes for the training step, in numpy or in keras.ops.

:class:`TrainInputs` is the recipe's training preprocessing, every setting in one frozen object
(built from the ``[data]`` section by :meth:`TrainInputs.from_data`). The loader
(:class:`avloc.data.loader.TrainBatches`) reads rows and draws the random numbers of a batch
(:meth:`TrainInputs.draw`, in a fixed order from the batch's generator); one of two twins turns
rows and draws into the model's inputs, chosen explicitly by ``data.preprocess_on_device``
(:func:`avloc.runtime.backend.preprocess_on_device`):

- :class:`LoaderPreprocessing` (numpy, in the loader's workers): ``image`` float32
  ``(B, size, size, 3)`` (``crop_flip``: :func:`avloc.inputs.images.crop_train`; ``moco_v2``:
  :func:`avloc.inputs.moco.apply_moco`), ``audio`` and ``noise`` float32 ``(B, F, T, 1)``
  spectrograms of the front end (:func:`avloc.inputs.frontends.training_spectrograms`) of the
  stored clips (SpecAugment's masks on them when drawn) and of one noise clip per row
  (:func:`avloc.inputs.noise.noise_waveform`, from the batch's generator);
- :class:`DevicePreprocessing` (keras.ops, inside the training step, any backend): the same
  from the stored form the loader hands over instead: ``image`` uint8 ``(B, H, W, 3)`` with
  ``crop`` int32 ``(B, 3)`` (top, left, flip), ``audio`` int16 PCM ``(B, samples)``,
  ``spec_mask`` int32 ``(B, 4)`` (time start, time width, frequency start, frequency width;
  widths 0 where SpecAugment was not drawn) and ``noise_seed`` int32 ``(B,)``; the noise is
  :func:`avloc.inputs.noise.seeded_noise_ops`'s (its own generator: a run with the option on
  draws other, equally distributed, noise). ``moco_v2`` has no keras.ops twin: it runs in the
  loader (``preprocess_on_device = "auto"`` resolves to off with it).

With SSL-TIE's equivariance term in the recipe, every batch also carries the draw of the
transformation ``T`` (:mod:`avloc.inputs.geometry`) as per-row arrays: ``equivariance_matrices``
float32 ``(B, 2, 3)``, ``equivariance_flip`` and ``equivariance_scale`` float32 ``(B,)``; the task
transforms the model's input images itself (:mod:`avloc.task`).

Both twins return the same dict, so the task never guesses a batch's form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avloc.inputs.frontends import training_spectrograms, training_spectrograms_ops
from avloc.inputs.geometry import VIEW_KEY, draw_arrays, draw_equivariance, scale_arrays
from avloc.inputs.images import augment_images_ops, crop_train, train_crop
from avloc.inputs.noise import noise_waveform, seeded_noise_ops
from avloc.inputs.pcm import pcm_to_float_ops

#: Batch key of SpecAugment's masks in the stored form, int32 ``(B, 4)``
SPEC_MASK_KEY = "spec_mask"


@dataclass(frozen=True)
class TrainInputs:
    """How training rows become model inputs: the ``[data]`` fields that say so, and whether the
    batches carry SSL-TIE's transformation draw (a recipe with the ``equivariance`` term)."""

    size: int = 224  # data.image_size, pixels
    resize: int = 246  # data.train_resize, pixels (crop_flip)
    sample_rate: int = 16000  # data.sample_rate, Hz
    clip_seconds: float | None = None  # data.clip_seconds (None: as the shards store them)
    noise_color: str = "white"  # data.noise_color
    audio_frontend: str = "log_psd"  # data.audio_frontend
    image_augment: str = "crop_flip"  # data.image_augment
    spec_augment: float = 0.0  # data.spec_augment, probability per clip
    spec_time_mask: int = 180  # data.spec_time_mask, frames
    spec_freq_mask: int = 35  # data.spec_freq_mask, frequency bins
    equivariance: bool = False  # draw T for every batch
    #: carry T's view size as the shape of ``VIEW_KEY`` (:mod:`avloc.inputs.geometry`); off
    #: where batch shapes must not vary (:func:`avloc.runtime.backend.batch_shapes_may_vary`)
    view_shape: bool = True

    @classmethod
    def from_data(cls, data, equivariance: bool = False, view_shape: bool = True) -> TrainInputs:
        """The settings of a recipe's ``data`` section (a :class:`avloc.config.DataConfig`)."""
        return cls(
            size=int(data.image_size),
            resize=int(data.train_resize),
            sample_rate=int(data.sample_rate),
            clip_seconds=float(data.clip_seconds),
            noise_color=data.noise_color,
            audio_frontend=data.audio_frontend,
            image_augment=data.image_augment,
            spec_augment=float(data.spec_augment),
            spec_time_mask=int(data.spec_time_mask),
            spec_freq_mask=int(data.spec_freq_mask),
            equivariance=bool(equivariance),
            view_shape=bool(view_shape),
        )

    def spectrogram_shape(self, samples: int) -> tuple[int, int]:
        """``(F, T')`` of the front end's spectrogram of a clip of ``samples`` samples."""
        spec = training_spectrograms(np.zeros((1, samples), np.float32), *self._frontend)
        return int(spec.shape[1]), int(spec.shape[2])

    @property
    def _frontend(self) -> tuple[str, int]:
        return self.audio_frontend, self.sample_rate

    @property
    def mask_fill(self) -> float:
        """SpecAugment's fill: the front end's value for zero power (torchaudio masks the power
        spectrogram with 0 before SSL-TIE's ``AmplitudeToDB``: -100 dB for ``mel_db``)."""
        silent = training_spectrograms(np.zeros((1, 1024), np.float32), *self._frontend)
        return float(silent.min())

    def draw(
        self,
        rng: np.random.Generator,
        rows: int,
        frame_shape: tuple[int, int],
        samples: int,
        with_noise: bool,
        noise_seeds: bool,
    ) -> dict[str, Any]:
        """Every random draw of a batch of ``rows`` rows, from ``rng`` in this order: each row's
        image augmentation, the noise (one clip per row, or with ``noise_seeds`` one int32 seed
        per row), each row's SpecAugment masks (when ``spec_augment`` > 0), then ``T`` (with
        ``equivariance``). The default recipe draws only the first two, as it always has.

        Returns ``images`` (one draw per row), ``noise`` (float32 ``(rows, samples)`` clips or
        int32 seeds, or None), ``spec_masks`` (int32 ``(rows, 4)`` or None) and ``transform``
        (the per-row arrays of :func:`avloc.inputs.geometry.draw_arrays` plus the scale, or {}).
        """
        height, width = frame_shape
        if self.image_augment == "moco_v2":
            from avloc.inputs.moco import draw_moco

            images = [draw_moco(rng, height, width, self.size) for _ in range(rows)]
        else:
            images = [train_crop(rng, height, width, self.size, self.resize) for _ in range(rows)]
        noise = None
        if with_noise and noise_seeds:
            noise = rng.integers(0, 2**31 - 1, size=rows, dtype=np.int64).astype(np.int32)
        elif with_noise:
            noise = np.stack([noise_waveform(rng, samples, self.noise_color) for _ in range(rows)])
        spec_masks = None
        if self.spec_augment > 0:
            spec_masks = self.draw_spec_masks(rng, rows, samples)
        transform: dict[str, np.ndarray] = {}
        if self.equivariance:
            draw = draw_equivariance(rng, rows)
            transform = {**draw_arrays(draw, self.size), **scale_arrays(draw, self.size)}
            if not self.view_shape:
                del transform[VIEW_KEY]
        return {"images": images, "noise": noise, "spec_masks": spec_masks, "transform": transform}

    def draw_spec_masks(self, rng: np.random.Generator, rows: int, samples: int) -> np.ndarray:
        """SpecAugment's draws for ``rows`` clips as int32 ``(rows, 4)``: time start, time width,
        frequency start, frequency width (both widths 0 where the clip is left as it is)."""
        from avloc.inputs.specaugment import draw_spec_augment

        n_freq, n_frames = self.spectrogram_shape(samples)
        masks = np.zeros((rows, 4), np.int32)
        for row in range(rows):
            d = draw_spec_augment(
                rng, n_freq, n_frames, self.spec_augment, self.spec_time_mask, self.spec_freq_mask
            )
            if d.applied:
                masks[row] = (d.time_start, d.time_width, d.freq_start, d.freq_width)
        return masks


@dataclass(frozen=True)
class LoaderPreprocessing:
    """The recipe's training preprocessing in numpy (see the module docstring)."""

    settings: TrainInputs

    def images(self, frames, draws) -> np.ndarray:
        """uint8 frames + their image draws (:meth:`TrainInputs.draw`) -> float32
        ``(B, size, size, 3)``."""
        size = self.settings.size
        if self.settings.image_augment == "moco_v2":
            from avloc.inputs.moco import apply_moco

            crops = [apply_moco(f, d, size) for f, d in zip(frames, draws, strict=True)]
        else:
            crops = [crop_train(f, *d, size) for f, d in zip(frames, draws, strict=True)]
        return np.stack(crops)

    def spectrograms(self, waves: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """float32 waveforms ``(B, samples)`` -> ``(B, F, T, 1)``, SpecAugment's ``masks``
        (int32 ``(B, 4)``) applied when given."""
        specs = training_spectrograms(waves, *self.settings._frontend)
        if masks is not None:
            specs = apply_spec_masks(specs, masks, self.settings.mask_fill)
        return specs


def apply_spec_masks(specs: np.ndarray, masks: np.ndarray, fill: float) -> np.ndarray:
    """``(B, F, T, 1)`` spectrograms with row ``i``'s frames ``[t0, t0 + tw)`` and bins
    ``[f0, f0 + fw)`` set to ``fill``, ``masks[i] = (t0, tw, f0, fw)``
    (:func:`avloc.inputs.specaugment.apply_spec_augment` for a batch)."""
    out = np.array(specs, copy=True)
    for row, (t0, tw, f0, fw) in enumerate(np.asarray(masks)):
        out[row, :, t0 : t0 + tw] = fill
        out[row, f0 : f0 + fw] = fill
    return out


def apply_spec_masks_ops(specs, masks, fill: float):
    """keras.ops twin of :func:`apply_spec_masks`: ``(B, F, T, 1)`` and int32 ``(B, 4)``."""
    from keras import ops

    masks = ops.cast(masks, "int32")
    n_freq, n_frames = int(specs.shape[1]), int(specs.shape[2])
    freq = ops.reshape(ops.arange(n_freq, dtype="int32"), (1, -1, 1, 1))
    time = ops.reshape(ops.arange(n_frames, dtype="int32"), (1, 1, -1, 1))

    def column(i):
        return ops.reshape(masks[:, i], (-1, 1, 1, 1))

    t0, tw, f0, fw = (column(i) for i in range(4))
    in_time = ops.logical_and(time >= t0, time < t0 + tw)
    in_freq = ops.logical_and(freq >= f0, freq < f0 + fw)
    filled = ops.full_like(specs, fill)
    return ops.where(ops.logical_or(in_time, in_freq), filled, specs)


@dataclass(frozen=True)
class DevicePreprocessing:
    """The recipe's training preprocessing as keras.ops; called on a batch of the loader's
    stored form (see the module docstring), it returns the model's inputs: ``image`` float32
    ``(B, size, size, 3)``, ``audio`` and (with ``noise_seed``) ``noise`` float32
    ``(B, F, T, 1)`` spectrograms, the noise clips as long as the stored ones, and the batch's
    transformation draw as it came."""

    settings: TrainInputs

    def __post_init__(self):
        if self.settings.image_augment != "crop_flip":
            raise ValueError(
                f"image_augment {self.settings.image_augment!r} runs in the loader only "
                "(data.preprocess_on_device = false)"
            )

    def __call__(self, batch: dict) -> dict:
        s = self.settings
        waves = pcm_to_float_ops(batch["audio"])
        audio = training_spectrograms_ops(waves, *s._frontend)
        if SPEC_MASK_KEY in batch:
            audio = apply_spec_masks_ops(audio, batch[SPEC_MASK_KEY], s.mask_fill)
        out = {
            "image": augment_images_ops(batch["image"], batch["crop"], s.size, s.resize),
            "audio": audio,
        }
        if "noise_seed" in batch:
            samples = int(waves.shape[-1])
            noise = seeded_noise_ops(batch["noise_seed"], samples, s.noise_color)
            out["noise"] = training_spectrograms_ops(noise, *s._frontend)
        out.update({k: v for k, v in batch.items() if k.startswith("equivariance_")})
        return out

    def example(self, rows: int, samples: int, with_noise: bool) -> dict[str, np.ndarray]:
        """A batch of ``rows`` zeros in the stored form (frames of ``resize`` px), to build a
        task with."""
        batch = {
            "image": np.zeros((rows, self.settings.resize, self.settings.resize, 3), np.uint8),
            "crop": np.zeros((rows, 3), np.int32),
            "audio": np.zeros((rows, samples), np.int16),
        }
        if self.settings.spec_augment > 0:
            batch[SPEC_MASK_KEY] = np.zeros((rows, 4), np.int32)
        if with_noise:
            batch["noise_seed"] = np.zeros((rows,), np.int32)
        return batch
