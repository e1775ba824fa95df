"""Silence and noise clips, SSL-SaN's negative audios: numpy, and a seeded twin in keras.ops.

* :func:`silence_waveform`: the all-zero clip ``a_S``.
* :func:`noise_waveform`: clipped N(0, 1) noise from a numpy ``Generator`` (the loader's and the
  evaluation's stream: their seeding rules live with them, :mod:`avloc.data.loader` and
  :mod:`avloc.maps.conditions`). About 31.7 % of the samples sit at +-1; the std is about 0.719.
* :func:`seeded_noise` (numpy) and :func:`seeded_noise_ops` (keras.ops, inside the training step
  with ``data.preprocess_on_device``): the same numbers from one int32 seed per clip, on every
  backend and device.

Seeded noise is a counter-based generator, the same numbers on every backend and device: for
seed ``s`` and sample ``n``, ``x_k = mix(mix(s) ^ mix(2 n + k))`` for ``k = 0, 1`` with ``mix``
the 32-bit integer hash "lowbias32" (``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15;
x *= 0x846ca68b; x ^= x >> 16``, arithmetic modulo 2^32), ``u_k = ((x_k >> 8) + 0.5) / 2^24``
uniform in (0, 1), and the Box-Muller sample ``sqrt(-2 ln u_0) cos(2 pi u_1)``. It is not the
loader's numpy stream: a run with the option on draws other (equally distributed) noise.

Waveforms are float32 ``(samples,)`` (``(B, samples)`` for the seeded twins), amplitude in
[-1, 1]. numpy only at import; the ops twin imports ``keras.ops`` when called.
"""

from __future__ import annotations

import numpy as np

#: Power-spectrum exponents of the noise colours: power ~ 1 / f**exponent.
NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def silence_waveform(num_samples: int) -> np.ndarray:
    """All-zero float32 waveform of ``num_samples`` samples (the "silence" negative)."""
    return np.zeros(int(num_samples), dtype=np.float32)


def noise_waveform(rng: np.random.Generator, num_samples: int, color: str = "white") -> np.ndarray:
    """Gaussian noise with unit variance clipped to [-1, 1], float32 (the "noise" negative).

    ``white`` (the paper's; what evaluation always uses): N(0, 1) samples; after clipping the std is
    about 0.719 and about 31.7 % of samples sit at +-1. ``pink`` / ``brown``: the same draws
    shaped in the frequency domain to power ~ 1/f or 1/f^2 (no DC), rescaled to unit variance,
    then clipped; a training-only option (``data.noise_color``).
    """
    wave = rng.standard_normal(int(num_samples), dtype=np.float32)
    exponent = NOISE_COLORS.get(color)
    if exponent is None:
        raise ValueError(f"unknown noise colour {color!r} (known: {', '.join(NOISE_COLORS)})")
    if exponent:
        spectrum = np.fft.rfft(wave)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        freqs[0] = np.inf  # no DC component
        spectrum *= freqs ** (-exponent / 2.0)
        wave = np.fft.irfft(spectrum, n=wave.size).astype(np.float32)
        wave /= max(float(wave.std()), 1e-12)
    return np.clip(wave, -1.0, 1.0, out=wave)


def _color(wave: np.ndarray, exponent: float) -> np.ndarray:
    """Shape float32 ``(..., samples)`` noise to power ~ 1/f**exponent (no DC), unit variance."""
    samples = wave.shape[-1]
    spectrum = np.fft.rfft(wave.astype(np.float64), axis=-1)
    bins = np.arange(samples // 2 + 1, dtype=np.float64)
    bins[0] = np.inf
    spectrum *= bins ** (-exponent / 2.0)
    shaped = np.fft.irfft(spectrum, n=samples, axis=-1)
    return shaped / np.maximum(shaped.std(axis=-1, keepdims=True), 1e-12)


#: lowbias32's multipliers as uint32
_MIX = (np.uint32(0x7FEB352D), np.uint32(0x846CA68B))


def _mix_numpy(x: np.ndarray) -> np.ndarray:
    """lowbias32 on uint32 arrays (arithmetic modulo 2^32)."""
    x = x ^ (x >> np.uint32(16))
    x = x * _MIX[0]
    x = x ^ (x >> np.uint32(15))
    x = x * _MIX[1]
    return x ^ (x >> np.uint32(16))


def seeded_noise(seeds, samples: int, color: str = "white") -> np.ndarray:
    """int32 seeds ``(B,)`` -> float32 noise ``(B, samples)``, the numbers
    :func:`seeded_noise_ops` makes on a device (float32 arithmetic as there)."""
    exponent = NOISE_COLORS.get(color)
    if exponent is None:
        raise ValueError(f"unknown noise colour {color!r} (known: {', '.join(NOISE_COLORS)})")
    with np.errstate(over="ignore"):
        keys = _mix_numpy(np.asarray(seeds, np.int32).astype(np.uint32))[:, None]
        mixed = _mix_numpy(np.arange(2 * samples, dtype=np.uint32).reshape(samples, 2))
        bits = [_mix_numpy(keys ^ mixed[None, :, k]) for k in (0, 1)]
    first, second = (
        ((b >> np.uint32(8)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-24)
        for b in bits
    )
    wave = np.sqrt(np.float32(-2.0) * np.log(first)) * np.cos(np.float32(2.0 * np.pi) * second)
    if exponent:
        wave = _color(wave, exponent).astype(np.float32)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


#: The multipliers of lowbias32, as the int32 values of their bits.
_MIX_1 = np.int32(0x7FEB352D)
_MIX_2 = np.int32(0x846CA68B - (1 << 32))


def _shift_right(x, bits: int):
    """Logical right shift of int32 bits (backends shift signed integers arithmetically)."""
    from keras import ops

    from avloc.runtime.scalars import number

    shifted = ops.right_shift(x, number(bits, "int32"))
    return ops.bitwise_and(shifted, number((1 << (32 - bits)) - 1, "int32"))


def _mix(x):
    """lowbias32 on int32 tensors (the bits of uint32 arithmetic modulo 2^32)."""
    from keras import ops

    from avloc.runtime.scalars import number

    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, number(_MIX_1, "int32"))
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, number(_MIX_2, "int32"))
    return ops.bitwise_xor(x, _shift_right(x, 16))


def _uniform(bits):
    """int32 hash bits -> float32 uniform in (0, 1): the top 24 bits, centred in their bin."""
    from keras import ops

    from avloc.runtime.scalars import number

    return (ops.cast(_shift_right(bits, 8), "float32") + 0.5) * number(2.0**-24)


def seeded_noise_ops(seeds, samples: int, color: str = "white"):
    """int32 seeds ``(B,)`` -> float32 noise ``(B, samples)``: N(0, 1) clipped to [-1, 1]
    (keras.ops, any backend; the twin of :func:`seeded_noise`).

    ``white`` as drawn; ``pink`` / ``brown`` shaped in the frequency domain to power ~ 1/f or
    1/f^2 (no DC), rescaled to unit variance and then clipped, as :func:`noise_waveform` does.
    """
    from keras import ops

    from avloc.runtime.scalars import clip, constant, number

    exponent = NOISE_COLORS.get(color)
    if exponent is None:
        raise ValueError(f"unknown noise colour {color!r} (known: {', '.join(NOISE_COLORS)})")
    keys = _mix(ops.cast(seeds, "int32"))[:, None]  # (B, 1)
    counter = constant(
        ("noise counter", samples), lambda: np.arange(2 * samples, dtype=np.int32).reshape(-1, 2)
    )
    mixed = _mix(counter)  # (samples, 2)
    first = _uniform(_mix(ops.bitwise_xor(keys, mixed[None, :, 0])))
    second = _uniform(_mix(ops.bitwise_xor(keys, mixed[None, :, 1])))
    wave = ops.sqrt(-2.0 * ops.log(first)) * ops.cos(number(2.0 * np.pi) * second)
    if exponent:
        real, imag = ops.rfft(wave)
        bins = np.arange(samples // 2 + 1, dtype=np.float64)
        bins[0] = np.inf  # no DC component
        shape = ops.convert_to_tensor((bins ** (-exponent / 2.0)).astype(np.float32))
        wave = ops.irfft((real * shape, imag * shape), fft_length=samples)
        wave = wave / ops.maximum(ops.std(wave, axis=-1, keepdims=True), 1e-12)
    return clip(wave, -1.0, 1.0)
