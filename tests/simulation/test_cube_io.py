"""SimulatedCube: FITS headers, writing, reading back, truth catalogue, reproducibility."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from radio_beam import Beam
from spectral_cube import SpectralCube

from deepfocus_radio.exceptions import ConfigError, OutputExistsError
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube

CONFIG = AlmaConfig(image_shape=(32, 40), n_channels_range=(8, 8), n_sources_range=(3, 3), primary_beam=True,
                    max_baseline_range=(300.0, 300.0))


@pytest.fixture(scope="module")
def cube():
    return simulate_alma_cube(CONFIG, seed=21)


def test_headers_read_back_with_the_right_beam_and_wcs(cube, tmp_path):
    paths = cube.write(tmp_path, "a1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}_cube_a1.fits" for name in ("dirty", "clean", "psf", "sky", "pb"))
    for which in ("dirty", "clean"):
        read = SpectralCube.read(paths[which])
        assert read.shape == (8, 32, 40)
        assert read.unit == u.Jy / u.beam
        assert read.beam == cube.beam
        assert Beam.from_fits_header(read.header) == cube.beam
        assert read.wcs.wcs.ctype[0] == "RA---SIN" and read.wcs.wcs.ctype[1] == "DEC--SIN"
        assert read.wcs.wcs.ctype[2] == "FREQ"
        assert read.header["SPECSYS"] == "LSRK" and read.header["RESTFRQ"] > 0
        assert read.header["CDELT1"] < 0
        np.testing.assert_array_equal(read.unitless_filled_data[:], getattr(cube, which))
    sky = SpectralCube.read(paths["sky"])
    assert sky.unit == u.Jy / u.pix
    header = fits.getheader(paths["psf"])
    assert "BMAJ" not in header and header["BUNIT"] == ""


def test_primary_beam_attenuates_the_sky_and_is_written(cube, tmp_path):
    assert cube.pb.shape == cube.dirty.shape
    assert cube.pb[:, 16, 20].min() == pytest.approx(1.0)
    assert np.all(cube.pb <= 1.0) and cube.pb.min() < 0.98
    # Lower frequencies have larger primary beams.
    assert cube.pb[0, 0, 0] >= cube.pb[-1, 0, 0]
    for row in cube.sources:
        assert 0 < row["pb_gain"] <= 1.0


def test_to_spectral_cube_for_each_product(cube):
    assert cube.to_spectral_cube().beam == cube.beam
    assert cube.to_spectral_cube("clean").unit == u.Jy / u.beam
    assert cube.to_spectral_cube("psf").unit == u.dimensionless_unscaled
    assert cube.to_spectral_cube("pb").shape == cube.dirty.shape
    with pytest.raises(ConfigError, match="which must be one of dirty, clean, psf, sky, pb"):
        cube.to_spectral_cube("model")


def test_writing_refuses_to_overwrite_unless_asked(cube, tmp_path):
    cube.write(tmp_path, 3)
    with pytest.raises(OutputExistsError, match="dirty_cube_3.fits exists; pass overwrite=True"):
        cube.write(tmp_path, 3)
    cube.write(tmp_path, 3, overwrite=True)
    assert not list(tmp_path.glob("*.tmp*"))


def test_truth_catalog_schema_and_units(cube):
    truth = cube.truth_catalog()
    expected = {"id": None, "x": u.pix, "y": u.pix, "z": u.pix, "ra": u.deg, "dec": u.deg, "freq": u.Hz,
                "peak": u.Jy / u.beam, "flux": u.Jy * u.km / u.s, "fwhm_major": u.arcsec,
                "fwhm_minor": u.arcsec, "pa": u.deg, "line_fwhm": u.km / u.s, "snr": None}
    assert list(truth.colnames) == list(expected)
    for name, unit in expected.items():
        if unit is not None:
            assert truth[name].unit == unit
    assert list(truth["id"]) == [1, 2, 3]
    assert np.all((truth["pa"] >= 0 * u.deg) & (truth["pa"] < 180 * u.deg))
    world = cube.wcs.celestial.pixel_to_world(truth["x"].value, truth["y"].value)
    np.testing.assert_allclose(world.ra.deg, truth["ra"].value)
    np.testing.assert_allclose(world.dec.deg, truth["dec"].value)


def test_same_seed_is_bit_identical_and_other_seeds_differ(tmp_path):
    config = AlmaConfig(image_shape=(24, 24), n_channels_range=(6, 10), n_sources_range=(1, 3))
    first, again, other = (simulate_alma_cube(config, seed=s) for s in (5, 5, 6))
    first.write(tmp_path / "a", 0)
    again.write(tmp_path / "b", 0)
    for name in ("dirty", "clean", "psf", "sky"):
        a, b = (fits.getdata(tmp_path / run / f"{name}_cube_0.fits") for run in "ab")
        assert a.tobytes() == b.tobytes()
    headers = [fits.getheader(tmp_path / run / "dirty_cube_0.fits") for run in "ab"]
    assert headers[0].tostring() == headers[1].tostring()
    assert first.sources.as_array().tobytes() == again.sources.as_array().tobytes()
    assert first.dirty.shape != other.dirty.shape or not np.array_equal(first.dirty, other.dirty)


def test_the_result_does_not_depend_on_fft_threads():
    config = AlmaConfig(image_shape=(24, 24), n_channels_range=(6, 6), n_sources_range=(2, 2))
    one, two = (simulate_alma_cube(config, seed=9, workers=w) for w in (1, 2))
    assert one.dirty.tobytes() == two.dirty.tobytes()
