"""SSL-TIE's transformation T and its ``equivariance`` term vs a plain-torch copy of SSL-TIE's code.

The reference (``tests/ssltie_reference.py``) follows jinxiang-liu/SSL-TIE
(``utils/tf_equivariance_loss.py``, ``main.py``) with kornia 0.5, written in plain torch:
kornia's ``get_rotation_matrix2d`` (OpenCV's matrix), ``warp_affine`` (the pixel matrix
normalised to ``[-1, 1]`` with ``normal_transform_pixel``, inverted, ``F.affine_grid`` +
``F.grid_sample`` with ``align_corners=True``, zeros padding), ``Resize``/``resize``
(``F.interpolate``, bilinear, ``align_corners=False``), ``Hflip`` and
``TfEquivarianceLoss.forward`` (a resize when the sizes differ, then ``nn.MSELoss``).

Tolerances: SSL-TIE runs T in float32, and so does avloc; float32 sampling points at 224 px are
only good to about 1e-5 pixel (the forward matrices' translations, up to about 90 px, are
themselves rounded to float32), and next to the zero padding a map value changes by up to its
own size per pixel. Over random draws on maps in [-1, 1], the float32 reference differs from its
own float64 evaluation by up to 1.5e-5 and avloc by up to 1.2e-5, so avloc is compared with the
float64 evaluation within 2e-5 and with the float32 one within 4e-5 (gradients: relative to the
largest gradient). A convention error (half a pixel, the other rotation sense, the other
``align_corners``) moves values by 1e-2 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras import ops
from loss_harness import backend_grad
from ssltie_reference import (
    kornia_resize,
    kornia_rotation_matrix2d,
    kornia_warp_affine,
    ssl_tie_loss,
    ssl_tie_matrices,
    ssl_tie_transform,
)

from avloc.inputs.geometry import (
    FLIP_KEY,
    MATRICES_KEY,
    EquivarianceDraw,
    apply_transform_ops,
    draw_arrays,
    draw_equivariance,
    rotation_matrices,
    transform_maps_ops,
)
from avloc.losses import LOSS_TERMS, build_terms
from avloc.losses.equivariance import TransformationEquivariance

#: avloc (float32) against the reference evaluated in float64 / in float32 (module docstring)
ATOL_EXACT = 2e-5
ATOL_FLOAT32 = 4e-5
ANGLES = [0.0, 30.0, -30.0, -7.0]

# ------------------------------------------------------------------------------------------
# the reference: SSL-TIE's code path with kornia 0.5, in plain torch (NCHW)


def reference(x: np.ndarray, angles, scale, flip, input_size, dtype) -> np.ndarray:
    """The reference on channels-last numpy ``x``, in ``dtype``, back to channels last."""
    nchw = torch.tensor(np.moveaxis(x, -1, 1), dtype=dtype)
    out = ssl_tie_transform(nchw, angles, scale, flip, input_size)
    return np.moveaxis(out.numpy(), 1, -1)


def avloc_transform(x: np.ndarray, draw: EquivarianceDraw, input_size: int) -> np.ndarray:
    return ops.convert_to_numpy(transform_maps_ops(ops.convert_to_tensor(x), draw, input_size))


def normalised(rng, *shape) -> np.ndarray:
    x = rng.standard_normal(shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# the draw


def test_draw_is_a_function_of_the_generator_state():
    one, two = np.random.default_rng([3, 1, 4]), np.random.default_rng([3, 1, 4])
    for _ in range(5):
        a, b = draw_equivariance(one, 6), draw_equivariance(two, 6)
        np.testing.assert_array_equal(a.angles, b.angles)
        assert (a.scale, a.flip) == (b.scale, b.flip)
    assert one.random() == two.random()  # both consumed the same numbers


def test_draw_order_is_the_documented_one():
    rng, mine = np.random.default_rng(11), np.random.default_rng(11)
    draw = draw_equivariance(mine, 5, max_angle=30)
    scale = (1.0, 0.5)[int(rng.integers(2))]
    angles = rng.integers(-30, 30, size=5, endpoint=True)
    flip = bool(rng.random() < 0.5)
    np.testing.assert_array_equal(draw.angles, angles.astype(np.float32))
    assert (draw.scale, draw.flip) == (scale, flip)
    assert rng.random() == mine.random()


def test_draw_covers_the_documented_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_equivariance(rng, 16) for _ in range(300)]
    angles = np.concatenate([d.angles for d in draws])
    assert draws[0].angles.dtype == np.float32 and draws[0].angles.shape == (16,)
    np.testing.assert_array_equal(angles, np.round(angles))  # integer degrees
    assert set(angles.astype(int)) == set(range(-30, 31))  # both ends included, nothing else
    scales = [d.scale for d in draws]
    assert set(scales) == {1.0, 0.5} and 0.4 < scales.count(1.0) / len(scales) < 0.6
    flips = [d.flip for d in draws]
    assert set(flips) == {False, True} and 0.4 < sum(flips) / len(flips) < 0.6
    small = draw_equivariance(rng, 400, max_angle=2, scales=(0.5,))
    assert set(small.angles.astype(int)) == {-2, -1, 0, 1, 2} and small.scale == 0.5


def test_draw_is_read_only_and_checked():
    draw = EquivarianceDraw([1, 2], 0.5, True)
    with pytest.raises(ValueError):
        draw.angles[0] = 3.0
    with pytest.raises(ValueError, match="scale"):
        EquivarianceDraw([1], 0.0, False)
    with pytest.raises(ValueError, match="max_angle"):
        draw_equivariance(np.random.default_rng(0), 2, max_angle=-1)


# ------------------------------------------------------------------------------------------
# matrices and transform vs the reference


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("size", [224, 32])
def test_rotation_matrices_are_kornias(scale, size):
    angles = [0.0, 30.0, -30.0, 17.0, -1.0]
    got = rotation_matrices(EquivarianceDraw(angles, scale, False), size)
    assert got.dtype == np.float32 and got.shape == (5, 2, 3)
    want = ssl_tie_matrices(angles, scale, size, torch.float64).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    want32 = ssl_tie_matrices(angles, scale, size, torch.float32).numpy()
    np.testing.assert_allclose(got, want32, rtol=1e-6, atol=2e-5)
    # OpenCV's convention: a point right of the centre goes up (counter-clockwise on screen)
    right = np.array([size / 2 + 10.0, size / 2, 1.0])
    moved = rotation_matrices(EquivarianceDraw([90.0], 1.0, False), size)[0] @ right
    np.testing.assert_allclose(moved, [size / 2, size / 2 - 10.0], atol=1e-4)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("map_size,input_size", [(14, 224), (14, 32)])
def test_transformed_maps_match_ssl_tie(map_size, input_size, scale, flip):
    rng = np.random.default_rng(int(scale * 10) + 2 * flip + input_size)
    maps = rng.uniform(-1.0, 1.0, (len(ANGLES), map_size, map_size, 1)).astype(np.float32)
    draw = EquivarianceDraw(ANGLES, scale, flip)
    got = avloc_transform(maps, draw, input_size)
    side = int(map_size * scale)
    assert got.shape == (len(ANGLES), side, side, 1) and got.dtype == np.float32
    exact = reference(maps, ANGLES, scale, flip, input_size, torch.float64)
    as_run = reference(maps, ANGLES, scale, flip, input_size, torch.float32)
    np.testing.assert_allclose(got, exact, rtol=0, atol=ATOL_EXACT)
    np.testing.assert_allclose(got, as_run, rtol=0, atol=ATOL_FLOAT32)


@pytest.mark.parametrize("scale,flip", [(1.0, True), (0.5, False)])
def test_transformed_images_match_ssl_tie(scale, flip):
    rng = np.random.default_rng(5)
    images = rng.uniform(0.0, 1.0, (len(ANGLES), 32, 32, 3)).astype(np.float32)
    draw = EquivarianceDraw(ANGLES, scale, flip)
    got = avloc_transform(images, draw, 32)
    assert got.shape == (len(ANGLES), int(32 * scale), int(32 * scale), 3)
    exact = reference(images, ANGLES, scale, flip, 32, torch.float64)
    np.testing.assert_allclose(got, exact, rtol=0, atol=ATOL_EXACT)
    as_run = reference(images, ANGLES, scale, flip, 32, torch.float32)
    np.testing.assert_allclose(got, as_run, rtol=0, atol=ATOL_FLOAT32)


def test_images_at_224_match_ssl_tie():
    """The image path at SSL-TIE's size (two rows); noise images change by up to 1 per pixel, so
    float32 coordinates (1.5e-5 pixel) allow a few 1e-5 against the float64 reference."""
    rng = np.random.default_rng(6)
    images = rng.uniform(0.0, 1.0, (2, 224, 224, 3)).astype(np.float32)
    draw = EquivarianceDraw([-30.0, 13.0], 0.5, True)
    got = avloc_transform(images, draw, 224)
    assert got.shape == (2, 112, 112, 3)
    exact = reference(images, [-30.0, 13.0], 0.5, True, 224, torch.float64)
    np.testing.assert_allclose(got, exact, rtol=0, atol=5e-5)


def test_the_tolerance_sees_convention_errors():
    """Half a pixel off the rotation centre, or the other rotation sense, is far outside it."""
    rng = np.random.default_rng(4)
    images = rng.uniform(0.0, 1.0, (len(ANGLES), 32, 32, 1)).astype(np.float32)
    got = avloc_transform(images, EquivarianceDraw(ANGLES, 1.0, False), 32)
    nchw = torch.tensor(np.moveaxis(images, -1, 1), dtype=torch.float64)
    angle = torch.tensor(ANGLES, dtype=torch.float64)
    unit = torch.ones(len(ANGLES), 2, dtype=torch.float64)
    for center, sense in ((15.5, 1.0), (16.0, -1.0)):  # (size - 1) / 2; the opposite angle
        matrices = kornia_rotation_matrix2d(unit * center, sense * angle, unit)
        wrong = np.moveaxis(kornia_warp_affine(nchw, matrices, [32, 32]).numpy(), 1, -1)
        assert np.abs(got - wrong).max() > 1e-2
    right = kornia_warp_affine(nchw, kornia_rotation_matrix2d(unit * 16.0, angle, unit), [32, 32])
    np.testing.assert_allclose(got, np.moveaxis(right.numpy(), 1, -1), rtol=0, atol=ATOL_EXACT)


def test_identity_draw():
    """Angle 0, scale 1, no flip: the identity at ``input_size``; on a map, the round trip of
    the two resizes (up to ``input_size`` and back), a slight blur."""
    rng = np.random.default_rng(1)
    draw = EquivarianceDraw([0.0, 0.0], 1.0, False)
    images = rng.uniform(-1.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(avloc_transform(images, draw, 32), images, rtol=0, atol=1e-6)
    maps = rng.uniform(-1.0, 1.0, (2, 14, 14, 1)).astype(np.float32)
    nchw = torch.tensor(np.moveaxis(maps, -1, 1), dtype=torch.float64)
    trip = np.moveaxis(kornia_resize(kornia_resize(nchw, (224, 224)), (14, 14)).numpy(), 1, -1)
    got = avloc_transform(maps, draw, 224)
    np.testing.assert_allclose(got, trip, rtol=0, atol=1e-6)
    # the blur, as the geometry module states it: A_i + (A_{i-1} - 2 A_i + A_{i+1}) / 64
    line = np.zeros((1, 14, 14, 1), np.float32)
    line[0, :, 7] = 1.0  # one column of ones: its neighbours get 1/64, itself 62/64
    row = avloc_transform(line, EquivarianceDraw([0.0], 1.0, False), 224)[0, 5, :, 0]
    np.testing.assert_allclose(row[6:9], [1 / 64, 62 / 64, 1 / 64], atol=1e-6)


def test_warp_is_keras_affine_transform_forward():
    """The convention cross-check: at ``input_size`` with scale 1 the warp equals
    ``keras.ops.image.affine_transform`` with ``M^-1``'s rows as its 8 parameters (used forward
    only: TensorFlow's gradient of it is not the sampling's adjoint, see avloc.inputs.geometry)."""
    rng = np.random.default_rng(2)
    images = rng.uniform(0.0, 1.0, (len(ANGLES), 32, 32, 2)).astype(np.float32)
    matrices = rotation_matrices(EquivarianceDraw(ANGLES, 1.0, False), 32).astype(np.float64)
    inverse = np.linalg.inv(np.concatenate([matrices, np.tile([[[0, 0, 1.0]]], (4, 1, 1))], 1))
    params = np.concatenate([inverse[:, 0], inverse[:, 1], np.zeros((4, 2))], axis=1)
    keras_out = ops.image.affine_transform(
        ops.convert_to_tensor(images),
        ops.convert_to_tensor(params.astype(np.float32)),
        interpolation="bilinear",
        fill_mode="constant",
        fill_value=0.0,
        data_format="channels_last",
    )
    got = avloc_transform(images, EquivarianceDraw(ANGLES, 1.0, False), 32)
    np.testing.assert_allclose(got, ops.convert_to_numpy(keras_out), rtol=0, atol=ATOL_EXACT)


def test_flip_as_a_tensor_flips_its_rows():
    rng = np.random.default_rng(3)
    maps = rng.uniform(-1.0, 1.0, (3, 14, 14, 1)).astype(np.float32)
    matrices = rotation_matrices(EquivarianceDraw([5.0, -5.0, 30.0], 0.5, False), 32)
    x = ops.convert_to_tensor(maps)
    plain = ops.convert_to_numpy(apply_transform_ops(x, matrices, False, (7, 7), 32))
    flip = ops.convert_to_tensor(np.array([1.0, 0.0, 1.0], np.float32))
    mixed = ops.convert_to_numpy(apply_transform_ops(x, matrices, flip, (7, 7), 32))
    np.testing.assert_array_equal(mixed[0], plain[0, :, ::-1])
    np.testing.assert_array_equal(mixed[1], plain[1])
    np.testing.assert_array_equal(mixed[2], plain[2, :, ::-1])


def test_draw_arrays():
    draw = EquivarianceDraw([3.0, -4.0, 30.0], 0.5, True)
    arrays = draw_arrays(draw, 32)
    assert set(arrays) == {MATRICES_KEY, FLIP_KEY}
    np.testing.assert_array_equal(arrays[MATRICES_KEY], rotation_matrices(draw, 32))
    np.testing.assert_array_equal(arrays[FLIP_KEY], np.ones(3, np.float32))
    assert arrays[FLIP_KEY].dtype == np.float32


# ------------------------------------------------------------------------------------------
# the loss term


def test_term_is_registered_and_declares_its_needs():
    assert "equivariance" in LOSS_TERMS.names()
    term = build_terms({"equivariance": {"weight": 1.0, "input_size": 32}})["equivariance"]
    assert isinstance(term, TransformationEquivariance)
    assert term.needs == frozenset({"equivariance"}) and term.input_size == 32


def test_term_names_missing_outputs():
    rng = np.random.default_rng(0)
    outputs = {"v_map": normalised(rng, 2, 14, 14, 4), "a_emb": normalised(rng, 2, 4)}
    with pytest.raises(KeyError, match="v_map_t"):
        TransformationEquivariance()({k: ops.convert_to_tensor(v) for k, v in outputs.items()})


@pytest.mark.parametrize(
    "scale,flip,input_size",
    [(1.0, False, 32), (0.5, True, 32), (1.0, True, 224), (0.5, False, 224)],
)
def test_loss_and_gradients_match_ssl_tie(scale, flip, input_size):
    rng = np.random.default_rng(40 + input_size)
    angles = [-30.0, 0.0, 30.0]
    side = int(14 * scale)
    v_map, v_map_t = normalised(rng, 3, 14, 14, 4), normalised(rng, 3, side, side, 4)
    a_emb = normalised(rng, 3, 4)
    arrays = draw_arrays(EquivarianceDraw(angles, scale, flip), input_size)
    term = TransformationEquivariance(input_size=input_size)

    def loss(v, t):
        outputs = {"v_map": v, "a_emb": ops.convert_to_tensor(a_emb), "v_map_t": t}
        outputs.update({k: ops.convert_to_tensor(a) for k, a in arrays.items()})
        return term(outputs)

    value, (grad_v, grad_t) = backend_grad(loss, v_map, v_map_t)
    for dtype, atol in ((torch.float64, ATOL_EXACT), (torch.float32, ATOL_FLOAT32)):
        v, t = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (v_map, v_map_t))
        want = ssl_tie_loss(v, torch.tensor(a_emb, dtype=dtype), t, angles, scale, flip, input_size)
        want.backward()
        assert value == pytest.approx(float(want.detach()), rel=1e-5, abs=1e-7)
        scale_v = float(v.grad.abs().max())
        np.testing.assert_allclose(grad_v, v.grad.numpy(), rtol=0, atol=atol * scale_v)
        np.testing.assert_allclose(grad_t, t.grad.numpy(), rtol=0, atol=atol * scale_v)


def test_a_recipe_with_a_term_the_task_does_not_feed_is_refused_in_one_line(monkeypatch):
    from harness import QUICKSTART

    import avloc.task
    from avloc.config import load_recipe
    from avloc.errors import RecipeError
    from avloc.recipe_checks import check_recipe

    recipe = load_recipe(QUICKSTART, ["loss.equivariance.weight=1.0"])
    check_recipe(recipe, "x.toml")  # the task feeds it
    monkeypatch.setattr(avloc.task, "FEEDS", frozenset({"silence", "noise"}))
    with pytest.raises(RecipeError, match=r"^x.toml: loss.equivariance: needs equivariance, which"):
        check_recipe(recipe, "x.toml")
