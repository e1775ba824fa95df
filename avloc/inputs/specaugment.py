"""SSL-TIE's SpecAugment: one time mask and one frequency mask on the mel spectrogram, p = 0.8.

SSL-TIE (jinxiang-liu/SSL-TIE, ``datasets/dataloader.py``, ``GetAudioVideoDataset.__getitem__``)
masks the mel *power* spectrogram before converting it to decibels::

    if (self.args.aud_aug=='SpecAug') and (self.mode=='train') and (random.random() < 0.8):
        maskings = nn.Sequential(
            audio_T.TimeMasking(time_mask_param=180),
            audio_T.FrequencyMasking(freq_mask_param=35)
            )
        spectrogram = maskings(spectrogram)
    spectrogram = self.AmplitudeToDB(spectrogram)

torchaudio's ``TimeMasking`` / ``FrequencyMasking`` (defaults: ``iid_masks=False``,
``mask_value=0.0``, ``p=1.0``) each call ``mask_along_axis`` once, so one mask of each kind, the
same on every channel, time first::

    value = torch.rand(1) * mask_param                          # float width, [0, param)
    min_value = torch.rand(1) * (specgram.size(axis) - value)   # float start, [0, size - value)
    mask_start = min_value.long(); mask_end = min_value.long() + value.long()
    specgram[mask_start <= index < mask_end] = mask_value

so the width is ``int(value)``, uniform over ``0 .. param - 1``, and the mask always lies inside
the axis when ``param <= size`` (otherwise it is clipped to the axis, as torchaudio's comparison
does). The fill is 0 in power, which ``AmplitudeToDB`` (``10 log10(max(x, 1e-10))``, no
``top_db``) turns into -100 dB and leaves everything else as it was: on the mel-dB spectrogram
of :func:`avloc.inputs.mel.mel_db_spectrogram` the same augmentation is a fill with
:data:`FILL_DB` (-100.0), the default of :func:`apply_spec_augment`.

The randomness is the caller's numpy ``Generator`` (SSL-TIE's comes from Python's and torch's
global generators), drawn by :func:`draw_spec_augment` in a fixed order, always five uniforms,
so a batch replays from ``default_rng([seed, epoch, batch])``. Arithmetic of the draws is
float64 (torch: float32), a difference only at rounding boundaries of the widths and starts.

Input and output: float32 ``(F, T)`` or ``(F, T, 1)`` (frequency bins, frames); numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avloc.inputs.mel import AMIN

__all__ = [
    "FILL_DB",
    "FREQ_MASK",
    "SPEC_AUGMENT_P",
    "TIME_MASK",
    "SpecAugmentDraw",
    "apply_spec_augment",
    "draw_spec_augment",
    "mask_interval",
]

SPEC_AUGMENT_P = 0.8  #: SSL-TIE's probability of masking a clip
TIME_MASK = 180  #: ``TimeMasking(time_mask_param=180)``: widths 0..179 frames
FREQ_MASK = 35  #: ``FrequencyMasking(freq_mask_param=35)``: widths 0..34 mel bins
FILL_DB = float(10.0 * np.log10(AMIN))  #: -100.0: zero power in dB (AmplitudeToDB's floor)


@dataclass(frozen=True)
class SpecAugmentDraw:
    """One clip's masks (:func:`draw_spec_augment`): ``applied`` whether any mask applies;
    frames ``time_start : time_start + time_width`` and bins ``freq_start : freq_start +
    freq_width`` are masked (already clipped to the spectrogram; widths may be 0). The masks
    are drawn even when ``applied`` is False, and then ignored."""

    applied: bool
    time_start: int
    time_width: int
    freq_start: int
    freq_width: int

    def __post_init__(self):
        object.__setattr__(self, "applied", bool(self.applied))
        for name in ("time_start", "time_width", "freq_start", "freq_width"):
            value = int(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            object.__setattr__(self, name, value)


def mask_interval(u_width: float, u_start: float, param: int, size: int) -> tuple[int, int]:
    """torchaudio's ``mask_along_axis`` from two uniforms in [0, 1): ``(start, width)``.

    ``value = u_width * param``, ``min_value = u_start * (size - value)``, the mask is
    ``int(min_value) <= i < int(min_value) + int(value)`` (``int`` truncating toward zero, as
    ``Tensor.long``), clipped to ``0 .. size``.
    """
    value = float(u_width) * float(param)
    min_value = float(u_start) * (float(size) - value)
    start = int(min_value)
    end = start + int(value)
    lo, hi = min(max(start, 0), size), min(max(end, 0), size)
    return lo, max(hi - lo, 0)


def draw_spec_augment(
    rng: np.random.Generator,
    n_freq: int,
    n_frames: int,
    p: float = SPEC_AUGMENT_P,
    time_mask: int = TIME_MASK,
    freq_mask: int = FREQ_MASK,
) -> SpecAugmentDraw:
    """SSL-TIE's SpecAugment for an ``(n_freq, n_frames)`` spectrogram, from ``rng`` in this
    order and nothing else, always five uniforms (``rng.random()``):

    1. applied: ``u < p``;
    2. time mask width's uniform, 3. its start's (:func:`mask_interval` with ``time_mask``
       over ``n_frames``);
    4. frequency mask width's uniform, 5. its start's (``freq_mask`` over ``n_freq``).
    """
    n_freq, n_frames = int(n_freq), int(n_frames)
    if n_freq < 1 or n_frames < 1:
        raise ValueError(f"need a non-empty spectrogram, got {n_freq} x {n_frames}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if time_mask < 0 or freq_mask < 0:
        raise ValueError(f"mask parameters must be >= 0, got {time_mask}, {freq_mask}")
    applied = rng.random() < p
    u = rng.random(4)
    time_start, time_width = mask_interval(u[0], u[1], int(time_mask), n_frames)
    freq_start, freq_width = mask_interval(u[2], u[3], int(freq_mask), n_freq)
    return SpecAugmentDraw(applied, time_start, time_width, freq_start, freq_width)


def apply_spec_augment(
    spec: np.ndarray, draw: SpecAugmentDraw, fill: float = FILL_DB
) -> np.ndarray:
    """The masks of ``draw`` on ``spec`` float ``(F, T)`` or ``(F, T, 1)``: a new float32 array
    with the draw's frames and bins set to ``fill`` (-100 dB, SSL-TIE's zero power on a mel-dB
    spectrogram; 0.0 on a power spectrogram), everything else as it was. Unchanged (a float32
    copy) when ``draw.applied`` is False."""
    x = np.array(spec, dtype=np.float32, copy=True)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 1):
        raise ValueError(f"expected a spectrogram (F, T) or (F, T, 1), got shape {x.shape}")
    if not draw.applied:
        return x
    x[:, draw.time_start : draw.time_start + draw.time_width] = fill
    x[draw.freq_start : draw.freq_start + draw.freq_width] = fill
    return x
