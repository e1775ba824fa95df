"""Published audio-visual checkpoints (PyTorch) -> avloc networks (``avloc import-checkpoint``).

Published checkpoints (:func:`import_checkpoint`, ``avloc import-checkpoint``):

=============  ==================================================================================
``--arch``     torch keys -> avloc network (``model.arch``)
=============  ==================================================================================
ezvsl          ``imgnet.*`` visual trunk, ``audnet.*`` audio trunk, ``img_proj.*`` (1x1 conv),
fnac           ``aud_proj.*`` (Linear) -> ``ezvsl``. FNAC and marginNCE are EZ-VSL code forks
marginnce      with the same keys (their dropouts hold no weights).
slavc          ``imgnet.*``, ``audnet.*`` and both projection pairs ``img_proj1/2`` /
               ``aud_proj1/2`` -> ``ezvsl`` with two heads, whose map is the mean of the heads'
               maps, SLAVC's own test map (``--head 1|2``: one pair only, a one-head network);
               with ``--momentum`` the ``momentum_*`` copies are read instead (SLAVC's
               ``--use_mom_eval``). **Ignored** (listed in the report): the other encoder copy
               (and with ``--head``, the other pair).
lvs            ``imgnet.*`` (last stage at stride 1), ``audnet.*`` with the audio stem
               ``audnet.conv1_a`` (``audnet.conv1`` when there is no ``conv1_a``), no projections
               -> ``lvs``. **Ignored**: the stems the published ResNet holds for the other
               modalities (``imgnet.conv1_a``, ``imgnet.conv1_flow``, ``audnet.conv1``,
               ``audnet.conv1_flow``) and the unused classifiers ``imgnet.fc.*``, ``audnet.fc.*``.
               Inputs as LVS's own test loader: 10 s clips (short audio tiled).
sslalign       SSL-Align (kaistmm/SSLalignment) is evaluated as LVS's network loaded with
               ``strict=False``: the ``lvs`` mapping, every key outside ``imgnet.*`` /
               ``audnet.*`` (its projection heads) **ignored**. Its front end is recorded: 3 s
               clips (3.5-6.5 s of a 10 s file) as log spectrograms every 159 samples
               (``stft_hop = 159``: 299 frames).
rcgrad         RCGrad (hohsiangwu/rethinking-visual-sound-localization, ``rc_grad.pt``, a flat
               state_dict): ``image_encoder.*`` (LVS's visual ResNet, last stage at stride 1)
               and ``audio_encoder.*`` (a ResNet-18 on one channel, **average**-pooled), no
               projections, maps as dot products (``normalize=False``: its Grad-CAM map).
               **Ignored**: ``image_encoder.conv1_a`` / ``conv1_flow`` / ``fc`` and the STFT
               window buffer ``audio_encoder.spectrogram.window``. Front end: 10 s clips as
               a standardised log STFT (:mod:`avloc.inputs.stft`), CLIP's image statistics.
ssltie         SSL-TIE (jinxiang-liu/SSL-TIE) is LVS's network: the ``lvs`` mapping, plus its
               layers that do not touch the map **ignored** (``vision_fc1.*``, ``conv3.*``,
               ``norm3.*``). Its audio front end is recorded in the network: 10 s clips, a mel
               spectrogram in dB (``audio_frontend = "mel_db"``, :mod:`avloc.inputs.mel`).
sslsan         SSL-SaN (the authors' ``evaluate/checkpoints/sslsan.pth.tar``, ``{'state_dict',
               'epoch'}`` without ``module.``) is SSL-TIE's network: the ``ssltie`` mapping and
               front end under the name ``sslsan``, plus the learnable thresholds ``epsilon`` /
               ``epsilon2`` **ignored** when present (the tri-map loss's, not the map's). Its
               keys are SSL-TIE's, so it is never detected: pass ``--arch sslsan``.
=============  ==================================================================================

Without ``--arch`` the layout is detected from the keys (:func:`detect_arch`):
``image_encoder`` and ``audio_encoder`` -> rcgrad; ``img_proj1``
-> slavc; ``img_proj`` -> ezvsl (FNAC and marginNCE have the same layout and import the same);
``vision_fc1`` / ``conv3`` / ``norm3`` beside ``imgnet`` -> ssltie; ``imgnet`` and ``audnet``
alone -> lvs; with other keys beside them -> sslalign (an SSL-Align checkpoint holding nothing
but the two trunks is detected as lvs: pass ``--arch sslalign``). SSL-SaN's checkpoint has
SSL-TIE's keys and is detected as ssltie: pass ``--arch sslsan`` (the name it is recorded under,
``published_as``, is what evaluators go by).

Widths, blocks per stage and the embedding size D are read from the tensor shapes, so full-size
(width 64, D 512) and smaller checkpoints both import. The network records the published input
setting of its authors' test loader (224 px, 16 kHz, 3 s clips and avloc's log spectrogram;
LVS: 10 s; SSL-TIE and SSL-SaN: 10 s, mel in dB; SSL-Align: hop 159), ``published_as`` (the
``--arch``) and no Uth calibration.

Reading and key mapping: :mod:`avloc.models.torch_keys` (safe loading, layouts, strict
accounting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avloc.errors import DataError
from avloc.models.torch_keys import (
    ImportReport,
    Source,
    assign_sources,
    infer_trunk,
    layer_sources,
    load_state_dict,
    trunk_sources,
)
from avloc.runtime.configure import configure

ARCHS = (
    "ezvsl",
    "slavc",
    "fnac",
    "marginnce",
    "lvs",
    "ssltie",
    "sslsan",
    "sslalign",
    "rcgrad",
)
#: The setting the published models were trained and evaluated with.
PUBLISHED_INPUTS = {"image_size": 224, "sample_rate": 16000, "clip_seconds": 3.0}


@dataclass(frozen=True)
class ArchSpec:
    """How a published state_dict lays out avloc's network."""

    arch: str  # the name given on the command line
    avloc_arch: str  # the registered avloc architecture it becomes
    visual: str  # torch prefix of the visual trunk
    audio: str  # torch prefix of the audio trunk
    img_proj: str | None = None  # torch module of the 1x1-conv visual projection
    aud_proj: str | None = None  # torch module of the Linear audio projection
    audio_stem: str = "conv1"  # torch module of the audio trunk's first convolution
    last_stride: int = 2
    ignored: tuple[str, ...] = ()  # full-match patterns of keys with no place in avloc's network
    notes: tuple[str, ...] = ()  # said to the user after an import
    inputs: tuple[tuple[str, object], ...] = ()  # overrides of PUBLISHED_INPUTS
    img_proj2: str | None = None  # the second projection pair (SLAVC's two heads)
    aud_proj2: str | None = None
    audio_pool: str = "max"  # "avg": RCGrad's average-pooled audio trunk
    normalize: bool = True  # False: RCGrad's dot-product (Grad-CAM) maps


def arch_spec(
    arch: str, *, head: int = 0, momentum: bool = False, state: dict | None = None
) -> ArchSpec:
    """The mapping for ``arch``; ``head`` (0: both) and ``momentum`` choose SLAVC's branch."""
    if arch not in ARCHS:
        raise DataError(f"--arch {arch}: expected one of {', '.join(ARCHS)}")
    if arch != "slavc" and (head not in (0, 1) or momentum):
        raise DataError(f"--head/--momentum: only --arch slavc has several heads (got {arch})")
    if arch in ("ezvsl", "fnac", "marginnce"):
        return ArchSpec(arch, "ezvsl", "imgnet", "audnet", "img_proj", "aud_proj")
    if arch == "slavc":
        if head not in (0, 1, 2):
            raise DataError(f"--head {head}: SLAVC has projection heads 1 and 2 (0: both)")
        pre = "momentum_" if momentum else ""
        unused = "" if momentum else "momentum_"
        if head == 0:
            return ArchSpec(
                arch,
                "ezvsl",
                f"{pre}imgnet",
                f"{pre}audnet",
                f"{pre}img_proj1",
                f"{pre}aud_proj1",
                ignored=(
                    rf"{unused}(imgnet|audnet)\..+",
                    rf"{unused}(img|aud)_proj[12]\.(weight|bias)",
                ),
                img_proj2=f"{pre}img_proj2",
                aud_proj2=f"{pre}aud_proj2",
            )
        other = 3 - head
        return ArchSpec(
            arch,
            "ezvsl",
            f"{pre}imgnet",
            f"{pre}audnet",
            f"{pre}img_proj{head}",
            f"{pre}aud_proj{head}",
            ignored=(
                rf"{pre}(img|aud)_proj{other}\.(weight|bias)",
                rf"{unused}(imgnet|audnet)\..+",
                rf"{unused}(img|aud)_proj[12]\.(weight|bias)",
            ),
            notes=(
                f"SLAVC head {head} of 2 ({'momentum' if momentum else 'main'} encoders): "
                "SLAVC's own map is the mean of both heads' maps (leave out --head for it)",
            ),
        )
    if arch == "rcgrad":  # hohsiangwu/rethinking-visual-sound-localization models.py
        return ArchSpec(
            arch,
            "lvs",
            "image_encoder",
            "audio_encoder",
            last_stride=1,
            ignored=(
                r"image_encoder\.(conv1_a|conv1_flow)\.weight",
                r"image_encoder\.fc\.(weight|bias)",
                r"audio_encoder\.spectrogram\.window",
            ),
            notes=(
                "RCGrad: its Grad-CAM map is the dot product of the last visual stage (over "
                "h * w) with the average-pooled audio vector; 10 s clips as a standardised log "
                "STFT (hop 353), images with CLIP's statistics",
            ),
            inputs=(
                ("clip_seconds", 10.0),
                ("audio_frontend", "log_stft_standardized"),
                ("image_norm", "clip"),
            ),
            audio_pool="avg",
            normalize=False,
        )
    # lvs, ssltie, sslsan, sslalign
    stem = "conv1_a" if state is None or "audnet.conv1_a.weight" in state else "conv1"
    ignored = (
        r"imgnet\.(conv1_a|conv1_flow)\.weight",
        r"audnet\.(conv1|conv1_flow)\.weight",
        r"(imgnet|audnet)\.fc\.(weight|bias)",
    )

    def lvs_network(extra_ignored=(), notes=(), inputs=()) -> ArchSpec:
        """LVS's AVENet under ``arch``'s name: its trunks, stems and ignore list, plus more."""
        return ArchSpec(arch, "lvs", "imgnet", "audnet", audio_stem=stem, last_stride=1,
                        ignored=(*ignored, *extra_ignored), notes=notes,
                        inputs=inputs)  # fmt: skip

    if arch == "lvs":  # its test loader (hche11 datasets/dataloader.py) feeds 10 s of audio
        return lvs_network(inputs=(("clip_seconds", 10.0),))
    if arch == "sslalign":  # kaistmm/SSLalignment test.py: LVS's AVENet, strict=False
        return lvs_network(
            extra_ignored=(r"(?!imgnet\.|audnet\.).+",),
            notes=(
                "SSL-Align: LVS's network (its test code loads it with strict=False, so keys "
                "outside imgnet/audnet are unused there too), fed 3 s clips (3.5-6.5 s of a "
                "10 s file) as log spectrograms with a hop of 159 samples",
            ),
            inputs=(("clip_seconds", 3.0), ("stft_hop", 159)),
        )
    ssltie_ignored = (
        r"vision_fc1\.(weight|bias)",
        r"conv3\.(weight|bias)",
        r"norm3\.(weight|bias|running_mean|running_var|num_batches_tracked)",
    )
    ssltie_inputs = (("clip_seconds", 10.0), ("audio_frontend", "mel_db"))
    if arch == "sslsan":  # SSL-SaN's evaluate/: SSL-TIE's AVENet, maybe learnable thresholds
        return lvs_network(
            extra_ignored=(*ssltie_ignored, r"epsilon2?"),
            notes=(
                "SSL-SaN: SSL-TIE's network (LVS's trunks) fed 10 s clips as a mel spectrogram "
                "in dB; its keys are SSL-TIE's, so --arch sslsan is what records it as SSL-SaN",
            ),
            inputs=ssltie_inputs,
        )
    return lvs_network(  # ssltie
        extra_ignored=ssltie_ignored,
        notes=("SSL-TIE: LVS's network fed 10 s clips as a mel spectrogram in dB",),
        inputs=ssltie_inputs,
    )


def detect_arch(state: dict) -> str | None:
    """The ``--arch`` a state_dict's keys imply (see the module), or None when they do not."""
    keys = set(state)
    if any(k.startswith("image_encoder.") for k in keys) and any(
        k.startswith("audio_encoder.") for k in keys
    ):
        return "rcgrad"
    if not any(k.startswith("imgnet.") for k in keys) and not any(
        k.startswith("momentum_imgnet.") for k in keys
    ):
        return None
    if "img_proj1.weight" in keys:
        return "slavc"
    if "img_proj.weight" in keys:
        return "ezvsl"
    if keys & {"vision_fc1.weight", "conv3.weight", "norm3.weight"}:
        return "ssltie"
    if any(k.startswith("audnet.") for k in keys):
        # LVS's checkpoints hold its two trunks only; SSL-Align's add layers its evaluators
        # never load (strict=False)
        outside = [k for k in keys if not k.startswith(("imgnet.", "audnet."))]
        return "sslalign" if outside else "lvs"
    return None


def network_sources(net, spec: ArchSpec) -> list[Source]:
    sources = trunk_sources(net.visual_encoder, spec.visual)
    sources += trunk_sources(net.audio_encoder, spec.audio, {"conv1": spec.audio_stem})
    if net.projection:
        sources += layer_sources(net.visual_proj, spec.img_proj)
        sources += layer_sources(net.audio_proj, spec.aud_proj)
    if net.heads == 2:
        sources += layer_sources(net.visual_proj_2, spec.img_proj2)
        sources += layer_sources(net.audio_proj_2, spec.aud_proj2)
    return sources


def _embed_dim(path: Path, state: dict[str, np.ndarray], module: str) -> int:
    key = f"{module}.weight"
    if key not in state:
        raise DataError(f"{path}: missing key {key} (the visual projection)")
    return int(state[key].shape[0])


def _check_sizes(
    path: Path, state: dict[str, np.ndarray], spec: ArchSpec, embed_dim, visual, audio
):
    """The sizes read from tensor shapes within the recipes' ranges, and a network that its
    tensors can fill, before it is built; one-line DataError naming the file and the key."""
    from avloc.models.file_limits import check_parameters
    from avloc.models.network_checks import check_recipe_value

    trunks = (
        ("visual", spec.visual, "conv1", visual),
        ("audio", spec.audio, spec.audio_stem, audio),
    )
    for part, prefix, stem, (width, blocks) in trunks:
        check_recipe_value(path, f"{prefix}.{stem}.weight", f"model.{part}.width", width)
        check_recipe_value(path, f"{prefix}.layer*", f"model.{part}.blocks", blocks)
    where = f"{spec.img_proj}.weight" if spec.img_proj else f"{spec.visual} (its output channels)"
    check_recipe_value(path, where, "model.embed_dim", embed_dim)
    config = {
        "embed_dim": embed_dim,
        "visual": {"width": visual[0], "blocks": visual[1]},
        "audio": {"width": audio[0], "blocks": audio[1]},
        "projection": bool(spec.img_proj),
        "heads": 2 if spec.img_proj2 else 1,
    }
    stored = sum(int(tensor.size) for tensor in state.values())
    check_parameters(path, config, stored, "its tensors")


def import_checkpoint(
    path: str | Path,
    arch: str | None,
    out: str | Path | None = None,
    *,
    head: int = 0,
    momentum: bool = False,
):
    """Build avloc's network from a published checkpoint; save it to ``out`` when given.

    Returns ``(net, report)``. The network's ``inputs`` are :data:`PUBLISHED_INPUTS` (with the
    architecture's overrides) and it is not calibrated (run ``avloc eval --calibrate``).
    ``arch=None`` detects it from the keys (:func:`detect_arch`).
    """
    from avloc.config import AudioEncoderConfig, DataConfig, ModelConfig, VisualConfig
    from avloc.models.avnet import trunk_channels
    from avloc.models.build import build_network

    path = Path(path)
    if arch is not None:
        arch_spec(arch, head=head, momentum=momentum)  # a wrong option fails before reading
    state = load_state_dict(path)
    if arch is None:
        arch = detect_arch(state)
        if arch is None:
            raise DataError(
                f"{path}: cannot tell the architecture from its keys; pass --arch "
                f"({', '.join(ARCHS)})"
            )
    spec = arch_spec(arch, head=head, momentum=momentum, state=state)
    v_width, v_blocks = infer_trunk(path, state, spec.visual)
    a_width, a_blocks = infer_trunk(path, state, spec.audio, spec.audio_stem)
    if spec.img_proj:
        embed_dim = _embed_dim(path, state, spec.img_proj)
    else:
        embed_dim = trunk_channels(v_width, v_blocks)
        audio_channels = trunk_channels(a_width, a_blocks)
        if audio_channels != embed_dim:
            raise DataError(
                f"{path}: --arch {arch} has no projections, but {spec.visual} outputs "
                f"{embed_dim} channels and {spec.audio} {audio_channels}"
            )
    _check_sizes(path, state, spec, embed_dim, (v_width, v_blocks), (a_width, a_blocks))
    model_config = ModelConfig(
        arch=spec.avloc_arch,
        embed_dim=embed_dim,
        visual=VisualConfig(width=v_width, blocks=v_blocks, last_stride=spec.last_stride),
        audio=AudioEncoderConfig(width=a_width, blocks=a_blocks),
    )
    # published_as: which authors' model this is (evaluators' per-model rules, e.g. vssl_eval)
    inputs = {**PUBLISHED_INPUTS, **dict(spec.inputs), "published_as": spec.arch}
    data_config = DataConfig(
        image_size=inputs["image_size"],
        sample_rate=inputs["sample_rate"],
        clip_seconds=inputs["clip_seconds"],
    )
    configure(widths=(v_width, a_width))  # the kernels for these widths, before building
    if spec.img_proj2 or not spec.normalize:  # SLAVC's two heads, RCGrad's dot maps: not
        from avloc.models.avnet import AudioVisualNet, input_settings  # recipe architectures

        net = AudioVisualNet(
            embed_dim=embed_dim,
            visual=dict(width=v_width, blocks=tuple(v_blocks), last_stride=spec.last_stride),
            audio=dict(width=a_width, blocks=tuple(a_blocks)),
            projection=bool(spec.img_proj),
            inputs=input_settings(data_config),
            heads=2 if spec.img_proj2 else 1,
            audio_pool=spec.audio_pool,
            normalize=spec.normalize,
            arch=spec.avloc_arch,
            name="avnet",
        )
    else:
        net = build_network(model_config, data_config)
    net.inputs.update(inputs)  # what DataConfig does not hold (the audio front end)
    hint = ""
    if not any(k.startswith(f"{spec.visual}.") for k in state):
        hint = f"is this an --arch {arch} checkpoint?"
    elif arch == "ssltie" and state.keys() & {"epsilon", "epsilon2"}:
        hint = "learnable thresholds beside SSL-TIE's keys: is this SSL-SaN's? pass --arch sslsan"
    used, ignored = assign_sources(path, state, network_sources(net, spec), spec.ignored, hint)
    if out is not None:
        from avloc.models.io import save_network

        save_network(net, out)
    config = {
        "arch": spec.avloc_arch,
        "embed_dim": embed_dim,
        "visual": {"width": v_width, "blocks": list(v_blocks), "last_stride": spec.last_stride},
        "audio": {"width": a_width, "blocks": list(a_blocks)},
        "heads": net.heads,
    }
    config["inputs"] = dict(net.inputs)
    return net, ImportReport(path, arch, used, ignored, config, spec.notes)
