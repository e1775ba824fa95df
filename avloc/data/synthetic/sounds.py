"""The sounds of the classes: deterministic, vectorised float32 waveforms."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from avloc.data.synthetic.classes import CLASSES, TAU, SyntheticConfig

# Everything heavy runs in float32; phases that grow large are reduced to [0, 1) cycles in
# float64 first. Noise uses random bytes (uniform white noise) or random-phase spectra, which
# are several times cheaper than Gaussian draws and just as white / band-limited.


@functools.lru_cache(maxsize=8)
def _time_axis(num_samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(num_samples, dtype=np.float64) / sample_rate
    t.flags.writeable = False
    return t


def _frac(x: np.ndarray) -> np.ndarray:
    """``x mod 1`` as float32 (``np.mod`` on floats is slow)."""
    return (x - np.floor(x)).astype(np.float32)


def _sin(cycles: np.ndarray) -> np.ndarray:
    """``sin(2 pi cycles)`` in float32, exact for large ``cycles`` (float64 input)."""
    return np.sin(_frac(cycles) * np.float32(TAU))


def uniform(rng: np.random.Generator, shape, dtype=np.uint16) -> np.ndarray:
    """Uniform float32 noise in [0, 1) from raw random bytes (fast)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype)
    return (raw.astype(np.float32) * np.float32(1.0 / (np.iinfo(dtype).max + 1))).reshape(shape)


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance uniform white noise, float32 ``(n,)``."""
    return (uniform(rng, n) - np.float32(0.5)) * np.float32(math.sqrt(12.0))


def _spectral_noise(rng: np.random.Generator, n: int, k0: int, k1: int, tilt: float = 0.0):
    """Random-phase noise with rfft bins ``k0..k1`` (inclusive) of magnitude ``k ** -tilt``."""
    nbins = n // 2 + 1
    k0, k1 = max(1, k0), min(nbins - 1, k1)
    k1 = max(k0, k1)
    phase = uniform(rng, k1 - k0 + 1) * np.float32(TAU)
    spec = np.zeros(nbins, dtype=np.complex64)
    spec[k0 : k1 + 1] = np.cos(phase) + 1j * np.sin(phase)
    if tilt:
        spec[k0 : k1 + 1] *= np.arange(k0, k1 + 1, dtype=np.float32) ** np.float32(-tilt)
    return np.fft.irfft(spec, n=n).astype(np.float32, copy=False)


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Noise with a flat spectrum in [lo, hi] Hz."""
    return _spectral_noise(rng, n, math.ceil(lo * n / sr), math.floor(hi * n / sr))


def _sweep(t, rng, f0, f1, period):
    """Repeating exponential sweeps from f0 to f1 Hz, one per ``period`` s, faded at the ends."""
    pos = t * (1.0 / period) + rng.uniform()
    tau = _frac(pos)  # position within the sweep, [0, 1)
    k = math.log(f1 / f0)
    cycles = np.float32(f0 * period / k) * np.expm1(tau * np.float32(k))  # < a few hundred
    env = np.clip(np.minimum(tau, 1.0 - tau) * np.float32(period / 0.015), 0.0, 1.0)
    return np.sin(cycles * np.float32(TAU)) * env


def _harmonics(t, rng, sr, f0, amps, vibrato=0.004):
    """Sum of harmonics ``k * f0`` with amplitudes ``amps[k]``, random phases, slight vibrato."""
    fv = rng.uniform(4.0, 6.0)
    wobble = np.float32(vibrato * f0 / (TAU * fv)) * _sin(fv * t + rng.uniform())
    base = _frac(f0 * t) + wobble  # cycles of the fundamental, small and float32-exact
    out = np.zeros(t.shape, dtype=np.float32)
    for k, a in amps.items():
        if a and k * f0 < 0.45 * sr:
            out += np.float32(a) * np.sin((k * base + np.float32(rng.uniform())) * np.float32(TAU))
    return out


def _square_integral(t, rng, rate):
    """Integral over time of a 50%-duty square wave in {0, 1} at ``rate`` Hz (random phase), in
    units of 1/rate seconds: switching a frequency with it keeps the phase continuous."""
    pos = t * rate + rng.uniform()
    whole = np.floor(pos)
    return whole * 0.5 + np.minimum(pos - whole, 0.5)


def _s_harm220(t, rng, sr, j):
    return _harmonics(t, rng, sr, 220.0 * j, {k: 1.0 / k for k in range(1, 7)})


def _s_odd587(t, rng, sr, j):
    return _harmonics(t, rng, sr, 587.0 * j, {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7})


def _s_hiss(t, rng, sr, j):
    return _band_noise(rng, t.size, sr, 5000.0 * j, 7000.0 * j)


def _s_rumble(t, rng, sr, j):
    return _band_noise(rng, t.size, sr, 80.0 * j, 300.0 * j)


def _s_upchirp(t, rng, sr, j):
    return _sweep(t, rng, 300.0 * j, 1200.0 * j, 0.5 * rng.uniform(0.9, 1.1))


def _s_downchirp(t, rng, sr, j):
    return _sweep(t, rng, 4000.0 * j, 2000.0 * j, 0.4 * rng.uniform(0.9, 1.1))


def _s_am1k(t, rng, sr, j):
    am = 1.0 + np.float32(0.9) * _sin(4.0 * rng.uniform(0.9, 1.1) * t + rng.uniform())
    return am * _sin(1000.0 * j * t + rng.uniform())


def _s_pings(t, rng, sr, j):
    rate = 6.0 * rng.uniform(0.9, 1.1)
    pos = t * rate + rng.uniform()
    idx = np.floor(pos)
    tau = ((pos - idx) / rate).astype(np.float32)  # seconds since the last ping
    amp = rng.uniform(0.6, 1.0, int(idx[-1]) + 1).astype(np.float32)[idx.astype(np.intp)]
    env = amp * np.exp(tau * np.float32(-1.0 / 0.012))
    return env * np.sin(tau * np.float32(TAU * 2500.0 * j))


def _s_siren(t, rng, sr, j):
    fc, dev, fm = 750.0 * j, 150.0 * j, 0.5 * rng.uniform(0.8, 1.2)
    # instantaneous frequency fc + dev * sin(2 pi fm t + p)
    sweep = np.cos(TAU * fm * t + rng.uniform(0, TAU)).astype(np.float32)
    return np.sin((_frac(fc * t) - np.float32(dev / (TAU * fm)) * sweep) * np.float32(TAU))


def _s_buzz(t, rng, sr, j):
    # band-limited pulse train, harmonics up to 3 kHz:
    # sum_{k=1..N} cos(k theta) = sin((N + 1/2) theta) / (2 sin(theta / 2)) - 1/2
    f0 = 90.0 * j
    n = int(min(3000.0, 0.45 * sr) // f0)
    theta = _frac(f0 * t + rng.uniform()) * np.float32(TAU)
    den = np.float32(2.0) * np.sin(np.float32(0.5) * theta)
    small = np.abs(den) < 1e-4
    out = np.sin(np.float32(n + 0.5) * theta) / np.where(small, np.float32(1.0), den) - 0.5
    return np.where(small, np.float32(n), out)


def _s_beeps(t, rng, sr, j):
    rate = 3.0 * rng.uniform(0.9, 1.1)
    frac = _frac(t * rate + rng.uniform())  # on for the first half of each period
    gate = np.clip(np.minimum(frac, 0.5 - frac) * np.float32(1.0 / (0.005 * rate)), 0.0, 1.0)
    return gate * _sin(3200.0 * j * t + rng.uniform())


def _s_trill(t, rng, sr, j):
    rate = 8.0 * rng.uniform(0.9, 1.1)
    f_lo, f_hi = 1300.0 * j, 1700.0 * j
    high_time = _square_integral(t, rng, rate)  # time on the high tone, in 1/rate s
    return _sin(f_lo * t + ((f_hi - f_lo) / rate) * high_time + rng.uniform())


_SOUNDS: dict[str, Callable] = {
    "harm220": _s_harm220,
    "hiss": _s_hiss,
    "upchirp": _s_upchirp,
    "am1k": _s_am1k,
    "odd587": _s_odd587,
    "pings": _s_pings,
    "downchirp": _s_downchirp,
    "rumble": _s_rumble,
    "siren": _s_siren,
    "buzz": _s_buzz,
    "beeps": _s_beeps,
    "trill": _s_trill,
}


def class_sound(
    label: int, rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()
) -> np.ndarray:
    """The clean sound of class ``label``: float32 ``(T,)``, peak in [0.5, 0.95].

    Every call draws a new variant from ``rng``: all frequencies scaled by one factor in
    [0.95, 1.05], random phases, modulation/repetition rates (+-10%) and offsets, and level.
    """
    if int(label) != label or not 0 <= label < config.num_classes:
        raise ValueError(f"label must be an integer in [0, {config.num_classes}), got {label!r}")
    t = _time_axis(config.num_samples, config.sample_rate)
    jitter = rng.uniform(0.95, 1.05)
    x = _SOUNDS[CLASSES[int(label)].sound](t, rng, config.sample_rate, jitter)
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(x)))
    x *= np.float32(rng.uniform(0.5, 0.95) / peak) if peak > 0 else np.float32(0.0)
    return x


def _background_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Unit-RMS noise, float32 ``(n,)``: white, or pink (power ~ 1/f from 20 Hz up), 50/50."""
    if rng.random() < 0.5:
        return _white(rng, n)
    x = _spectral_noise(rng, n, math.ceil(20.0 * n / sample_rate), n // 2, tilt=0.5)
    return x / np.float32(np.sqrt(np.mean(np.square(x), dtype=np.float64)) + 1e-12)


def noisy_sound(label: int, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Class sound + noise at a random SNR, peak-normalised to a random peak in [0.5, 0.95]."""
    clean = class_sound(label, rng, config)
    rms = np.sqrt(np.mean(np.square(clean), dtype=np.float64))
    snr = rng.uniform(*config.snr_db)
    mix = _background_noise(rng, clean.size, config.sample_rate)
    mix *= np.float32(rms * 10.0 ** (-snr / 20.0))
    mix += clean
    mix *= np.float32(rng.uniform(0.5, 0.95) / (float(np.max(np.abs(mix))) + 1e-12))
    return np.clip(mix, -1.0, 1.0, out=mix)
