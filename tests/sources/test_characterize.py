"""Characterization against independent computations with astropy and radio-beam."""

import warnings

import numpy as np
import pytest
import radio_beam
from astropy import units as u
from astropy.wcs import WCS

from deepfocus_radio.exceptions import ConfigError, InputDataError, NoSourcesFoundWarning
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.sources import (CATALOG_COLUMNS, ERROR_COLUMNS, characterize_sources,
                                     detect_sources)
from deepfocus_radio.sources._linking import Segment

BRIGHT = dict(x=30, y=25, z=12, flux=1.0, major=0.6, minor=0.3, pa=30, line_fwhm=6)
POINT = dict(x=12, y=36, z=6, flux=0.08, major=0.0, minor=0.0, pa=0, line_fwhm=4)


def _run(data, header, sigma=None, **kwargs):
    wcs, beam = WCS(header), radio_beam.Beam.from_fits_header(header)
    sigma = channel_noise(data if data.ndim == 3 else data[None]) if sigma is None else sigma
    sigma = sigma if data.ndim == 3 else sigma[0]
    det = detect_sources(data, noise=sigma, noise_cube=data, wcs=wcs, beam=beam)
    return characterize_sources(data, det, noise=sigma, wcs=wcs, beam=beam, **kwargs)


def _nearest(table, src):
    d = np.hypot(table["x"].value - src["x"], table["y"].value - src["y"])
    return table[int(np.argmin(d))]


@pytest.fixture(scope="module")
def bright_cube():
    from source_helpers import build_cube

    return build_cube((24, 48, 48), [BRIGHT, POINT], noise=1e-3, seed=4)


def test_columns_units_and_provenance(bright_cube):
    clean, dirty, _, header = bright_cube
    table = _run(dirty, header, provenance={"model": "test-model", "model_sha256": "abc"})
    assert table.colnames[:len(CATALOG_COLUMNS)] == list(CATALOG_COLUMNS)
    assert set(ERROR_COLUMNS) <= set(table.colnames)
    for name, (unit, _) in CATALOG_COLUMNS.items():
        assert getattr(table[name], "unit", None) == unit or unit is None
    assert list(table["id"]) == list(range(1, len(table) + 1))
    assert table.meta["model"] == "test-model" and table.meta["model_sha256"] == "abc"
    assert "astropy" in table.meta["versions"] and table.meta["date"].startswith("20")
    assert table.meta["beam_major_arcsec"] == pytest.approx(0.5)


def test_bright_source_flux_position_line_vs_astropy(bright_cube):
    clean, dirty, _, header = bright_cube
    row = _nearest(_run(dirty, header), BRIGHT)
    # independent flux: sum of the clean cube, Jy/beam -> Jy with radio-beam's solid angle,
    # times the channel velocity width from astropy's radio Doppler equivalency
    beam = radio_beam.Beam.from_fits_header(header)
    pixel_area = (0.1 * u.arcsec) ** 2
    nu = (230e9 + 1e6 * BRIGHT["z"]) * u.Hz
    edges = u.Quantity([nu - 0.5 * u.MHz, nu + 0.5 * u.MHz])
    dv = abs(np.diff(edges.to(u.km / u.s, equivalencies=u.doppler_radio(nu)))[0])
    region = clean[:, 5:45, 19:48]  # the bright source, not the point source at x=12
    jy = (region.sum() * u.Jy / u.beam).to(u.Jy / u.sr, u.beam_angular_area(beam.sr)) * pixel_area
    independent = (jy * dv).to(u.Jy * u.km / u.s)
    assert independent.value == pytest.approx(BRIGHT["flux"], rel=0.01)  # the test cube is right
    assert row["flux"].to_value(u.Jy * u.km / u.s) == pytest.approx(independent.value, rel=0.03)
    assert abs(row["flux"].value - BRIGHT["flux"]) < 3 * row["flux_err"].value + 0.03
    assert row["x"].value == pytest.approx(30, abs=0.1)
    assert row["y"].value == pytest.approx(25, abs=0.1)
    assert row["z"].value == pytest.approx(12, abs=0.1)
    coord = WCS(header).celestial.pixel_to_world(30, 25)
    assert row["ra"].value == pytest.approx(coord.ra.deg, abs=0.02 / 3600)
    assert row["freq"].to_value(u.Hz) == pytest.approx(230e9 + 12e6, abs=0.2e6)
    line = (BRIGHT["line_fwhm"] * dv).to(u.km / u.s)
    assert row["line_fwhm"].to_value(u.km / u.s) == pytest.approx(line.value, rel=0.05)
    sigma = channel_noise(dirty)
    assert row["peak_err"].value in sigma  # the dirty-cube noise of the peak's channel
    assert row["snr"] == pytest.approx(row["peak"].value / row["peak_err"].value)
    assert row["peak_err"].value == pytest.approx(1e-3, rel=0.2)
    assert row["snr"] > 40


def test_size_and_pa_deconvolved_with_radio_beam(bright_cube):
    clean, _, _, header = bright_cube
    row = _nearest(_run(clean, header, sigma=np.full(24, 1e-3)), BRIGHT)
    assert row["fwhm_major"].to_value(u.arcsec) == pytest.approx(0.6, rel=0.02)
    assert row["fwhm_minor"].to_value(u.arcsec) == pytest.approx(0.3, rel=0.03)
    assert row["pa"].to_value(u.deg) == pytest.approx(30.0, abs=0.5)
    # radio-beam's convolution of the catalogue size with the beam gives the observed size
    beam = radio_beam.Beam.from_fits_header(header)
    observed = radio_beam.Beam(major=row["fwhm_major"], minor=row["fwhm_minor"],
                               pa=row["pa"]).convolve(beam)
    truth = radio_beam.Beam(major=0.6 * u.arcsec, minor=0.3 * u.arcsec, pa=30 * u.deg)
    assert observed.major.to_value(u.arcsec) == pytest.approx(
        truth.convolve(beam).major.to_value(u.arcsec), rel=0.01)


def test_pa_on_a_cube_with_east_to_the_right(bright_cube):
    """Same sky, x axis flipped (CDELT1 > 0): the PA east of north must not change."""
    clean, _, _, header = bright_cube
    flipped = clean[:, :, ::-1].copy()
    header = header.copy()
    header["CDELT1"] = -header["CDELT1"]
    header["CRPIX1"] = 48 + 1 - header["CRPIX1"]
    table = _run(flipped, header, sigma=np.full(24, 1e-3))
    row = _nearest(table, dict(x=47 - 30, y=25))
    assert row["pa"].to_value(u.deg) == pytest.approx(30.0, abs=0.5)
    assert row["fwhm_major"].to_value(u.arcsec) == pytest.approx(0.6, rel=0.02)


def test_point_source_is_unresolved(bright_cube):
    clean, _, _, header = bright_cube
    table = _run(clean, header, sigma=np.full(24, 1e-3), searched_noise=np.full(24, 1e-9))
    row = _nearest(table, POINT)
    assert row["fwhm_major"].to_value(u.arcsec) < 0.02
    assert row["flux"].value == pytest.approx(POINT["flux"], rel=0.02)
    # with the dirty-cube noise as the dilation limit, the faint wings are left out
    truncated = _nearest(_run(clean, header, sigma=np.full(24, 1e-3)), POINT)
    assert truncated["flux"].value < row["flux"].value


def test_flux_err_matches_the_scatter_of_noise_fluxes():
    from source_helpers import build_cube

    _, noise, _, header = build_cube((8, 96, 96), [], noise=1e-3, seed=7)
    segments = []
    for y0 in range(2, 90, 12):
        for x0 in range(2, 90, 12):
            mask = np.ones((4, 9, 9), dtype=bool)
            segments.append(Segment((slice(2, 6), slice(y0, y0 + 9), slice(x0, x0 + 9)), mask))
    from deepfocus_radio.sources import Detections

    det = Detections(segments, shape=noise.shape, noise=np.full(8, 1e-3), threshold=4,
                     peak_snr=np.zeros(len(segments)), sum_snr=np.zeros(len(segments)),
                     reliability=np.full(len(segments), np.nan))
    table = characterize_sources(noise, det, noise=np.full(8, 1e-3), wcs=WCS(header),
                                 beam=radio_beam.Beam.from_fits_header(header), dilate=False)
    scatter = np.std(table["flux"].value)
    assert scatter / np.median(table["flux_err"].value) == pytest.approx(1.0, abs=0.3)


def test_flux_fractional_error_is_added_in_quadrature(bright_cube):
    clean, dirty, _, header = bright_cube
    plain, calibrated = _run(dirty, header), _run(dirty, header, flux_fractional_error=0.2)
    np.testing.assert_allclose(calibrated["flux"].value, plain["flux"].value)
    expected = np.hypot(plain["flux_err"].value, 0.2 * np.abs(plain["flux"].value))
    np.testing.assert_allclose(calibrated["flux_err"].value, expected, rtol=1e-12)
    assert calibrated.meta["flux_fractional_error"] == 0.2
    with pytest.raises(ConfigError, match="flux_fractional_error"):
        _run(dirty, header, flux_fractional_error=-0.1)


def test_two_dimensional_image():
    from source_helpers import build_cube

    src = dict(x=20, y=22, flux=0.05, major=0.5, minor=0.25, pa=30)
    clean, dirty, _, header = build_cube((48, 48), [src], noise=2e-4, seed=2)
    table = _run(dirty, header)
    row = _nearest(table, src)
    assert row["flux"].unit == u.Jy
    assert row["flux"].value == pytest.approx(0.05, rel=0.05)
    assert np.isnan(row["z"]) and np.isnan(row["line_fwhm"]) and np.isnan(row["freq"])
    assert row["pa"].value == pytest.approx(30, abs=5)


def test_empty_detections_give_empty_catalogue_with_warning(bright_cube):
    _, _, noise, header = bright_cube
    det = detect_sources(noise, noise=1e-3, noise_cube=noise, wcs=WCS(header),
                         beam=radio_beam.Beam.from_fits_header(header), threshold=8)
    assert len(det) == 0
    with pytest.warns(NoSourcesFoundWarning, match="no sources"):
        table = characterize_sources(noise, det, noise=1e-3, wcs=WCS(header),
                                     beam=radio_beam.Beam.from_fits_header(header))
    assert len(table) == 0
    assert table.colnames[:len(CATALOG_COLUMNS)] == list(CATALOG_COLUMNS)
    assert table["flux"].unit == u.Jy * u.km / u.s


def test_spectral_cube_input_and_unit_conversion(bright_cube, fits_cube):
    clean, dirty, _, header = bright_cube
    header = header.copy()
    header["BUNIT"] = "mJy/beam"
    _, cube = fits_cube(dirty * 1e3, header)
    sigma = channel_noise(dirty) * 1e3
    det = detect_sources(cube, noise=sigma, noise_cube=dirty)
    table = characterize_sources(cube, det, noise=sigma)
    row = _nearest(table, BRIGHT)
    assert row["peak"].unit == u.Jy / u.beam
    assert row["flux"].value == pytest.approx(1.0, rel=0.05)
    assert row["snr"] > 40


def test_explicit_spectral_axis(bright_cube):
    clean, _, _, header = bright_cube
    freqs = (100e9 + 2e6 * np.arange(24)) * u.Hz
    row = _nearest(_run(clean, header, sigma=np.full(24, 1e-3), spectral_axis=freqs), BRIGHT)
    assert row["freq"].to_value(u.Hz) == pytest.approx(100e9 + 24e6, abs=0.4e6)


def test_errors(bright_cube):
    clean, _, _, header = bright_cube
    wcs, beam = WCS(header), radio_beam.Beam.from_fits_header(header)
    det = detect_sources(clean, noise=1e-3, beam=5.0)
    with pytest.raises(ConfigError, match="needs wcs= and beam="):
        characterize_sources(clean, det, noise=1e-3)
    with pytest.raises(InputDataError, match="detections were made"):
        characterize_sources(clean[:20], det, noise=1e-3, wcs=wcs, beam=beam)
    with pytest.raises(InputDataError, match="spectral_axis must hold"):
        characterize_sources(clean, det, noise=1e-3, wcs=wcs, beam=beam,
                             spectral_axis=np.arange(3) * u.Hz)
    squashed = header.copy()
    squashed["CDELT2"] = 2 * squashed["CDELT2"]
    with pytest.raises(InputDataError, match="not square"):
        characterize_sources(clean, det, noise=1e-3, wcs=WCS(squashed), beam=beam)


def test_non_brightness_unit_is_refused(bright_cube, fits_cube):
    clean, _, _, header = bright_cube
    header = header.copy()
    header["BUNIT"] = "K"
    _, cube = fits_cube(clean, header)
    det = detect_sources(clean, noise=1e-3, beam=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputDataError, match="not a flux density per beam"):
            characterize_sources(cube, det, noise=1e-3)


def test_velocity_axis_gives_observed_frequencies():
    from source_helpers import make_header

    from deepfocus_radio.sources.characterize import SkyGeometry

    header = make_header((24, 48, 48))
    beam = radio_beam.Beam.from_fits_header(header)
    vrad = header.copy()
    vrad.update(CTYPE3="VRAD", CRVAL3=0.0, CDELT3=-299792458.0 * 1e6 / 230e9, CUNIT3="m/s")
    freq, velo = SkyGeometry(WCS(header), beam, 24), SkyGeometry(WCS(vrad), beam, 24)
    np.testing.assert_allclose(velo.frequencies, freq.frequencies, rtol=1e-12)
    expected = 299792.458 * 1e6 / (230e9 + 3e6)  # c dnu / nu_obs at channel 3
    assert velo.velocity_width(3) == pytest.approx(expected, rel=1e-9)
    assert velo.pa(120.0) == pytest.approx(30.0)  # +x rotated 120 deg = PA 30 (east left)


def test_moment_zero_image_in_mjy_per_beam_km_per_s():
    from source_helpers import build_cube

    src = dict(x=20, y=22, flux=0.05, major=0.5, minor=0.25, pa=30)
    _, dirty, _, header = build_cube((48, 48), [src], noise=2e-4, seed=2)
    header = header.copy()
    header["BUNIT"] = "mJy/beam km/s"
    image = dirty * 1e3 * u.mJy / u.beam * u.km / u.s
    wcs, beam = WCS(header), radio_beam.Beam.from_fits_header(header)
    det = detect_sources(image, noise=0.2, noise_cube=dirty, wcs=wcs, beam=beam)
    table = characterize_sources(image, det, noise=0.2, wcs=wcs, beam=beam)
    assert table["flux"].unit == u.Jy * u.km / u.s
    assert table["peak"].unit == u.Jy / u.beam * u.km / u.s
    assert _nearest(table, src)["flux"].value == pytest.approx(0.05, rel=0.05)
    with pytest.raises(InputDataError, match="image's brightness unit is K"):
        characterize_sources(dirty * u.K, det, noise=1e-3, wcs=wcs, beam=beam)
