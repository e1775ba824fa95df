"""SSL-TIE's geometric transformation T (rotation, scale, flip): the draws, the matrices, the warp.

SSL-TIE (Liu et al., "Exploiting Transformation Invariance and Equivariance for Self-supervised
Sound Localisation", ACM MM 2022; github.com/jinxiang-liu/SSL-TIE: ``main.py`` and
``utils/tf_equivariance_loss.py``, written with kornia 0.5) trains with

    L = 0.5 * (L_cl(x) + L_cl(T(x))) + lambda * MSE(f(T(x)), T(f(x)))       lambda = 1

where ``f(x)`` is the cosine similarity map ``A`` of image ``x`` with its own audio (14 x 14 at
224 px) and ``T`` is drawn once per batch (:func:`draw_equivariance`). The MSE is the
``equivariance`` loss term (:mod:`avloc.losses.equivariance`); this module is T itself.

**The draw** (``TfEquivarianceLoss._get_rotation``): one scale for the batch (1.0 or 0.5, p 0.5
each), one integer angle per sample, uniform in ``[-30, 30]`` degrees (both ends included), one
horizontal flip for the batch (p 0.5).

**The transform** (``TfEquivarianceLoss.transform``) of ``x`` ``(B, H, W, C)``, for the images
(``H = W = input_size``) and for the maps (14 x 14) alike:

1. ``x`` is resized to ``input_size x input_size`` when it is not that size already (bilinear,
   half-pixel centres: ``F.interpolate(..., align_corners=False)``, kornia's ``Resize``);
2. warped with the forward matrix ``M`` of each sample (:func:`rotation_matrices`) onto an
   ``input_size x input_size`` grid (kornia's ``warp_affine``: bilinear, zeros outside,
   ``align_corners=True``);
3. resized to ``(int(H * scale), int(W * scale))``, ``H x W`` being ``x``'s own size (bilinear,
   half-pixel centres, no antialiasing);
4. flipped left-right when the draw says so.

So an image goes 224 -> warp -> 224 * s, and a map 14 -> 224 -> warp -> 14 * s. Even the
identity draw (angle 0, scale 1, no flip) is not the identity on a map: the round trip
14 -> 224 -> 14 of steps 1 and 3 blurs it slightly (each value becomes
``A_i + (A_{i-1} - 2 A_i + A_{i+1}) / 64`` along each axis at 224 px, the edge values standing
in for the missing neighbours); it is the identity on an image of ``input_size``.

**Pixel coordinates** (kornia's and OpenCV's): ``x`` is the column index, ``y`` the row index,
the centre of pixel ``(row i, column j)`` is the point ``(x, y) = (j, i)``, so the first and last
pixel centres are the ends of kornia's normalised ``[-1, 1]`` span (``align_corners=True``). The
rotation centre is ``(input_size / 2, input_size / 2)`` = (112, 112) at 224 px, half a pixel
right of and below the image's middle ``(111.5, 111.5)``, as in SSL-TIE. ``M`` maps input points
to output points; output pixel ``p`` takes the bilinear sample of the input at ``M^-1 p``, each
of the four neighbours outside the image counting as 0 (``grid_sample``'s ``padding_mode=
"zeros"``). A positive angle turns the content counter-clockwise as seen on screen.

**Precision**: float32 throughout, as in SSL-TIE. Sampling points at 224 px are good to about
1e-5 pixel (the matrices' translations, up to about 90 px, are float32 numbers), and next to the
zero padding a value changes by up to its own size per pixel: on maps in [-1, 1] this module is
within about 1.2e-5 of the exact (float64) T, and SSL-TIE's own float32 kornia path within
about 1.5e-5 (``tests/test_equivariance.py``).

**Why not** ``keras.ops.image.affine_transform``: it computes the same warp forward (its
8-parameter form is ``M^-1``'s rows; ``tests/test_equivariance.py`` checks it), but TensorFlow's
gradient of it (``ImageProjectiveTransformV3`` in ``tensorflow/python/ops/image_ops.py``) warps
the incoming gradient back with the inverse transform, which is not the adjoint of bilinear
sampling (on this chain at scale 0.5 it was off by up to three times the gradient's size). The
warp here gathers the four neighbours with ``keras.ops.take``, whose gradient is exact on every
backend, and evaluates only the output rows and columns that step 3 reads (28 x 28 of the
224 x 224 for a 14 x 14 map at scale 1, 14 x 14 at scale 0.5).

numpy only at import: the keras.ops functions import Keras when called.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avloc.utils.interpolation import interpolation_matrix

__all__ = [
    "MATRICES_KEY",
    "FLIP_KEY",
    "SCALE_KEY",
    "VIEW_KEY",
    "EquivarianceDraw",
    "apply_transform_ops",
    "draw_arrays",
    "scale_arrays",
    "draw_equivariance",
    "rotation_matrices",
    "transform_maps_ops",
]

#: Batch/outputs key of the draw's forward matrices, float32 ``(B, 2, 3)`` (:func:`draw_arrays`)
MATRICES_KEY = "equivariance_matrices"
#: Batch/outputs key of the draw's flip, float32 ``(B,)``, 1.0 where flipped (the batch's flip
#: repeated on every row, so that the draw splits by rows like every other per-row input)
FLIP_KEY = "equivariance_flip"
#: Batch key of the draw's scale, float32 ``(B,)`` (the batch's scale repeated on every row): the
#: task picks the transformed images' size from it (:mod:`avloc.task`)
SCALE_KEY = "equivariance_scale"
#: Batch key of the transformed images' side in pixels, ``int(input_size * scale)``, carried as
#: the **shape** of a uint8 ``(B, side)`` array of zeros: a host value that every backend's
#: batch conversion keeps on the host, so the task picks the view's size without reading a
#: device value (``SCALE_KEY`` holds the same scale as values, for a compiled step whose input
#: shapes are not fixed: TensorFlow's after its second shape)
VIEW_KEY = "equivariance_view"


@dataclass(frozen=True, eq=False)
class EquivarianceDraw:
    """One batch's T: ``angles`` float32 ``(B,)`` in degrees (integers, one per sample),
    ``scale`` the batch's scale factor (1.0 or 0.5), ``flip`` the batch's horizontal flip."""

    angles: np.ndarray
    scale: float
    flip: bool

    def __post_init__(self):
        angles = np.array(self.angles, dtype=np.float32).reshape(-1)
        angles.setflags(write=False)
        object.__setattr__(self, "angles", angles)
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "flip", bool(self.flip))
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def batch(self) -> int:
        return int(self.angles.shape[0])


def draw_equivariance(
    rng: np.random.Generator,
    batch: int,
    max_angle: int = 30,
    scales: tuple[float, ...] = (1.0, 0.5),
) -> EquivarianceDraw:
    """T for a batch of ``batch`` samples, drawn from ``rng`` in this order and nothing else:

    1. the scale: ``scales[rng.integers(len(scales))]`` (SSL-TIE: 1.0 or 0.5, p 0.5 each);
    2. the angles: ``rng.integers(-max_angle, max_angle, size=batch, endpoint=True)``, integer
       degrees as SSL-TIE's ``random.randint(-max_angle, max_angle)`` (both ends included);
    3. the flip: ``rng.random() < 0.5``.

    The draw is a function of the generator's state alone, so the loader's per-batch generator
    (``default_rng([seed, epoch, batch])``) makes it replayable and a resumed run exact.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if int(max_angle) != max_angle or max_angle < 0:
        raise ValueError(f"max_angle must be a non-negative integer, got {max_angle}")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales}")
    scale = float(scales[int(rng.integers(len(scales)))])
    angles = rng.integers(-int(max_angle), int(max_angle), size=batch, endpoint=True)
    flip = bool(rng.random() < 0.5)
    return EquivarianceDraw(angles.astype(np.float32), scale, flip)


def rotation_matrices(draw: EquivarianceDraw, size: int | tuple[int, int] = 224) -> np.ndarray:
    """Forward matrices float32 ``(B, 2, 3)`` of the draw for ``size x size`` images (an int, or
    ``(height, width)``), as kornia's ``get_rotation_matrix2d(center, angle, scale)`` (OpenCV's
    ``getRotationMatrix2D``) with ``center = (width / 2, height / 2)`` in pixels:

        [[ a, b, (1 - a) cx - b cy],        a = scale cos(angle)
         [-b, a, b cx + (1 - a) cy]]        b = scale sin(angle)

    Computed in float64, rounded once to float32. ``[x', y'] = M [x, y, 1]`` maps input pixel
    coordinates to output ones (module docstring).
    """
    height, width = (size, size) if np.isscalar(size) else size
    cx, cy = float(width) / 2.0, float(height) / 2.0
    radians = np.deg2rad(draw.angles.astype(np.float64))
    a = draw.scale * np.cos(radians)
    b = draw.scale * np.sin(radians)
    first = np.stack([a, b, (1.0 - a) * cx - b * cy], axis=-1)
    second = np.stack([-b, a, b * cx + (1.0 - a) * cy], axis=-1)
    return np.stack([first, second], axis=1).astype(np.float32)


def draw_arrays(draw: EquivarianceDraw, input_size: int = 224) -> dict[str, np.ndarray]:
    """The draw as the per-row arrays a batch (and the task's outputs) carry to the
    ``equivariance`` term: ``{MATRICES_KEY: (B, 2, 3) float32, FLIP_KEY: (B,) float32}``.

    The scale is in the matrices and in the transformed image's size, not in an array of its
    own: the term takes its output size from the map of the transformed image. Rows
    ``start:stop`` of every array are the draw of rows ``start:stop`` of the batch.
    """
    return {
        MATRICES_KEY: rotation_matrices(draw, input_size),
        FLIP_KEY: np.full((draw.batch,), float(draw.flip), np.float32),
    }


def scale_arrays(draw: EquivarianceDraw, input_size: int = 224) -> dict[str, np.ndarray]:
    """The batch's scale as the task reads it: ``{SCALE_KEY: (B,) float32, VIEW_KEY: (B, side)
    uint8 zeros}`` with ``side = int(input_size * scale)``, the transformed images' side."""
    side = int(input_size * draw.scale)
    return {
        SCALE_KEY: np.full((draw.batch,), draw.scale, np.float32),
        VIEW_KEY: np.zeros((draw.batch, side), np.uint8),
    }


# --------------------------------------------------------------------------------------------
# keras.ops
# --------------------------------------------------------------------------------------------


def transform_maps_ops(x, draw: EquivarianceDraw, input_size: int = 224):
    """SSL-TIE's ``transform(x)`` in keras.ops (any backend, differentiable in ``x``).

    ``x``: float32 ``(B, H, W, C)``, channels last (images at ``input_size``, or maps such as
    14 x 14 similarity maps with ``C = 1``); ``B`` must be the draw's batch. Returns float32
    ``(B, int(H * scale), int(W * scale), C)``: resized to ``input_size`` if needed, warped with
    :func:`rotation_matrices` ``(draw, input_size)``, resized, flipped (module docstring; pixel
    coordinates as kornia's ``warp_affine`` with ``align_corners=True``).
    """
    height, width = int(x.shape[1]), int(x.shape[2])
    if x.shape[0] is not None and int(x.shape[0]) != draw.batch:
        raise ValueError(f"x has {x.shape[0]} rows but the draw has {draw.batch}")
    size = (int(height * draw.scale), int(width * draw.scale))
    return apply_transform_ops(
        x, rotation_matrices(draw, input_size), draw.flip, size, input_size=input_size
    )


def apply_transform_ops(x, matrices, flip, size: tuple[int, int], input_size: int = 224):
    """:func:`transform_maps_ops` with the draw given as tensors (inside a training step).

    ``x`` float32 ``(B, H, W, C)`` (``H``, ``W``, ``C`` static); ``matrices`` the forward
    matrices float32 ``(B, 2, 3)`` for ``input_size`` (:func:`rotation_matrices`); ``flip`` a
    Python bool for the batch or a float ``(B,)`` tensor, rows flipped where it is above 0.5;
    ``size`` the static output ``(height, width)``, ``int(H * scale), int(W * scale)`` in
    SSL-TIE. Returns float32 ``(B, size[0], size[1], C)``.
    """
    from keras import ops

    x = ops.cast(x, "float32")
    height, width, channels = (int(d) for d in x.shape[1:])
    n = int(input_size)
    if (height, width) != (n, n):  # step 1: to input_size (half-pixel bilinear)
        x = _resize_ops(
            x,
            interpolation_matrix(height, n, half_pixel=True),
            interpolation_matrix(width, n, half_pixel=True),
        )
    rows_out = interpolation_matrix(n, int(size[0]), half_pixel=True)  # step 3, (h_out, n)
    cols_out = interpolation_matrix(n, int(size[1]), half_pixel=True)
    rows = np.flatnonzero(rows_out.any(axis=0))  # the warped rows step 3 reads
    cols = np.flatnonzero(cols_out.any(axis=0))
    warped = _warp_ops(x, matrices, rows, cols, n, channels)  # step 2, (B, len(rows), len(cols), C)
    out = _resize_ops(warped, rows_out[:, rows], cols_out[:, cols])
    if isinstance(flip, bool | np.bool_):  # step 4
        return ops.flip(out, axis=2) if flip else out
    flipped = ops.reshape(ops.cast(flip, "float32") > 0.5, (-1, 1, 1, 1))
    return ops.where(flipped, ops.flip(out, axis=2), out)


def _resize_ops(x, rows: np.ndarray, cols: np.ndarray):
    """``(B, h, w, C) -> (B, H, W, C)`` with the interpolation matrices ``(H, h)``, ``(W, w)``."""
    from keras import ops

    from avloc.runtime.scalars import constant

    rows = constant(("resize", rows.shape, rows.tobytes()), lambda: rows)
    cols = constant(("resize", cols.shape, cols.tobytes()), lambda: cols)
    return ops.einsum("yh,bhwc,xw->byxc", rows, x, cols)


def _warp_ops(x, matrices, rows: np.ndarray, cols: np.ndarray, n: int, channels: int):
    """Bilinear warp of ``x`` ``(B, n, n, C)`` by the forward ``matrices`` ``(B, 2, 3)``, at the
    output pixels ``rows x cols`` only: ``(B, len(rows), len(cols), C)``; zeros outside."""
    from keras import ops

    from avloc.runtime.scalars import clip, constant

    m = ops.cast(ops.convert_to_tensor(matrices), "float32")

    def entry(i, j):
        return ops.reshape(m[:, i, j], (-1, 1, 1))

    a, b, tx, c, d, ty = (entry(i, j) for i in (0, 1) for j in (0, 1, 2))
    det = a * d - b * c
    xs = constant(("pixels", cols.tobytes()), lambda: cols.astype(np.float32))[None, None, :] - tx
    ys = constant(("pixels", rows.tobytes()), lambda: rows.astype(np.float32))[None, :, None] - ty
    src_x = (d * xs - b * ys) / det  # M^-1 applied to the output pixel, (B, h, w)
    src_y = (a * ys - c * xs) / det
    x0, y0 = ops.floor(src_x), ops.floor(src_y)
    fx, fy = src_x - x0, src_y - y0
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    flat = ops.reshape(x, (-1, channels))  # (B * n * n, C)
    first = ops.arange(ops.shape(x)[0], dtype="int32") * (n * n)
    first = ops.reshape(first, (-1, 1, 1))
    out = None
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            index = first + clip(yi, 0, n - 1) * n + clip(xi, 0, n - 1)
            values = ops.take(flat, ops.reshape(index, (-1,)), axis=0)
            values = ops.reshape(values, (-1, len(rows), len(cols), channels))
            weight = wx * wy * ops.cast(inside, "float32")
            term = values * weight[..., None]
            out = term if out is None else out + term
    return out
