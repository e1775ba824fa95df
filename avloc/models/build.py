"""The network of a recipe's ``[model]``: architecture, then its starting weights.

``build_network`` builds the registered architecture (:mod:`avloc.models.avnet`), loads
``model.visual.pretrained`` into the visual trunk (:mod:`avloc.models.pretrained`), then
copies ``model.init`` over every weight (:func:`apply_init`).

Training start points (:func:`apply_init`, recipe key ``model.init``): every weight of a saved
``.keras`` network (an imported one, or a run's ``model.keras``) is copied into the recipe's
network, which must have the same weights and shapes.
"""

from __future__ import annotations

from typing import Any

from avloc.errors import DataError, RecipeError
from avloc.models.avnet import ARCHITECTURES, AudioVisualNet
from avloc.models.pretrained import apply_pretrained
from avloc.models.torch_keys import key_listing
from avloc.runtime.configure import configure


def build_network(model_config, data_config=None) -> AudioVisualNet:
    """The network of a recipe's ``model`` section; ``data_config`` records its input settings.

    Configures the process's kernels for its widths first (:func:`avloc.runtime.configure`), as
    :func:`avloc.models.io.load_network` does for a file: a recipe's network can be built from
    Python without a job around it."""
    configure(model_config)
    net = ARCHITECTURES.get(model_config.arch, "model.arch")(model_config, data_config)
    return apply_init(apply_pretrained(net, model_config), model_config)


def named_weights(net) -> list[tuple[str, Any]]:
    """``(component/layer/weight, variable)`` for every weight of an AudioVisualNet."""
    named = [(f"visual_encoder/{v.path}", v) for v in net.visual_encoder.weights]
    named += [(f"audio_encoder/{v.path}", v) for v in net.audio_encoder.weights]
    if net.projection:
        named += [(v.path, v) for v in net.visual_proj.weights + net.audio_proj.weights]
        if getattr(net, "heads", 1) == 2:
            named += [(v.path, v) for v in net.visual_proj_2.weights + net.audio_proj_2.weights]
    return named


def apply_init(net, model_config):
    """``model.init`` -> copy every weight of a saved ``.keras`` network into ``net``.

    The file (``avloc import-checkpoint`` output, or a run's ``model.keras``) must hold the
    network the recipe describes: the same weights with the same shapes. Returns ``net``.
    """
    init = getattr(model_config, "init", "")
    if not init:
        return net
    from avloc.models.io import load_network

    try:
        source = load_network(init)
    except DataError as exc:
        raise RecipeError(f"model.init: {exc}") from None
    ours, theirs = named_weights(net), named_weights(source)
    described = (
        f"{init} has embed_dim {source.embed_dim}, projection {source.projection}, "
        f"visual {source.visual_config}, audio {source.audio_config}"
    )
    if [n for n, _ in ours] != [n for n, _ in theirs]:
        extra = sorted({n for n, _ in theirs} ^ {n for n, _ in ours})
        raise RecipeError(
            f"model.init: does not fit the recipe's network (weights differ: "
            f"{key_listing(extra)}); {described}"
        )
    for (name, mine), (_, saved) in zip(ours, theirs, strict=True):
        if tuple(mine.shape) != tuple(saved.shape):
            raise RecipeError(
                f"model.init: {name} has shape {tuple(saved.shape)}, the recipe's network "
                f"{tuple(mine.shape)}; {described}"
            )
    for (_, mine), (_, saved) in zip(ours, theirs, strict=True):
        mine.assign(saved.numpy())
    return net
