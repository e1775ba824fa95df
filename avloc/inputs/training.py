"""Training inputs: what a stored row becomes for the training step, in numpy or in keras.ops.

The loader (:class:`avloc.data.loader.TrainBatches`) reads rows and draws the random numbers of
a batch; one of two twins turns them into the model's inputs, chosen explicitly by
``data.preprocess_on_device`` (:func:`avloc.runtime.backend.preprocess_on_device`):

- :class:`LoaderPreprocessing` (numpy, in the loader's workers): ``image`` float32
  ``(B, size, size, 3)`` (:func:`avloc.inputs.images.crop_train` of each frame with its draws),
  ``audio`` and ``noise`` float32 ``(B, F, T, 1)`` spectrograms
  (:func:`avloc.inputs.spectrogram.spectrogram`) of the stored clips and of one noise clip per
  row (:func:`avloc.inputs.noise.noise_waveform`, from the batch's generator);
- :class:`DevicePreprocessing` (keras.ops, inside the training step, any backend): the same
  from the stored form the loader hands over instead: ``image`` uint8 ``(B, H, W, 3)`` with
  ``crop`` int32 ``(B, 3)`` (top, left, flip), ``audio`` int16 PCM ``(B, samples)`` and
  ``noise_seed`` int32 ``(B,)``; the noise is :func:`avloc.inputs.noise.seeded_noise_ops`'s (its
  own generator: a run with the option on draws other, equally distributed, noise).

Both return the same dict, so the task never guesses a batch's form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avloc.inputs.images import augment_images_ops, crop_train
from avloc.inputs.noise import noise_waveform, seeded_noise_ops
from avloc.inputs.pcm import pcm_to_float_ops
from avloc.inputs.spectrogram import spectrogram, spectrogram_ops


@dataclass(frozen=True)
class LoaderPreprocessing:
    """The recipe's training preprocessing in numpy (see the module docstring)."""

    size: int  # data.image_size, pixels
    sample_rate: int = 16000  # data.sample_rate, Hz
    noise_color: str = "white"  # data.noise_color

    def images(self, frames, draws) -> np.ndarray:
        """uint8 frames + :func:`~avloc.inputs.images.train_crop` draws -> float32
        ``(B, size, size, 3)``."""
        crops = [crop_train(f, *d, self.size) for f, d in zip(frames, draws, strict=True)]
        return np.stack(crops)

    def spectrograms(self, waves: np.ndarray) -> np.ndarray:
        """float32 waveforms ``(B, samples)`` -> ``(B, F, T, 1)``."""
        return spectrogram(waves, sample_rate=self.sample_rate)[..., None]

    def noise(self, rng: np.random.Generator, rows: int, samples: int) -> np.ndarray:
        """``rows`` noise clips drawn from ``rng`` in order -> float32 ``(rows, samples)``."""
        return np.stack([noise_waveform(rng, samples, self.noise_color) for _ in range(rows)])


@dataclass(frozen=True)
class DevicePreprocessing:
    """The recipe's training preprocessing as keras.ops; called on a batch of the loader's
    stored form (see the module docstring), it returns the model's inputs: ``image`` float32
    ``(B, size, size, 3)``, ``audio`` and (with ``noise_seed``) ``noise`` float32
    ``(B, F, T, 1)`` spectrograms, the noise clips as long as the stored ones."""

    size: int  # data.image_size, pixels
    resize: int  # data.train_resize, pixels
    noise_color: str = "white"  # data.noise_color
    sample_rate: int = 16000  # data.sample_rate, Hz

    def __call__(self, batch: dict) -> dict:
        waves = pcm_to_float_ops(batch["audio"])
        out = {
            "image": augment_images_ops(batch["image"], batch["crop"], self.size, self.resize),
            "audio": spectrogram_ops(waves, self.sample_rate),
        }
        if "noise_seed" in batch:
            samples = int(waves.shape[-1])
            noise = seeded_noise_ops(batch["noise_seed"], samples, self.noise_color)
            out["noise"] = spectrogram_ops(noise, self.sample_rate)
        return out

    def example(self, rows: int, samples: int, with_noise: bool) -> dict[str, np.ndarray]:
        """A batch of ``rows`` zeros in the stored form (frames of ``resize`` px), to build a
        task with."""
        batch = {
            "image": np.zeros((rows, self.resize, self.resize, 3), np.uint8),
            "crop": np.zeros((rows, 3), np.int32),
            "audio": np.zeros((rows, samples), np.int16),
        }
        if with_noise:
            batch["noise_seed"] = np.zeros((rows,), np.int32)
        return batch
