"""The audio-visual network: images and spectrograms in, normalised embeddings out (docs/method.md).

Inputs (channels last, float32):
- ``image``: ``(B, H, W, 3)`` ImageNet-normalised RGB (224x224 in the paper setting).
- ``audio``: ``(B, F, T, 1)`` log spectrogram (257x200 for 3 s at 16 kHz), see
  :mod:`avloc.inputs.spectrogram`.

Outputs of ``call`` (a dict; no loss is computed here):
- ``v_map``: ``(B, h, w, D)`` visual features, L2-normalised over channels at every location
  (7x7 at 224 input for the EZ-VSL family).
- ``a_emb``: ``(B, D)`` audio embedding, L2-normalised (global max pool -> Linear -> norm).

RCGrad (``normalize=False``, ``audio_pool="avg"``, imported only): ``v_map`` is the raw visual
map divided by ``h * w`` and ``a_emb`` the raw average-pooled audio vector, so that
``S(v, a) = sum_c a_c A_c / hw`` is the Grad-CAM map RCGrad computes (before its ReLU and
rescaling, which change no pixel above a positive threshold).

Architectures (``model.arch``): ``ezvsl`` (7x7 maps at 224 px, 1x1-conv / Linear projections to
D) and ``lvs`` (last ResNet stage at stride 1: 14x14 maps at 224 px; no projection heads, so D is
the trunks' channel count and ``a_emb`` is the normalised max-pooled audio trunk output).

``visual_dropout`` (FNAC: 0.9) drops channels-and-locations of the visual trunk's feature map in
training only, before the projection and the L2 norm, as in the FNAC reference code (dropout on
the ResNet output, then ``img_proj``, then normalisation); inference is unaffected.

Similarity maps (cosine, in [-1, 1]) are computed in :mod:`avloc.models.similarity`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from avloc.models.resnet import default_data_format, resnet
from avloc.registry import Registry
from avloc.runtime.scalars import floor_at

ARCHITECTURES = Registry("architecture")
DEFAULT_INPUTS = {"image_size": 224, "sample_rate": 16000, "clip_seconds": 3.0}


def l2_normalize(x, axis: int = -1):
    """``x / max(||x||, 1e-12)`` along ``axis`` (PyTorch's F.normalize).

    Written as ``sqrt(max(||x||^2, 1e-24))`` so that the gradient stays finite (0 through the
    norm) at an all-zero vector, as in PyTorch; ``sqrt`` at 0 would give NaN. Zero vectors do
    occur: a ReLU trunk location can be all zeros, more so under visual dropout.
    """
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x / ops.sqrt(floor_at(squared, 1e-24))


@keras.saving.register_keras_serializable(package="avloc")
class AudioVisualNet(keras.Model):
    """ResNet-18 visual + audio encoders, projections (EZ-VSL family; none for LVS), L2 norms."""

    def __init__(
        self,
        embed_dim: int = 512,
        visual: dict[str, Any] | None = None,
        audio: dict[str, Any] | None = None,
        projection: bool = True,
        inputs: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        visual_dropout: float = 0.0,
        heads: int = 1,
        audio_pool: str = "max",
        normalize: bool = True,
        arch: str = "",
        **kwargs,
    ):
        super().__init__(**kwargs)
        #: The registered architecture it was built as (``model.arch``: "ezvsl" or "lvs"; an
        #: import records the one its weights fill); "" in networks saved before it was recorded.
        self.arch = str(arch)
        if heads not in (1, 2) or (heads == 2 and not projection):
            raise ValueError(f"heads must be 1, or 2 with projections (SLAVC), got {heads}")
        #: Projection pairs. With 2 (SLAVC), each head's embeddings are L2-normalised, joined
        #: along channels and scaled by 1/sqrt(2): the dot product of two joined vectors is the
        #: mean of the heads' cosines, SLAVC's map, and each joined vector has unit norm.
        self.heads = int(heads)
        #: How inputs were prepared in training: image_size (px), sample_rate (Hz), clip_seconds.
        self.inputs = {**DEFAULT_INPUTS, **(inputs or {})}
        #: Universal-threshold calibration (see avloc.maps.calibration): ``{"uth": float,
        #: "statistic": str, ...}`` or None before calibration. Saved with the network.
        self.calibration = dict(calibration) if calibration else None
        visual = dict(visual or {})
        audio = dict(audio or {})
        visual.pop("pretrained", None)
        self.embed_dim = embed_dim
        self.visual_config = visual
        self.audio_config = audio
        self.projection = projection
        self.visual_dropout = float(visual_dropout)
        self.data_format = fmt = default_data_format()  # internal layout only, never saved
        self.visual_encoder = resnet(3, name="visual_encoder", data_format=fmt, **visual)
        self.audio_encoder = resnet(1, name="audio_encoder", data_format=fmt, **audio)
        if audio_pool not in ("max", "avg"):
            raise ValueError(f"audio_pool must be 'max' or 'avg', got {audio_pool!r}")
        if not normalize and projection:
            raise ValueError("normalize=False (dot-product maps) is RCGrad's, without projections")
        #: "max" (EZ-VSL, LVS) or "avg" (RCGrad) pooling of the audio trunk's output
        self.audio_pool_kind = audio_pool
        #: False (RCGrad): raw embeddings and the visual map divided by its h * w, so a map is
        #: the Grad-CAM map of the audio embedding, sum_c (a_c / hw) A_c (docs/model-zoo.md)
        self.normalize = bool(normalize)
        pool = layers.GlobalMaxPooling2D if audio_pool == "max" else layers.GlobalAveragePooling2D
        self.audio_pool = pool(data_format=fmt, name="audio_pool")
        # No weights (only a seed state); created only when used, so other networks are unchanged.
        self.visual_dropout_layer = (
            layers.Dropout(self.visual_dropout, name="visual_dropout")
            if self.visual_dropout > 0
            else None
        )
        if projection:
            suffix = "" if heads == 1 else "1"
            self.visual_proj, self.audio_proj = self._projections(embed_dim, fmt, suffix)
            if heads == 2:
                self.visual_proj_2, self.audio_proj_2 = self._projections(embed_dim, fmt, "2")
        self.built = True

    def _projections(self, embed_dim: int, fmt: str, suffix: str):
        """One built projection pair (1x1 conv on the visual map, Dense on the audio vector)."""
        visual_proj = layers.Conv2D(
            embed_dim,
            1,
            data_format=fmt,
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, "fan_out", "untruncated_normal"
            ),
            name=f"img_proj{suffix}",
        )
        audio_proj = layers.Dense(
            embed_dim,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
            name=f"aud_proj{suffix}",
        )
        # Build every weight now (the trunks are functional models, already built), so that
        # saving and loading never meet an unbuilt layer whose weights would be skipped.
        axis = 1 if fmt == "channels_first" else -1
        visual_channels = self.visual_encoder.output.shape[axis]
        proj_input = (
            (None, visual_channels, None, None)
            if fmt == "channels_first"
            else (None, None, None, visual_channels)
        )
        visual_proj.build(proj_input)
        audio_proj.build((None, self.audio_encoder.output.shape[axis]))
        return visual_proj, audio_proj

    def _join_heads(self, parts, axis: int = -1):
        """Normalised heads -> one unit vector whose dot products are the heads' mean cosine."""
        if len(parts) == 1:
            return parts[0]
        return ops.concatenate(parts, axis=axis) * (1.0 / len(parts) ** 0.5)

    def encode_image(self, image, training=False):
        """``(B, H, W, 3) -> (B, h, w, D)`` normalised visual map."""
        channels_first = self.data_format == "channels_first"
        if channels_first:
            image = ops.transpose(image, (0, 3, 1, 2))
        x = self.visual_encoder(image, training=training)
        if self.visual_dropout_layer is not None:
            x = self.visual_dropout_layer(x, training=training)
        heads = [x]
        if self.projection:
            heads = [self.visual_proj(x)]
            if self.heads == 2:
                heads.append(self.visual_proj_2(x))
        if channels_first:
            heads = [ops.transpose(h, (0, 2, 3, 1)) for h in heads]
        # float32 under a mixed policy too
        if not self.normalize:
            x = ops.cast(heads[0], "float32")
            return x / ops.cast(ops.shape(x)[1] * ops.shape(x)[2], "float32")
        return self._join_heads([l2_normalize(ops.cast(h, "float32"), axis=-1) for h in heads])

    def encode_audio(self, spectrogram, training=False):
        """``(B, F, T, 1) -> (B, D)`` normalised audio embedding."""
        if self.data_format == "channels_first":
            spectrogram = ops.transpose(spectrogram, (0, 3, 1, 2))
        x = self.audio_pool(self.audio_encoder(spectrogram, training=training))
        heads = [x]
        if self.projection:
            heads = [self.audio_proj(x)]
            if self.heads == 2:
                heads.append(self.audio_proj_2(x))
        if not self.normalize:
            return ops.cast(x, "float32")
        return self._join_heads([l2_normalize(ops.cast(h, "float32"), axis=-1) for h in heads])

    def call(self, inputs, training=False):
        return {
            "v_map": self.encode_image(inputs["image"], training=training),
            "a_emb": self.encode_audio(inputs["audio"], training=training),
        }

    def build_for(self, image_size: int, audio_shape: tuple[int, int]) -> None:
        """Create every weight by running one zero batch."""
        import numpy as np

        self(
            {
                "image": np.zeros((1, image_size, image_size, 3), "float32"),
                "audio": np.zeros((1, *audio_shape, 1), "float32"),
            }
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            embed_dim=self.embed_dim,
            visual=self.visual_config,
            audio=self.audio_config,
            projection=self.projection,
            inputs=self.inputs,
            calibration=self.calibration,
            visual_dropout=self.visual_dropout,
            heads=self.heads,
            audio_pool=self.audio_pool_kind,
            normalize=self.normalize,
            arch=self.arch,
        )
        return config

    @property
    def uth(self) -> float | None:
        """The calibrated universal threshold (raw cosine units), or None if not calibrated."""
        return None if not self.calibration else float(self.calibration["uth"])


def input_settings(data_config) -> dict[str, Any]:
    """The preprocessing a network was trained with, from a recipe's ``data`` section."""
    if data_config is None:
        return dict(DEFAULT_INPUTS)
    settings = {
        "image_size": int(data_config.image_size),
        "sample_rate": int(data_config.sample_rate),
        "clip_seconds": float(data_config.clip_seconds),
    }
    if data_config.inference_border:  # absent means 0, as in networks saved before it existed
        settings["inference_border"] = int(data_config.inference_border)
    frontend = getattr(data_config, "audio_frontend", "log_psd")
    if frontend != "log_psd":  # absent means log_psd, as in networks saved before it existed
        settings["audio_frontend"] = frontend
    return settings


def visual_dropout_problem(rate: float) -> str:
    """What ``model.visual_dropout`` must be, when ``rate`` is not that; "" when it is."""
    return "" if 0.0 <= rate < 1.0 else "a rate in [0, 1)"


def _check_visual_dropout(model_config) -> float:
    rate = model_config.visual_dropout
    problem = visual_dropout_problem(rate)
    if problem:
        from avloc.errors import RecipeError

        raise RecipeError(f"model.visual_dropout: expected {problem}, got {rate}")
    return rate


@ARCHITECTURES.register("ezvsl")
def build_ezvsl(model_config, data_config=None) -> AudioVisualNet:
    """The EZ-VSL family (EZ-VSL, marginNCE, FNAC, SSL-SaN): 7x7 maps, projection heads."""
    visual = model_config.visual
    audio = model_config.audio
    net = AudioVisualNet(
        embed_dim=model_config.embed_dim,
        visual=dict(
            width=visual.width,
            blocks=tuple(visual.blocks),
            last_stride=visual.last_stride,
            stem_pool=visual.stem_pool,
        ),
        audio=dict(width=audio.width, blocks=tuple(audio.blocks), stem_pool=audio.stem_pool),
        projection=True,
        inputs=input_settings(data_config),
        visual_dropout=_check_visual_dropout(model_config),
        arch="ezvsl",
        name="avnet",
    )
    return net


def trunk_channels(width: int, blocks) -> int:
    """Channels of a ResNet trunk's output: ``width * 2**(stages - 1)`` (512 for ResNet-18)."""
    return width * 2 ** (len(tuple(blocks)) - 1)


@ARCHITECTURES.register("lvs")
def build_lvs(model_config, data_config=None) -> AudioVisualNet:
    """The LVS family (docs/method.md): last visual stage at stride 1 (14x14 maps), no projections.

    ``model.visual.last_stride`` must be 1 and ``model.embed_dim`` must equal both trunks'
    channel count (``8 * width`` for ResNet-18), so that a recipe never says something the
    network silently ignores.
    """
    from avloc.errors import RecipeError

    visual = model_config.visual
    audio = model_config.audio
    if visual.last_stride != 1:
        raise RecipeError(
            f"model.visual.last_stride: the lvs architecture keeps the last stage at stride 1 "
            f"(14x14 maps at 224 px); set it to 1 (got {visual.last_stride})"
        )
    channels = trunk_channels(visual.width, visual.blocks)
    audio_channels = trunk_channels(audio.width, audio.blocks)
    if audio_channels != channels:
        raise RecipeError(
            f"model.audio.width: the lvs architecture has no projection heads, so both trunks "
            f"must output the same channels (visual {channels}, audio {audio_channels})"
        )
    if model_config.embed_dim != channels:
        raise RecipeError(
            f"model.embed_dim: the lvs architecture has no projection heads, so D is the trunk's "
            f"channel count {channels}; set embed_dim = {channels} (got {model_config.embed_dim})"
        )
    net = AudioVisualNet(
        embed_dim=channels,
        visual=dict(
            width=visual.width,
            blocks=tuple(visual.blocks),
            last_stride=1,
            stem_pool=visual.stem_pool,
        ),
        audio=dict(width=audio.width, blocks=tuple(audio.blocks), stem_pool=audio.stem_pool),
        projection=False,
        inputs=input_settings(data_config),
        visual_dropout=_check_visual_dropout(model_config),
        arch="lvs",
        name="avnet",
    )
    return net
