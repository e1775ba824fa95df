"""Batches for ``model.fit`` on every backend: a ``keras.utils.PyDataset`` over shards.

Each batch is a dict (float32, channels last), made by
:class:`avloc.inputs.training.LoaderPreprocessing` from the rows read and the batch's draws, as
the recipe's :class:`~avloc.inputs.training.TrainInputs` say (``inputs``):

- ``image``: ``(B, S, S, 3)`` train-augmented (``crop_flip``, docs/method.md: shorter side ->
  ``train_resize``, random crop ``image_size``, random flip, ImageNet normalisation; or
  SSL-TIE's ``moco_v2``);
- ``audio``: ``(B, F, T, 1)`` spectrogram of the stored clip (repeated or cut to the recipe's
  ``clip_seconds``, as SSL-TIE's loader brings every clip to 10 s) in the recipe's front end (log
  power: 257 x 200 for 3 s at 16 kHz; mel in dB: 257 x 670 for 10 s), SpecAugment's masks on it
  when drawn;
- ``noise``: ``(B, F, T, 1)`` spectrogram of a fresh clipped-N(0, 1) clip per image, only when
  ``with_noise`` (SSL-SaN's ``a_N_j``). Silence is constant and lives in the task;
- with SSL-TIE's equivariance term, the batch's transformation draw as per-row arrays
  (``equivariance_matrices``, ``equivariance_flip``, ``equivariance_scale``, and
  ``equivariance_view``, whose shape ``(B, side)`` gives the transformed images' side on the
  host: :mod:`avloc.inputs.geometry`).

With ``on_device`` (``data.preprocess_on_device``) the loader only reads and draws: ``image`` is
the stored uint8 frames ``(B, H, W, 3)`` with their crop draws ``crop`` int32 ``(B, 3)`` (top,
left, flip), ``audio`` the stored int16 PCM ``(B, samples)`` (with ``spec_mask`` int32
``(B, 4)``) and ``noise_seed`` int32 ``(B,)`` one seed per noise clip; the training step does
the rest (:mod:`avloc.inputs.training`). The draws are the same as without it; the noise is
another generator's.

Determinism: batch ``i`` of epoch ``e`` depends only on ``(seed, e, i)``: the epoch's sample order
is ``default_rng([seed, e]).permutation(N)`` and every random draw of the batch (crops,
flips, noise, masks, T) comes from ``default_rng([seed, e, i])``. Batches can thus be built in
any order by any number of workers, and a resumed run rebuilds exactly the batches it had not
seen.

Which epoch is served is set from outside, by :meth:`TrainBatches.start_epoch` (the training
loop calls it at the start of each Keras epoch, before the first batch is asked for), never by
counting Keras' hooks: ``fit()`` runs ``on_epoch_end`` once before training starts, so a counter
advanced there is off by one after a resume. Keras must not reorder the batches either
(``fit(shuffle=False)``): its shuffle draws from Python's global random state, which a resumed
process does not share; the sample order above is already random per epoch.

Data parallel (:mod:`avloc.runtime.distribute`): ``rows = (start, stop)`` makes every batch rows
``start:stop`` of the global batch above, for a process that feeds only its own devices. Only
those rows are read and decoded; the random draws of the other rows are replayed (they take no
decoding), so the rows are exactly those of the global batch.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from avloc.data.shards import ShardSet
from avloc.inputs.pcm import fit_length
from avloc.inputs.training import SPEC_MASK_KEY, LoaderPreprocessing, TrainInputs


def batches_per_epoch(
    samples: int, batch_size: int, limit: int = 0, steps_per_epoch: int = 0
) -> int:
    """Full batches of one epoch (optimizer steps): ``min(samples, limit) // batch_size``
    (``limit`` 0: every sample), at most ``steps_per_epoch`` when that is set. A last partial
    batch is dropped. The one definition the loader and the training job share."""
    usable = min(samples, limit) if limit else samples
    full = usable // batch_size
    return min(full, steps_per_epoch) if steps_per_epoch else full


class TrainBatches(keras.utils.PyDataset):
    def __init__(
        self,
        shards: ShardSet,
        *,
        batch_size: int,
        seed: int = 0,
        inputs: TrainInputs | None = None,
        image_size: int = 224,
        train_resize: int = 246,
        noise_color: str = "white",
        with_noise: bool = False,
        limit: int = 0,
        steps_per_epoch: int = 0,
        epoch: int = 0,
        first_batch: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 8,
        rows: tuple[int, int] | None = None,
        on_device: bool = False,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.shards = shards
        self.batch_size = batch_size
        self.seed = seed
        #: How rows become inputs (the recipe's [data] settings; the shards' sample rate).
        #: Without ``inputs``: EZ-VSL's crop and flip at ``image_size``, ``train_resize``.
        if inputs is None:
            inputs = TrainInputs(size=image_size, resize=train_resize, noise_color=noise_color)
        self.inputs = dataclasses.replace(inputs, sample_rate=int(shards.attrs["sample_rate"]))
        self.with_noise = with_noise
        self.num_samples = min(len(shards), limit) if limit else len(shards)
        self.batches_per_epoch = batches_per_epoch(len(shards), batch_size, limit, steps_per_epoch)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{shards.location}: {self.num_samples} samples are fewer than one batch of "
                f"{batch_size}"
            )
        self.epoch = epoch
        self.first_batch = first_batch  # > 0 only for the remainder of a resumed epoch
        self.rows = rows
        #: Hand over what was read and drawn; the training step preprocesses it
        #: (``data.preprocess_on_device``, :mod:`avloc.inputs.training`).
        self.on_device = bool(on_device)
        if rows is not None and not 0 <= rows[0] < rows[1] <= batch_size:
            raise ValueError(f"rows {rows} are not a part of a batch of {batch_size}")
        #: Samples per clip: the recipe's clip length (stored clips are repeated or cut to it,
        #: :func:`avloc.inputs.pcm.fit_length`), else the shards' own
        seconds = self.inputs.clip_seconds or float(shards.attrs["clip_seconds"])
        self.clip_samples = int(round(shards.attrs["sample_rate"] * seconds))
        #: The numpy preprocessing (unused with ``on_device``: the step's twin does it).
        self.preprocessing = LoaderPreprocessing(self.inputs)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.first_batch

    def sample_indices(self, epoch: int, batch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        return order[batch * self.batch_size : (batch + 1) * self.batch_size]

    def make_batch(self, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """Batch ``batch`` of epoch ``epoch`` (every row; see :meth:`make_rows`)."""
        return self.make_rows(epoch, batch, *(self.rows or (0, self.batch_size)))

    def make_rows(self, epoch: int, batch: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of batch ``batch`` of epoch ``epoch``, decoding only those.

        Every random draw of every row is made, in a fixed order
        (:meth:`avloc.inputs.training.TrainInputs.draw`), so the rows are those of the whole
        batch.
        """
        rng = np.random.default_rng([self.seed, epoch, batch])
        indices = self.sample_indices(epoch, batch)[start:stop]
        rows = self.shards.read(indices, ["image", "audio"], raw_pcm=self.on_device)
        rows["audio"] = fit_length(rows["audio"], self.clip_samples)
        frame_shape = rows["image"].shape[1:3]  # every stored image has the shard's size
        draws = self.inputs.draw(
            rng, self.batch_size, frame_shape, self.clip_samples, self.with_noise, self.on_device
        )
        images = draws["images"][start:stop]
        masks = None if draws["spec_masks"] is None else draws["spec_masks"][start:stop]
        if self.on_device:
            out = {
                "image": rows["image"],
                "crop": np.asarray([(top, left, flip) for *_, top, left, flip in images], np.int32),
                "audio": rows["audio"],
            }
            if masks is not None:
                out[SPEC_MASK_KEY] = masks
            if self.with_noise:
                out["noise_seed"] = draws["noise"][start:stop]
        else:
            prep = self.preprocessing
            out = {
                "image": prep.images(rows["image"], images),
                "audio": prep.spectrograms(rows["audio"], masks),
            }
            if self.with_noise:
                out["noise"] = prep.spectrograms(draws["noise"][start:stop])
        out.update({key: value[start:stop] for key, value in draws["transform"].items()})
        return out

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.make_batch(self.epoch, self.first_batch + index)

    def start_epoch(self, epoch: int) -> None:
        """Serve training epoch ``epoch`` (0-based) from now on; call before its first batch."""
        self.epoch = epoch
