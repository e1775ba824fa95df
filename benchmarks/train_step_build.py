"""One variant of ``train_step.py``'s training step, built inside the process that times it.

- :func:`make_inputs`, :func:`make_raw_inputs`: the fixed random batch, as the network takes it
  and in the loader's on-device form (``data.preprocess_on_device``);
- :func:`build_keras`: avloc's Keras task from ``recipes/ezvsl.toml`` with the shape overrides,
  one ``task.train_on_batch`` per step;
- :func:`build_plain`: the same model and loss in plain PyTorch (:mod:`benchmarks.plain_torch`),
  with oneDNN on or off as the variant asks.

Each builder returns ``(step, info)``: a function running one step and what the table reports
about the variant. ``profile_step.py`` and ``profile_tf_step.py`` build their steps here too.
"""

from __future__ import annotations

import os

from benchmarks.processes import ROOT

RECIPE = ROOT / "recipes" / "ezvsl.toml"


def audio_shape(clip_seconds: float, sample_rate: int = 16000) -> tuple[int, int]:
    import numpy as np

    from avloc.inputs.spectrogram import spectrogram

    return spectrogram(np.zeros(int(round(sample_rate * clip_seconds)), np.float32)).shape


def make_raw_inputs(args) -> dict:
    """The loader's on-device form of a batch (``data.preprocess_on_device``): uint8 frames
    ``(B, stored, stored, 3)``, crop draws ``(B, 3)``, int16 PCM ``(B, samples)``."""
    import numpy as np

    from avloc.inputs.images import train_crop

    rng = np.random.default_rng(args.seed)
    size, stored = args.image_size, args.stored_size
    image = rng.integers(0, 256, (args.batch, stored, stored, 3), dtype=np.uint8)
    crops = [train_crop(rng, stored, stored, size, train_resize(size)) for _ in range(args.batch)]
    samples = int(round(16000 * args.clip_seconds))
    return {
        "image": image,
        "crop": np.asarray([c[2:] for c in crops], np.int32),
        "audio": rng.integers(-8000, 8000, (args.batch, samples), dtype=np.int16),
    }


def train_resize(image_size: int) -> int:
    """The shorter side before the crop: 246/224 of the input, as the recipes set it."""
    return int(round(image_size * 246 / 224))


def make_inputs(args) -> tuple:
    """The fixed batch, channels last: image ``(B, S, S, 3)``, audio ``(B, F, T, 1)``."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    freq, frames = audio_shape(args.clip_seconds)
    image = rng.standard_normal((args.batch, args.image_size, args.image_size, 3), np.float32)
    audio = rng.uniform(-1.3, 0.0, (args.batch, freq, frames, 1)).astype(np.float32)
    return image, audio


# --------------------------------------------------------------------------------------------
# Building one variant (inside the process of its group)


def _check_keras_device(device: str) -> str:
    import keras

    backend = keras.backend.backend()
    if device != "cuda":
        return "cpu"
    if backend == "torch":
        import torch

        ok = torch.cuda.is_available()
    elif backend == "tensorflow":
        import tensorflow as tf

        ok = bool(tf.config.list_physical_devices("GPU"))
    else:
        import jax

        ok = jax.default_backend() in ("gpu", "cuda", "rocm")
    if not ok:
        raise RuntimeError(f"{backend} sees no GPU (install its GPU build)")
    return "cuda"


def build_keras(name: str, args, inputs_on_device: bool = False):
    import keras
    import numpy as np

    device = _check_keras_device(args.device)
    from avloc.config import load_recipe
    from avloc.training.build import build_task

    overrides = [
        f"train.batch_size={args.batch}",
        f"model.visual.width={args.width}",
        f"model.audio.width={args.width}",
        f"model.embed_dim={args.dim}",
        f"data.image_size={args.image_size}",
        f"data.clip_seconds={args.clip_seconds}",
        "train.tensorboard=false",
    ]
    # each variant says whether it compiles (the recipe's "auto" would compile JAX's)
    overrides.append(f"train.jit_compile={str(name.endswith(('-jit', '-xla'))).lower()}")
    # keras-torch-graph: the step replayed from its recording (train.step_graph)
    overrides.append(f"train.step_graph={str(name.endswith('-graph')).lower()}")
    raw = name.endswith("-preprocess")
    if raw:
        overrides += [
            "data.preprocess_on_device=true",
            f"data.train_resize={train_resize(args.image_size)}",
        ]
    if args.precision == "bf16":
        overrides.append('train.precision="mixed_bfloat16"')
    keras.utils.set_random_seed(args.seed)
    recipe = load_recipe(RECIPE, overrides)
    task = build_task(recipe)
    image, audio = make_inputs(args)
    batch = {"image": image, "audio": audio}
    if task.needs_noise:  # not for EZ-VSL; kept so another recipe would still run
        batch["noise"] = audio
    if raw:
        batch = make_raw_inputs(args)
    if inputs_on_device:  # a batch already on the accelerator (profile_step.py)
        batch = {key: keras.ops.convert_to_tensor(value) for key, value in batch.items()}

    def step():
        task.train_on_batch(batch)

    info = {
        "params": int(sum(np.prod(v.shape) for v in task.trainable_weights)),
        "device": device,
        "jit_compile": bool(task.jit_compile),
        "policy": task.net.dtype_policy.name,
    }
    return step, info


def build_plain(name: str, args):
    import numpy as np
    import torch

    from benchmarks import plain_torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no GPU")
    image, audio = make_inputs(args)
    plain = plain_torch.TrainStep(
        np.ascontiguousarray(image.transpose(0, 3, 1, 2)),
        np.ascontiguousarray(audio.transpose(0, 3, 1, 2)),
        width=args.width,
        dim=args.dim,
        tau=0.03,
        lr=1e-4,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
    )
    # oneDNN as avloc runs it (on for widths it computes correctly, avloc/runtime/backend.py),
    # always for torch-avx512, never for torch-native. The switch is global and keras-torch
    # shares this process, so each step sets it and then puts back what it found.
    from avloc.runtime.cpu_kernels import onednn_min_width

    onednn = args.device == "cpu" and (
        name == "torch-avx512"
        or (name in ("torch", "torch-avx2") and args.width >= onednn_min_width())
    )

    def step():
        found = torch.backends.mkldnn.enabled
        plain_torch.set_onednn(onednn)
        try:
            return plain()
        finally:
            plain_torch.set_onednn(found)

    info = {
        "params": plain.parameters,
        "device": args.device,
        "onednn": onednn,
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "DEFAULT") if onednn else None,
        "autocast": "bfloat16" if args.precision == "bf16" else "off",
    }
    return step, info
