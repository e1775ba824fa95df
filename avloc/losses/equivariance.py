"""SSL-TIE's transformation-equivariance term (``equivariance``), in ``keras.ops``.

SSL-TIE (Liu et al., "Exploiting Transformation Invariance and Equivariance for Self-supervised
Sound Localisation", ACM MM 2022; github.com/jinxiang-liu/SSL-TIE, ``main.py`` and
``utils/tf_equivariance_loss.py``) trains with

    L = 0.5 * (L_cl(x) + L_cl(T(x))) + lambda * MSE(f(T(x)), T(f(x)))       lambda = 1

This term is the MSE (the recipe weight is lambda):

    A   = S(v(x), a)          (B, h, w)      the map of each image with its own audio
    A_T = S(v(T(x)), a)       (B, h_T, w_T)  the map of the transformed image, same audio
    L_E = mean over (B, h_T, w_T) of (A_T - T(A))^2

with ``T`` the batch's draw (:mod:`avloc.inputs.geometry`: per-sample rotation in integer
degrees within +-30, one scale 1.0 or 0.5, one horizontal flip) applied to ``A`` as SSL-TIE's
``TfEquivarianceLoss.transform`` does: resized to the images' ``input_size``, warped, resized to
the map size times the scale, flipped. Gradients reach both maps (SSL-TIE's default; its
``--heatmap_no_grad`` is not used by its training scripts).

Inputs (``outputs``; ``needs = {"equivariance"}`` tells the task to provide the last three):

- ``v_map`` ``(B, h, w, D)`` and ``a_emb`` ``(B, D)``, as for every term;
- ``v_map_t`` ``(B, h_T, w_T, D)``: the visual map of ``T(x)``, the transformed images
  (:func:`avloc.inputs.geometry.transform_maps_ops` of the model's input images);
- ``equivariance_matrices`` float32 ``(B, 2, 3)`` and ``equivariance_flip`` float32 ``(B,)``:
  the batch's draw as :func:`avloc.inputs.geometry.draw_arrays` makes it (the forward matrices
  for ``input_size`` and the flip repeated on every row), so the draw travels with the batch as
  per-row arrays: a row group or a device's share of the rows carries its own rows' draw.

The scale is static: ``T(A)`` is resized to ``(h_T, w_T)``, the size of ``A_T``. SSL-TIE resizes
``T(A)`` to ``int(h * scale)`` and, when that differs from ``A_T``'s size, once more to it
(``TfEquivarianceLoss.forward``); both are one resize when the sizes agree, as they do for
SSL-TIE's networks (224 px -> 14, 112 px -> 7). The term averages over its own rows only, so
row groups and data-parallel devices need nothing beyond their rows.
"""

from __future__ import annotations

from keras import ops

from avloc.inputs.geometry import FLIP_KEY, MATRICES_KEY, apply_transform_ops
from avloc.losses.base import LOSS_TERMS, LossTerm
from avloc.models.similarity import pair_maps

#: The outputs the term reads besides ``v_map`` and ``a_emb``
TRANSFORMED_MAP_KEY = "v_map_t"
EQUIVARIANCE_OUTPUTS = (TRANSFORMED_MAP_KEY, MATRICES_KEY, FLIP_KEY)


def equivariance_mse(v_map, a_emb, v_map_t, matrices, flip, input_size: int = 224):
    """``MSE(S(v_map_t, a), T(S(v_map, a)))``: shapes and draw as in the module docstring."""
    own = pair_maps(v_map, a_emb)[..., None]  # (B, h, w, 1): A = f(x)
    transformed = pair_maps(v_map_t, a_emb)[..., None]  # (B, h_T, w_T, 1): f(T(x))
    size = (int(transformed.shape[1]), int(transformed.shape[2]))
    target = apply_transform_ops(own, matrices, flip, size, input_size=input_size)  # T(f(x))
    return ops.mean(ops.square(transformed - target))


@LOSS_TERMS.register("equivariance")
class TransformationEquivariance(LossTerm):
    """SSL-TIE's L_E: the map of the transformed image against the transformed map."""

    needs = frozenset({"equivariance"})

    def __init__(self, weight: float = 1.0, input_size: int = 224, start_epoch: int = 0):
        super().__init__(weight, start_epoch)
        #: Side of the images the draw's matrices are for (``data.image_size``), pixels
        self.input_size = input_size

    def __call__(self, outputs):
        missing = [key for key in EQUIVARIANCE_OUTPUTS if key not in outputs]
        if missing:
            raise KeyError(
                f"the equivariance term needs outputs {', '.join(missing)} "
                "(the transformed images' map and the batch's draw)"
            )
        return equivariance_mse(
            outputs["v_map"],
            outputs["a_emb"],
            outputs[TRANSFORMED_MAP_KEY],
            outputs[MATRICES_KEY],
            outputs[FLIP_KEY],
            self.input_size,
        )
