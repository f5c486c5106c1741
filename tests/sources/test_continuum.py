"""Continuum subtraction: the median map, lazy subtraction, and line fluxes in find_sources."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

from deepfocus_radio.sources import find_sources
from deepfocus_radio.sources.continuum import ContinuumSubtracted, continuum_map


def test_median_map_and_lazy_subtraction():
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(30, 10, 12)) * 0.01
    cube[:, 2, 3] += 5.0  # continuum
    cube[10:14, 2, 3] += 20.0  # a line on top, in a minority of channels
    cube[:, 7, 7] = np.nan  # blanked spectrum
    level = continuum_map(cube, block=4)
    assert level[2, 3] == pytest.approx(5.0, abs=0.02)
    assert level[7, 7] == 0.0 and abs(level[0, 0]) < 0.02
    subtracted = ContinuumSubtracted(cube, continuum=level)
    assert subtracted.shape == cube.shape and subtracted.dtype == np.float32
    block = subtracted[2:20, 1:4, :]
    np.testing.assert_allclose(block, (cube[2:20, 1:4, :] - level[1:4, :]).astype(np.float32),
                               rtol=1e-5, atol=1e-6)
    assert subtracted[11:12, 2:3, 3:4][0, 0, 0] == pytest.approx(20.0, abs=0.05)
    expected = (cube - level).astype(np.float32)
    for key in [(11, 2, 3), (5, slice(None, None, 3), slice(1, None, 2)), (slice(None, None, -1),),
                (-1, slice(2, 8), 4)]:
        np.testing.assert_allclose(subtracted[key], expected[key], rtol=1e-5, atol=1e-6,
                                   err_msg=str(key))
    np.testing.assert_array_equal(cube[:, 2, 3] > 4, True)  # the input is unchanged


def test_find_sources_measures_line_fluxes_over_continuum(tmp_path):
    from source_helpers import build_cube

    line_on_continuum = dict(x=30, y=25, z=16, flux=0.5, major=0.0, minor=0.0, pa=0,
                             line_fwhm=4)
    clean, dirty, _, header = build_cube((40, 48, 48), [line_on_continuum], noise=1e-3, seed=5)
    continuum, _, _, _ = build_cube((48, 48), [
        dict(x=30, y=25, flux=0.004, major=0, minor=0, pa=0),   # under the line
        dict(x=12, y=12, flux=0.006, major=0, minor=0, pa=0),   # continuum only
    ], noise=0.0)
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU((dirty + continuum[None]).astype(np.float32), header=header).writeto(path)
    table = find_sources(path, model=None, progress=False)
    assert table.meta["continuum_subtracted"] is True
    assert len(table) == 1
    assert table["flux"][0].to_value(u.Jy * u.km / u.s) == pytest.approx(0.5, rel=0.08)
    raw = find_sources(path, model=None, progress=False, subtract_continuum=False)
    assert raw.meta["continuum_subtracted"] is False
    # the continuum-only source is detected (in pieces along the band) and the line's
    # flux is inflated by the continuum under it
    assert np.any(np.hypot(raw["x"].value - 12, raw["y"].value - 12) < 2)
    assert raw["flux"].sum().value > 1.0


def test_only_significant_positive_groups_are_subtracted():
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(40, 24, 24))
    cube[:, 5:9, 5:9] += 3.0  # a 4 x 4 continuum source
    cube[:, 18, 18] += 3.0  # a single bright pixel
    cube[:, 12:15, 18:21] -= 3.0  # negative: not continuum emission
    level = continuum_map(cube)
    assert np.all(level[5:9, 5:9] > 2) and level[18, 18] > 2
    assert np.all(level[12:15, 18:21] == 0)
    assert np.mean(level == 0) > 0.9
    grouped = continuum_map(cube, min_pixels=4, grow=1)
    assert grouped[18, 18] == 0  # lone pixel dropped
    assert np.all(grouped[5:9, 5:9] == level[5:9, 5:9])
    assert grouped[4, 6] != 0 and grouped[2, 2] == 0  # wings one pixel out are kept too
