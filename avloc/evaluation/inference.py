"""Run a network over test shards: per-sample maps for every audio condition (SPEC 4.1).

For each batch of images the visual map ``v`` (``(B, h, w, D)``) is computed **once**; every
audio condition is then a dot product of ``v`` with that condition's audio embedding:

- ``positive``: the sample's own audio (the shard's clip, centred to ``clip_seconds``);
- ``silence``: the all-zero clip (one embedding for the whole data set);
- ``noise``: clipped N(0, 1) noise, drawn per sample from ``default_rng((seed, index))`` so a
  sample gets the same noise whatever the batch size or model;
- ``offscreen``: the shard's ``offscreen_audio`` (a class absent from the image), when present;
- ``shuffled`` (control, optional): the audio of another sample, a fixed derangement.

All real and generated clips of a batch go through the audio encoder in one call. Results are
:class:`~avloc.evaluation.records.SampleRecords` at the network's map resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from avloc.audio import (
    clip_centered,
    noise_waveform,
    resample,
    silence_waveform,
    spectrogram,
)
from avloc.backend import inference_mode
from avloc.data.shards import ShardSet
from avloc.errors import DataError
from avloc.evaluation.records import POSITIVE, SampleRecords
from avloc.image import preprocess_test

GT_FIELDS = ("boxes", "box", "box_group", "mask")


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point (``perm[i] != i``) for ``n >= 2``; deterministic."""
    if n < 2:
        raise DataError("the shuffled-audio control needs at least 2 samples")
    rng = np.random.default_rng((seed, 7))
    perm = rng.permutation(n)
    # Rotate by one within the permutation's cycle order: i -> next element never equals i.
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.roll(perm, -1)
    return out


def _to_numpy(x) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x), dtype=np.float32)


class AudioFrontEnd:
    """Waveforms -> spectrograms with the network's settings (resampling shard audio if needed)."""

    def __init__(self, net, shard_rate: int):
        self.rate = int(net.inputs["sample_rate"])
        self.seconds = float(net.inputs["clip_seconds"])
        self.samples = int(round(self.rate * self.seconds))
        self.shard_rate = int(shard_rate)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, np.float32)
        if self.shard_rate != self.rate:
            wave = resample(wave, self.shard_rate, self.rate)
        wave = clip_centered(wave, self.rate, self.seconds)
        return spectrogram(wave, sample_rate=self.rate)

    def noise(self, seed: int, index: int) -> np.ndarray:
        wave = noise_waveform(np.random.default_rng((seed, int(index))), self.samples)
        return spectrogram(wave, sample_rate=self.rate)

    def silence(self) -> np.ndarray:
        return spectrogram(silence_waveform(self.samples), sample_rate=self.rate)

    def silence_embedding(self, net) -> np.ndarray:
        """``(D,)``: the one audio embedding of silence, shared by every image."""
        with inference_mode():
            return _to_numpy(net.encode_audio(self.silence()[None, :, :, None]))[0]


def encode_images(net, images_uint8) -> np.ndarray:
    """uint8 ``(B, H, W, 3)`` images -> float32 ``(B, h, w, D)`` normalised visual maps."""
    size = int(net.inputs["image_size"])
    images = np.stack([preprocess_test(i, size) for i in images_uint8])
    with inference_mode():
        return _to_numpy(net.encode_image(images))


def gt_rule_of(shards: ShardSet) -> str:
    rule = str(shards.attrs.get("ground_truth", ""))
    if rule:
        return rule
    if "boxes" in shards.fields or "box" in shards.fields:
        return "boxes"
    if "mask" in shards.fields:
        return "mask"
    return ""


def collect_records(
    net,
    shards: ShardSet,
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 32,
    seed: int = 0,
    negatives: tuple[str, ...] = ("silence", "noise", "offscreen"),
    control: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> SampleRecords:
    """Maps and embeddings of ``net`` on ``shards`` (all samples, or ``indices``)."""
    n_total = len(shards)
    indices = np.arange(n_total) if indices is None else np.asarray(indices, np.int64)
    if len(indices) == 0:
        raise DataError(f"{shards.location}: no samples to evaluate")
    if "offscreen" in negatives and "offscreen_audio" not in shards.fields:
        negatives = tuple(c for c in negatives if c != "offscreen")
    image_size = int(net.inputs["image_size"])
    audio = AudioFrontEnd(net, int(shards.attrs.get("sample_rate", 16000)))
    silence_emb = None
    if "silence" in negatives:
        silence_emb = audio.silence_embedding(net)
    partner = derangement(len(indices), seed) if control == "shuffled" else None

    rule = gt_rule_of(shards)
    fields = ["id", "image", "audio"]
    fields += [f for f in ("label", "group", *GT_FIELDS) if f in shards.fields]
    if "offscreen" in negatives:
        fields.append("offscreen_audio")

    maps: dict[str, list[np.ndarray]] = {c: [] for c in (POSITIVE, *negatives)}
    if control:
        maps[control] = []
    columns: dict[str, list[np.ndarray]] = {f: [] for f in fields if f not in ("image", "audio")}
    image_emb, audio_emb = [], []
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start : start + batch_size]
        rows = shards.read(batch_idx, fields)
        v = encode_images(net, rows["image"])  # (b, h, w, D): once per image
        b = len(batch_idx)

        specs = [audio(w) for w in rows["audio"]]
        order = [(POSITIVE, slice(0, b))]
        if "noise" in negatives:
            specs += [audio.noise(seed, i) for i in batch_idx]
            order.append(("noise", slice(len(specs) - b, len(specs))))
        if "offscreen" in negatives:
            specs += [audio(w) for w in rows["offscreen_audio"]]
            order.append(("offscreen", slice(len(specs) - b, len(specs))))
        if partner is not None:
            other = indices[partner[start : start + b]]
            specs += [audio(w) for w in shards.read(other, ["audio"])["audio"]]
            order.append((control, slice(len(specs) - b, len(specs))))
        with inference_mode():
            a = _to_numpy(net.encode_audio(np.stack(specs)[..., None]))
        for condition, part in order:
            maps[condition].append(np.einsum("bhwd,bd->bhw", v, a[part]))
        if silence_emb is not None:
            maps["silence"].append(np.einsum("bhwd,d->bhw", v, silence_emb))

        mean = v.mean(axis=(1, 2))
        image_emb.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
        audio_emb.append(a[:b])
        for f in columns:
            columns[f].append(rows[f])
        if progress:
            progress(b)

    cat = {f: np.concatenate(v) for f, v in columns.items()}
    boxes = cat.get("boxes")
    if boxes is None and "box" in cat:
        boxes = cat["box"][:, None, :].astype(np.float32)
    return SampleRecords(
        ids=cat["id"],
        maps={c: np.concatenate(m).astype(np.float32) for c, m in maps.items()},
        image_emb=np.concatenate(image_emb).astype(np.float32),
        audio_emb=np.concatenate(audio_emb).astype(np.float32),
        map_size=image_size,
        labels=cat.get("label"),
        gt_rule=rule,
        boxes=boxes,
        box_group=cat.get("box_group"),
        mask=cat.get("mask"),
        groups=cat.get("group"),
        class_names=list(shards.class_names),
    )
