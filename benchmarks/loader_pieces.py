"""Where ``loader.py``'s time goes: each piece of a training sample timed alone, in ms/sample.

:func:`piece_runners` times the shard read, the image resize, crop + flip + normalise, the audio
and noise spectrograms, the noise waveform and the whole serial ``make_batch``, each over the
same ``--piece-samples`` samples; :func:`piece_results` relates each to ``make_batch`` with noise.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import summarize


def piece_runners(shards, args) -> dict:
    """Runners timing each piece of a sample alone; each returns ms per sample."""
    from avloc.data.loader import TrainBatches
    from avloc.inputs.images import _resize, normalize, preprocess_train, train_crop
    from avloc.inputs.noise import noise_waveform
    from avloc.inputs.spectrogram import spectrogram

    count = max(args.batch, min(args.piece_samples, len(shards)) // args.batch * args.batch)
    indices = np.arange(count) % len(shards)
    # the shard read takes the rows in a shuffled order, as training does (batch b of epoch 0)
    shuffled = np.random.default_rng([0, 0]).permutation(len(shards))
    shuffled = np.resize(shuffled, count)
    batches = [shuffled[i : i + args.batch] for i in range(0, count, args.batch)]
    rows = shards.read(indices, ["image", "audio"])
    images, waves = rows["image"], rows["audio"]
    clip = int(round(shards.attrs["sample_rate"] * shards.attrs["clip_seconds"]))
    size, resize = args.input_size, args.train_resize
    crops = [
        train_crop(np.random.default_rng(i), *img.shape[:2], size, resize)
        for i, img in enumerate(images)
    ]
    scaled = [_resize(img, c[1], c[0]) for img, c in zip(images, crops, strict=True)]
    noise = np.stack([noise_waveform(np.random.default_rng(i), clip) for i in range(count)])
    serial = {
        (noise_on, on_device): TrainBatches(
            shards,
            batch_size=args.batch,
            image_size=size,
            train_resize=resize,
            with_noise=noise_on,
            workers=1,
            on_device=on_device,
        )
        for noise_on in (False, True)
        for on_device in (False, True)
    }

    def per_sample(fn):
        def run():
            start = time.perf_counter()
            fn()
            return 1000 * (time.perf_counter() - start) / count

        return run

    def read():
        for b in batches:
            shards.read(b, ["image", "audio"])

    def resize_images():
        for img, (h, w, *_) in zip(images, crops, strict=True):
            _resize(img, w, h)

    def crop_normalise():
        for img, (_, _, top, left, flip) in zip(scaled, crops, strict=True):
            crop = img[top : top + size, left : left + size]
            normalize(crop[:, ::-1] if flip else crop)

    def preprocess():
        rng = np.random.default_rng(0)
        for img in images:
            preprocess_train(img, rng, size, resize)

    def audio_spectrogram():
        for i in range(0, count, args.batch):
            spectrogram(waves[i : i + args.batch])

    def noise_wave():
        rng = np.random.default_rng(0)
        for _ in range(count):
            noise_waveform(rng, clip)

    def noise_spectrogram():
        for i in range(0, count, args.batch):
            spectrogram(noise[i : i + args.batch])

    def make_batches(noise_on, on_device=False):
        loader = serial[noise_on, on_device]

        def run():
            for b in range(len(batches)):
                loader.make_batch(0, b % len(loader))

        return run

    return {
        "shard read (HDF5 image + PCM audio, shuffled)": per_sample(read),
        "image resize (bicubic, shorter side)": per_sample(resize_images),
        "image crop + flip + normalise": per_sample(crop_normalise),
        "preprocess_train (the two above)": per_sample(preprocess),
        "audio spectrogram (batched)": per_sample(audio_spectrogram),
        "noise waveform (clipped N(0, 1))": per_sample(noise_wave),
        "noise spectrogram (batched)": per_sample(noise_spectrogram),
        "make_batch, noise off (serial)": per_sample(make_batches(False)),
        "make_batch, noise on (serial)": per_sample(make_batches(True)),
        "make_batch, noise on, on device (serial)": per_sample(make_batches(True, True)),
    }


def piece_results(values: dict, failed: dict) -> dict:
    """piece -> ms per sample over the rounds and % of the serial ``make_batch`` with noise."""
    total = summarize(values.get("make_batch, noise on (serial)", []))["median"]
    return {
        name: {
            "ms_per_sample": summarize(v),
            "pct_of_make_batch_noise_on": (
                100 * summarize(v)["median"] / total if total and summarize(v)["median"] else None
            ),
            "error": failed.get(name),
        }
        for name, v in values.items()
    }
