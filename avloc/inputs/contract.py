"""The network's input contract: uint8 images and waveforms -> model inputs (docs/method.md).

A network records how it was trained in ``net.inputs``: ``image_size`` (px), ``sample_rate``
(Hz) and ``clip_seconds`` (s). :class:`InputContract` applies them at test time, the one way
every stage after training turns media into model inputs:

- images: uint8 RGB ``(H, W, 3)`` of any size -> bicubic resize to ``image_size`` and ImageNet
  normalisation (``image_norm = "clip"``: CLIP's statistics) -> float32 ``(B, S, S, 3)``
  (:func:`avloc.inputs.images.preprocess_test`), then framed by ``inference_border`` pixels of
  zeros on every side (the mean colour after normalisation; default 0) -> ``(B, S + 2b,
  S + 2b, 3)``. The map then covers the frame too; it is drawn onto the ``S x S`` image as any
  map is (docs/method.md, "Where the map is drawn");
- audio: a mono float32 waveform at ``rate`` Hz (any length) -> resampled to ``sample_rate``
  when it differs -> the centred ``clip_seconds`` clip (tiled when short) -> float32
  spectrogram ``(F, T)`` of the network's ``audio_frontend``
  (:data:`avloc.inputs.frontends.AUDIO_FRONTENDS`: avloc's log power spectrogram every
  ``stft_hop`` samples, default 238, unless the network says otherwise, e.g. SSL-TIE's mel
  spectrogram in dB or RCGrad's standardised log STFT);
  batches are ``(B, F, T, 1)``;
- generated audio: the all-zero clip (silence) and clipped N(0, 1) noise from a caller's
  :class:`numpy.random.Generator` (:mod:`avloc.maps.conditions` owns the seeding rule).

Training's inputs are :mod:`avloc.inputs.training`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avloc.inputs.frontends import AUDIO_FRONTENDS, DEFAULT_STFT_HOP
from avloc.inputs.images import IMAGE_NORMS, preprocess_test
from avloc.inputs.noise import noise_waveform, silence_waveform
from avloc.media.audio import clip_centered, resample


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a uint8 RGB ``(H, W, 3)`` array; ValueError for anything else."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    return image


class InputContract:
    """How media become inputs of one network (its ``inputs`` settings)."""

    def __init__(self, inputs: dict[str, Any]):
        self.image_size = int(inputs["image_size"])
        self.sample_rate = int(inputs["sample_rate"])
        self.clip_seconds = float(inputs["clip_seconds"])
        self.clip_samples = int(round(self.sample_rate * self.clip_seconds))
        frontend = inputs.get("audio_frontend", "log_psd")
        if frontend not in AUDIO_FRONTENDS:
            known = ", ".join(AUDIO_FRONTENDS)
            raise ValueError(f"audio_frontend {frontend!r}: expected one of {known}")
        self.audio_frontend = frontend
        hop = int(inputs.get("stft_hop", DEFAULT_STFT_HOP))
        if not 0 < hop <= 512:
            raise ValueError(f"stft_hop {hop}: expected 1 to 512 samples")
        front = AUDIO_FRONTENDS[frontend]
        self._front = lambda wave, rate: front(wave, rate, hop)
        self.border = int(inputs.get("inference_border", 0))
        if self.border < 0:
            raise ValueError(f"inference_border {self.border}: expected 0 or more pixels")
        self.image_norm = inputs.get("image_norm", "imagenet")
        if self.image_norm not in IMAGE_NORMS:
            known = ", ".join(IMAGE_NORMS)
            raise ValueError(f"image_norm {self.image_norm!r}: expected one of {known}")

    def images(self, images_uint8: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 ``(H, W, 3)`` images (sizes may differ) -> float32 ``(B, S + 2b, S + 2b, 3)``."""
        images = np.stack(
            [preprocess_test(check_image(i), self.image_size, self.image_norm)
             for i in images_uint8]
        )  # fmt: skip
        if self.border:
            b = self.border
            images = np.pad(images, ((0, 0), (b, b), (b, b), (0, 0)))
        return images

    def spectrogram(self, wave: np.ndarray, rate: int | None = None) -> np.ndarray:
        """A waveform at ``rate`` Hz (default: the network's) -> float32 ``(F, T)``."""
        wave = np.asarray(wave, np.float32)
        if rate is not None and int(rate) != self.sample_rate:
            wave = resample(wave, int(rate), self.sample_rate)
        wave = clip_centered(wave, self.sample_rate, self.clip_seconds)
        return self._front(wave, self.sample_rate)

    def silence(self) -> np.ndarray:
        """``(F, T)``: the spectrogram of the all-zero clip."""
        return self._front(silence_waveform(self.clip_samples), self.sample_rate)

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        """``(F, T)``: the spectrogram of one clipped white-noise clip drawn from ``rng``."""
        wave = noise_waveform(rng, self.clip_samples)
        return self._front(wave, self.sample_rate)


def batch(spectrograms: Sequence[np.ndarray]) -> np.ndarray:
    """``(F, T)`` spectrograms -> the network's ``(B, F, T, 1)`` audio input."""
    return np.stack(spectrograms)[..., None]
