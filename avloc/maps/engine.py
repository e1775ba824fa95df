"""The maps stage: a network and media in, raw similarity maps S(v, a) out (docs/protocol.md).

Every consumer of maps after training runs through :class:`MapsEngine`: Uth calibration at the
end of training and in ``avloc eval --calibrate``, ``avloc eval``, ``avloc localize``, ``avloc
reproduce`` and the Keras-free torch path. The engine

- owns the network's input contract (:class:`avloc.inputs.contract.InputContract`);
- computes the visual map ``v`` ``(B, h, w, D)`` **once** per image, then one dot product per
  audio condition (:mod:`avloc.maps.conditions`, which also owns the seeding rule);
- encodes all real and generated clips of a batch in one audio-encoder call;
- works with a Keras :class:`~avloc.models.avnet.AudioVisualNet` (through
  :class:`KerasEncoders`) or the plain-torch :class:`~avloc.maps.torch_engine.TorchNet`.

Maps are float32 ``(B, h, w)`` raw cosines at the network's resolution; embeddings are float32
``(B, D)``. Upsampling to pixels is :func:`avloc.utils.interpolation.upsample`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avloc.errors import DataError
from avloc.inputs.contract import InputContract, batch
from avloc.maps import conditions as cond


class KerasEncoders:
    """A Keras network's encoders and S(v, a) as numpy in, numpy out (inference mode)."""

    def __init__(self, net):
        self.net = net

    def encode_image(self, images: np.ndarray) -> np.ndarray:
        from avloc.runtime.backend import inference_mode

        with inference_mode():
            return _to_numpy(self.net.encode_image(images, training=False))

    def encode_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        from avloc.runtime.backend import inference_mode

        with inference_mode():
            return _to_numpy(self.net.encode_audio(spectrograms, training=False))

    def pair_maps(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        from avloc.models.similarity import pair_maps

        return _to_numpy(pair_maps(v, a))


def _to_numpy(x) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x), dtype=np.float32)


@dataclass
class ConditionBatch:
    """One batch of :meth:`MapsEngine.condition_batches`."""

    indices: np.ndarray  # (b,) int64 shard indices
    rows: dict[str, Any]  # the shard fields read for these samples
    v: np.ndarray  # (b, h, w, D) visual maps
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # condition -> (b, h, w)
    positive_audio: np.ndarray | None = None  # (b, D) embeddings of the samples' own audio


class MapsEngine:
    """Maps of one network (Keras or plain torch) for pairs, or for shards under conditions."""

    def __init__(self, net):
        from avloc.maps.torch_engine import TorchNet

        self.net = net
        self.encoders = net if isinstance(net, TorchNet) else KerasEncoders(net)
        self.contract = InputContract(net.inputs)
        self._silence: np.ndarray | None = None

    # -- building blocks -----------------------------------------------------------------

    def visual(self, images_uint8: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 ``(H, W, 3)`` images -> float32 ``(B, h, w, D)`` visual maps."""
        return self.encoders.encode_image(self.contract.images(images_uint8))

    def audio(self, spectrograms: Sequence[np.ndarray]) -> np.ndarray:
        """``(F, T)`` spectrograms -> float32 ``(B, D)`` audio embeddings (one encoder call)."""
        return self.encoders.encode_audio(batch(spectrograms))

    def maps(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """S(v_i, a_i): ``(B, h, w, D) x (B, D)`` -> float32 ``(B, h, w)``; ``a`` may be ``(D,)``
        (one embedding for every image)."""
        a = np.asarray(a, np.float32)
        if a.ndim == 1:
            a = np.broadcast_to(a, (len(v), a.shape[0]))
        return self.encoders.pair_maps(v, np.ascontiguousarray(a))

    def silence_embedding(self) -> np.ndarray:
        """``(D,)``: the one embedding of silence, computed once per engine."""
        if self._silence is None:
            self._silence = self.audio([self.contract.silence()])[0]
        return self._silence

    # -- user pairs (localize) -----------------------------------------------------------

    def pair_maps(self, images: Sequence[np.ndarray], waves: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, h, w)`` maps of pairs: uint8 images of any size, waveforms at the net's rate."""
        v = self.visual(images)
        return self.maps(v, self.audio([self.contract.spectrogram(w) for w in waves]))

    # -- shards under audio conditions (eval, calibration, reproduce) ----------------------

    def condition_batches(
        self,
        shards,
        indices: np.ndarray,
        conditions: Sequence[str],
        *,
        seed: int = 0,
        noise_seed: int | None = None,
        batch_size: int = 32,
        fields: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[ConditionBatch]:
        """Maps of ``shards[indices]`` under each of ``conditions``, ``batch_size`` at a time.

        ``seed`` fixes the derangement of ``shuffled`` / ``other``; ``noise_seed`` (default
        ``seed``) the noise clips. ``fields`` are extra shard fields returned in ``rows``.
        """
        indices = np.asarray(indices, np.int64)
        unknown = [c for c in conditions if c not in cond.CONDITIONS]
        if unknown:
            raise ValueError(f"unknown audio conditions {unknown}; expected {cond.CONDITIONS}")
        if len(indices) == 0:
            raise DataError(f"{shards.location}: no samples to evaluate")
        noise_seed = seed if noise_seed is None else noise_seed
        rate = int(shards.attrs.get("sample_rate", 16000))
        partner = None
        if any(c in cond.PARTNER_CONDITIONS for c in conditions):
            partner = cond.derangement(len(indices), seed)
        wanted = ["image", *fields]
        if cond.POSITIVE in conditions:
            wanted.append("audio")
        if cond.OFFSCREEN in conditions:
            wanted.append("offscreen_audio")
        wanted = list(dict.fromkeys(wanted))

        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            b = len(idx)
            rows = shards.read(idx, wanted)
            out = ConditionBatch(idx, rows, self.visual(rows["image"]))
            specs: list[np.ndarray] = []
            parts: list[str] = []
            for name in conditions:
                if name == cond.POSITIVE:
                    specs += [self.contract.spectrogram(w, rate) for w in rows["audio"]]
                elif name == cond.NOISE:
                    specs += [self.contract.noise(cond.noise_rng(noise_seed, i)) for i in idx]
                elif name == cond.OFFSCREEN:
                    specs += [self.contract.spectrogram(w, rate) for w in rows["offscreen_audio"]]
                elif name in cond.PARTNER_CONDITIONS:
                    other = indices[partner[start : start + b]]
                    waves = shards.read(other, ["audio"])["audio"]
                    specs += [self.contract.spectrogram(w, rate) for w in waves]
                else:
                    continue
                parts.append(name)
            a = self.audio(specs) if specs else None
            for k, name in enumerate(parts):
                out.maps[name] = self.maps(out.v, a[k * b : (k + 1) * b])
            if cond.SILENCE in conditions:
                out.maps[cond.SILENCE] = self.maps(out.v, self.silence_embedding())
            if cond.POSITIVE in parts:
                out.positive_audio = a[:b]
            if progress:
                progress(b)
            yield out
