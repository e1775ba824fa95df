"""The loader's per-sample work as Keras ops, run inside the training step (any backend).

With ``data.preprocess_on_device`` the loader (:class:`avloc.data.loader.TrainBatches`) only
reads rows and draws random numbers; a batch then holds

- ``image``: uint8 ``(B, H, W, 3)``, the stored frames as they are;
- ``crop``: int32 ``(B, 3)``, the draws of :func:`avloc.media.image.train_crop` per row: the
  crop's top and left corner in the resized image, and 1 for a horizontal flip;
- ``audio``: int16 ``(B, samples)``, the stored PCM clips;
- ``noise_seed``: int32 ``(B,)``, one seed per noise negative (when a loss term needs noise).

and :class:`DevicePreprocessing` turns it into what the loader hands over otherwise, on the
device:

- **images**: Pillow's bicubic resize of the shorter side to ``train_resize``, the crop and the
  flip, then the normalisation, as float32 ``(B, size, size, 3)``. The resize is two matrix
  products per image (channels first inside) with the rows of
  :func:`avloc.media.image.resize_weights` that the crop keeps (reversed for a flip), rounded
  to uint8 after each pass as Pillow rounds, so the crop equals
  :func:`avloc.media.image.preprocess_train`'s but for rare one-level differences of the
  float32 sums (``tests/test_device_inputs.py``);
- **audio**: ``pcm / 32767`` (:data:`avloc.data.shards.PCM_SCALE`), the loader's float clip;
- **noise**: one clipped-N(0, 1) clip of ``samples`` per seed (:func:`seeded_noise`), coloured
  as ``data.noise_color`` says.

The task then makes the spectrograms of audio and noise
(:func:`avloc.models.spectrogram.log_spectrogram`).

Seeded noise is a counter-based generator, the same numbers on every backend and device: for
seed ``s`` and sample ``n``, ``x_k = mix(mix(s) ^ mix(2 n + k))`` for ``k = 0, 1`` with ``mix``
the 32-bit integer hash "lowbias32" (``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15;
x *= 0x846ca68b; x ^= x >> 16``, arithmetic modulo 2^32), ``u_k = ((x_k >> 8) + 0.5) / 2^24``
uniform in (0, 1), and the Box-Muller sample ``sqrt(-2 ln u_0) cos(2 pi u_1)``. It is not the
loader's numpy stream: a run with the option on draws other (equally distributed) noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from keras import ops

from avloc.data.shards import PCM_SCALE
from avloc.media.audio import NOISE_COLORS
from avloc.media.image import IMAGE_NORMS, resize_weights, resized_shape

#: The multipliers of lowbias32, as the int32 values of their bits.
_MIX_1 = np.int32(0x7FEB352D)
_MIX_2 = np.int32(0x846CA68B - (1 << 32))


def _shift_right(x, bits: int):
    """Logical right shift of int32 bits (backends shift signed integers arithmetically)."""
    return ops.bitwise_and(ops.right_shift(x, bits), np.int32((1 << (32 - bits)) - 1))


def _mix(x):
    """lowbias32 on int32 tensors (the bits of uint32 arithmetic modulo 2^32)."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, _MIX_1)
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, _MIX_2)
    return ops.bitwise_xor(x, _shift_right(x, 16))


def _uniform(bits):
    """int32 hash bits -> float32 uniform in (0, 1): the top 24 bits, centred in their bin."""
    return (ops.cast(_shift_right(bits, 8), "float32") + 0.5) * np.float32(2.0**-24)


def seeded_noise(seeds, samples: int, color: str = "white"):
    """int32 seeds ``(B,)`` -> float32 noise ``(B, samples)``: N(0, 1) clipped to [-1, 1].

    ``white`` as drawn; ``pink`` / ``brown`` shaped in the frequency domain to power ~ 1/f or
    1/f^2 (no DC), rescaled to unit variance and then clipped, as
    :func:`avloc.media.audio.noise_waveform` does.
    """
    exponent = NOISE_COLORS.get(color)
    if exponent is None:
        raise ValueError(f"unknown noise colour {color!r} (known: {', '.join(NOISE_COLORS)})")
    keys = _mix(ops.cast(seeds, "int32"))[:, None]  # (B, 1)
    counter = ops.convert_to_tensor(np.arange(2 * samples, dtype=np.int32).reshape(samples, 2))
    mixed = _mix(counter)  # (samples, 2)
    first = _uniform(_mix(ops.bitwise_xor(keys, mixed[None, :, 0])))
    second = _uniform(_mix(ops.bitwise_xor(keys, mixed[None, :, 1])))
    wave = ops.sqrt(-2.0 * ops.log(first)) * ops.cos(np.float32(2.0 * np.pi) * second)
    if exponent:
        real, imag = ops.rfft(wave)
        bins = np.arange(samples // 2 + 1, dtype=np.float64)
        bins[0] = np.inf  # no DC component
        shape = ops.convert_to_tensor((bins ** (-exponent / 2.0)).astype(np.float32))
        wave = ops.irfft((real * shape, imag * shape), fft_length=samples)
        wave = wave / ops.maximum(ops.std(wave, axis=-1, keepdims=True), 1e-12)
    return ops.clip(wave, -1.0, 1.0)


def augment_images(images, crops, size: int, resize: int, stats: str = "imagenet"):
    """uint8 ``(B, H, W, 3)`` + crop draws int32 ``(B, 3)`` -> float32 ``(B, size, size, 3)``.

    The stored frames' shorter side goes to ``resize`` (the longer side keeps the aspect:
    :func:`avloc.media.image.resized_shape`), the ``size`` crop at ``(top, left)`` is
    kept and flipped where ``crops[:, 2]`` is 1, and the result normalised with ``stats``.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    new_h, new_w = resized_shape(height, width, resize)
    crops = ops.cast(crops, "int32")
    steps = ops.arange(size, dtype="int32")[None, :]
    flip = crops[:, 2:3]
    rows = crops[:, 0:1] + steps  # (B, size): output row i <- resized row top + i
    cols = crops[:, 1:2] + steps * (1 - 2 * flip) + flip * (size - 1)
    resample_y = ops.convert_to_tensor(resize_weights(height, new_h))
    resample_x = ops.convert_to_tensor(resize_weights(width, new_w))
    weights_y = ops.take(resample_y, rows, axis=0)[:, None]  # (B, 1, size, H)
    weights_x = ops.take(resample_x, cols, axis=0)[:, None]  # (B, 1, size, W)
    x = ops.transpose(ops.cast(images, "float32"), (0, 3, 1, 2))  # (B, 3, H, W)
    x = _to_levels(ops.matmul(x, ops.swapaxes(weights_x, -1, -2)))  # Pillow: horizontal first
    x = _to_levels(ops.matmul(weights_y, x))  # (B, 3, size, size)
    x = ops.transpose(x, (0, 2, 3, 1))
    mean, std = (np.asarray(v, np.float32) for v in IMAGE_NORMS[stats])
    return (x * np.float32(1.0 / 255.0) - mean) / std


def _to_levels(x):
    """Pillow's rounding of a pass to uint8: ``floor(x + 0.5)`` clipped to 0..255 (float32)."""
    return ops.clip(ops.floor(x + 0.5), 0.0, 255.0)


def pcm_to_float(pcm):
    """int16 PCM ``(B, samples)`` -> float32 in [-1, 1], as :func:`avloc.data.shards.from_pcm16`."""
    return ops.cast(pcm, "float32") / np.float32(PCM_SCALE)


@dataclass(frozen=True)
class DevicePreprocessing:
    """The recipe's preprocessing settings; called on a batch of the loader's on-device form
    (see the module docstring), it returns the model's inputs: ``image`` float32
    ``(B, size, size, 3)``, ``audio`` and (with ``noise_seed``) ``noise`` float32 waveforms
    ``(B, samples)``, the noise as long as the clips. A batch in the usual form (no ``crop``)
    is returned as given."""

    size: int  # data.image_size, pixels
    resize: int  # data.train_resize, pixels
    noise_color: str = "white"  # data.noise_color

    def __call__(self, batch: dict) -> dict:
        if "crop" not in batch:
            return batch
        audio = pcm_to_float(batch["audio"])
        out = {
            "image": augment_images(batch["image"], batch["crop"], self.size, self.resize),
            "audio": audio,
        }
        if "noise_seed" in batch:
            samples = int(audio.shape[-1])
            out["noise"] = seeded_noise(batch["noise_seed"], samples, self.noise_color)
        return out
