import numpy as np
import pytest
from skimage.measure import moments_central

from deepfocus_radio.conventions import pa_to_pixel_angle, pixel_angle_to_pa
from deepfocus_radio.training.augment import (
    Transform,
    draw_transform,
    transform_array,
    transform_parameters,
)

ALL = [Transform(flip_x=fx, flip_y=fy, rot90=k) for fx in (False, True)
       for fy in (False, True) for k in range(4)]


def elliptical_source(shape, x, y, pa):
    """Gaussian ellipse (FWHM 6 x 2 pix) at PA east of north, east to the left."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    theta = np.deg2rad(pa_to_pixel_angle(pa))
    u = (xx - x) * np.cos(theta) + (yy - y) * np.sin(theta)
    v = -(xx - x) * np.sin(theta) + (yy - y) * np.cos(theta)
    return np.exp(-0.5 * ((u / 2.55) ** 2 + (v / 0.85) ** 2))


def measured(image):
    """Centroid and PA (east of north) of an image from its moments."""
    total = image.sum()
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    x, y = (xx * image).sum() / total, (yy * image).sum() / total
    mu = moments_central(image, center=(y, x), order=2)  # indexed [row order, column order]
    angle = 0.5 * np.degrees(np.arctan2(2 * mu[1, 1], mu[0, 2] - mu[2, 0]))
    return x, y, float(pixel_angle_to_pa(angle))


@pytest.mark.parametrize("transform", ALL)
def test_parameters_follow_the_pixels(transform):
    shape, params = (24, 20), {"x": 7.0, "y": 15.0, "pa": 30.0, "flux": 2.0}
    image = elliptical_source(shape, params["x"], params["y"], params["pa"])
    assert measured(image) == pytest.approx((7.0, 15.0, 30.0), abs=0.01)
    moved = transform_array(image, transform)
    expected = transform_parameters(params, transform, shape)
    x, y, pa = measured(moved)
    assert (x, y) == pytest.approx((expected["x"], expected["y"]), abs=0.01)
    difference = (pa - expected["pa"] + 90.0) % 180.0 - 90.0
    assert abs(difference) < 0.01
    assert expected["flux"] == 2.0 and 0 <= expected["pa"] < 180


def test_documented_pa_rules():
    params = {"pa": 30.0}
    assert transform_parameters(params, Transform(flip_x=True), (8, 8))["pa"] == 150.0
    assert transform_parameters(params, Transform(flip_y=True), (8, 8))["pa"] == 150.0
    assert transform_parameters(params, Transform(rot90=1), (8, 8))["pa"] == 120.0
    assert transform_parameters(params, Transform(rot90=3), (8, 8))["pa"] == 120.0


def test_channel_flip_and_3d_arrays():
    cube = np.arange(4 * 3 * 3, dtype=float).reshape(4, 3, 3)
    transform = Transform(flip_z=True, rot90=1)
    out = transform_array(cube, transform)
    np.testing.assert_array_equal(out, np.rot90(cube[::-1], 1, axes=(1, 2)))
    assert out.flags["C_CONTIGUOUS"]
    moved = transform_parameters({"x": 0.0, "y": 1.0, "z": 0.0}, transform, cube.shape)
    assert moved == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert cube[0, 1, 0] == out[3, 2, 1]


def test_draw_transform_is_seeded_and_respects_switches():
    first = [draw_transform(np.random.default_rng(s)) for s in range(20)]
    again = [draw_transform(np.random.default_rng(s)) for s in range(20)]
    assert first == again
    assert len(set(first)) > 4
    still = draw_transform(np.random.default_rng(3), flips=False, rotations=False)
    assert still.is_identity and not Transform(rot90=2).is_identity
    assert not any(draw_transform(np.random.default_rng(s)).flip_z for s in range(20))
    assert any(draw_transform(np.random.default_rng(s), flip_spectral=True).flip_z
               for s in range(20))
