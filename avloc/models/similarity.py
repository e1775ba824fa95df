"""The similarity map S(v, a) and its upsampling, in keras.ops (docs/protocol.md): one definition.

``v``: ``(B, h, w, D)`` visual maps and ``a``: ``(B, D)`` audio embeddings, both L2-normalised
float32, so every value of a map is a cosine in ``[-1, 1]``. Losses, the network and the maps
stage (:mod:`avloc.maps.engine`) all compute maps here; the plain-torch copy of the network
(:mod:`avloc.models.torch_ref`) holds the only other definition, checked against this one by
``tests/test_torch_infer.py``.
"""

from __future__ import annotations

from keras import ops

from avloc.utils.interpolation import interpolation_matrix


def pair_maps(v_map, a_emb):
    """``S(v_i, a_i)``: ``(B, h, w, D) x (B, D) -> (B, h, w)``."""
    return ops.einsum("bhwd,bd->bhw", v_map, a_emb)


def all_pair_maps(v_map, a_emb):
    """``S(v_n, a_m)`` for every pair: ``(N, h, w, D) x (M, D) -> (N, M, h, w)``."""
    return ops.einsum("nhwd,md->nmhw", v_map, a_emb)


def shared_audio_maps(v_map, a_one):
    """``S(v_i, a)`` for one audio embedding shared by every image: ``(B, h, w, D) x (D,)``."""
    return ops.einsum("bhwd,d->bhw", v_map, a_one)


def upsample_maps(maps, size: tuple[int, int]):
    """Bilinear upsampling of ``(B, h, w)`` maps to ``size`` (docs/method.md: aligned corners).

    Written as two interpolation matrices so that every backend gives the same numbers;
    :func:`avloc.utils.interpolation.upsample` is the numpy twin used on stored maps.
    """
    h, w = int(maps.shape[1]), int(maps.shape[2])
    rows = ops.convert_to_tensor(interpolation_matrix(h, size[0]))
    cols = ops.convert_to_tensor(interpolation_matrix(w, size[1]))
    return ops.einsum("yh,bhw,xw->byx", rows, ops.cast(maps, "float32"), cols)
