import numpy as np
import pytest
from astropy import constants
from astropy import units as u
from astropy.wcs import WCS
from radio_beam import Beam

from deepfocus_radio.conventions import (
    beam_area_pixels,
    channel_width_kms,
    east_is_left,
    jyperbeam_to_jy,
    pa_to_pixel_angle,
    pixel_angle_to_pa,
)
from deepfocus_radio.noise import channel_noise, plane_noise, robust_std


def _wcs(cdelt1):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.cdelt = [cdelt1, 0.1 / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [50, 50]
    return wcs


def test_pa_30_points_north_east_on_sky():
    """A direction at PA 30 deg, moved along in pixels, goes north-east in world coords."""
    wcs = _wcs(-0.1 / 3600)
    assert east_is_left(wcs)
    angle = np.deg2rad(pa_to_pixel_angle(30.0, east_left=True))
    x0, y0 = 49.0, 49.0
    x1, y1 = x0 + 10 * np.cos(angle), y0 + 10 * np.sin(angle)
    start = wcs.pixel_to_world(x0, y0)
    end = wcs.pixel_to_world(x1, y1)
    assert start.position_angle(end).to_value(u.deg) == pytest.approx(30.0, abs=1e-3)


def test_pa_conversion_east_right_and_round_trip():
    wcs = _wcs(+0.1 / 3600)
    assert not east_is_left(wcs)
    angle = np.deg2rad(pa_to_pixel_angle(30.0, east_left=False))
    start = wcs.pixel_to_world(49.0, 49.0)
    end = wcs.pixel_to_world(49 + 10 * np.cos(angle), 49 + 10 * np.sin(angle))
    assert start.position_angle(end).to_value(u.deg) == pytest.approx(30.0, abs=1e-3)
    pas = np.array([0.0, 30.0, 95.0, 179.0])
    for east_left in (True, False):
        back = pixel_angle_to_pa(pa_to_pixel_angle(pas, east_left=east_left), east_left=east_left)
        np.testing.assert_allclose(back, pas, atol=1e-12)


def test_beam_area_matches_gaussian_integral():
    beam = Beam(major=1.0 * u.arcsec, minor=0.5 * u.arcsec, pa=0 * u.deg)
    pixel = 0.1 * u.arcsec
    # independent: 2 pi sigma_maj sigma_min / pixel^2
    sig = 1 / np.sqrt(8 * np.log(2))
    expected = 2 * np.pi * (10 * sig) * (5 * sig)
    assert beam_area_pixels(beam, pixel) == pytest.approx(expected, rel=1e-9)
    flux = jyperbeam_to_jy(np.full(10, expected / 10), beam, pixel)
    assert flux.to_value(u.Jy) == pytest.approx(1.0)


def test_channel_width_uses_observed_frequency():
    dnu = 1 * u.MHz
    nu = 700 * u.MHz
    expected = (constants.c * dnu / nu).to_value(u.km / u.s)
    assert channel_width_kms(dnu, nu).to_value(u.km / u.s) == pytest.approx(expected)


def test_robust_noise(rng):
    data = rng.normal(0, 2.0, size=(3, 200, 200))
    data[1] *= 3
    data[2, :5, :5] = 1e6  # a bright source does not move the MAD
    data[0, 0, :] = np.nan
    noise = channel_noise(data)
    np.testing.assert_allclose(noise, [2.0, 6.0, 2.0], rtol=0.03)
    assert np.isnan(robust_std([np.nan]))


@pytest.mark.parametrize("shape", [(4, 31, 17), (3, 16, 16), (2, 1, 1), (2, 1, 2)])
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<i2"])
def test_plane_noise_equals_robust_std_of_each_plane(rng, shape, dtype):
    """The vectorized MAD agrees with the plain one (odd and even counts, big-endian FITS
    data, integers) and leaves its input untouched."""
    data = (rng.normal(0, 3.0, size=shape) * (100 if dtype == "<i2" else 1)).astype(dtype)
    before = data.copy()
    expected = [robust_std(plane) for plane in data]
    np.testing.assert_allclose(plane_noise(data), expected, rtol=1e-6)
    np.testing.assert_array_equal(data, before)


def test_plane_noise_with_blanks(rng):
    data = rng.normal(size=(3, 20, 20)).astype(np.float32)
    data[0, :3] = np.nan
    data[2] = np.nan
    result = plane_noise(data)
    np.testing.assert_allclose(result[:2], [robust_std(data[0]), robust_std(data[1])], rtol=1e-6)
    assert np.isnan(result[2])


def test_channel_noise_reads_in_chunks(rng):
    """Any grouping of channels per read gives the same noise; a wrong one is refused."""
    data = rng.normal(0, 2.0, size=(7, 40, 40))
    whole = channel_noise(data)
    np.testing.assert_allclose(channel_noise(data, chunks=(2, 4, 1)), whole)
    np.testing.assert_allclose(channel_noise(data, chunks=(1,) * 7), whole)
    with pytest.raises(ValueError, match="do not sum to the 7 channels"):
        channel_noise(data, chunks=(3, 3))


@pytest.mark.parametrize("ctype, crval, cdelt, restfrq, expected", [
    ("FREQ", 1.2e9, 30e3, None, True),  # the HI band, no rest frequency given
    ("FREQ", 1.2e9, 30e3, 1420405751.768, True),
    ("VRAD", 3000.0, 5.0, 1420405751.768, True),  # a velocity axis of HI
    ("FREQ", 230e9, 2e6, None, False),  # ALMA band 6
    ("VRAD", 3000.0, 5.0, 115.2712018e9, False),  # CO(1-0)
    ("FREQ", 1.4e9, 30e3, 1.6654018e9, False),  # OH at 1665 MHz, redshifted
])
def test_is_hi_cube(ctype, crval, cdelt, restfrq, expected):
    from astropy.wcs import WCS

    from deepfocus_radio.conventions import is_hi_cube

    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", ctype]
    wcs.wcs.cunit = ["deg", "deg", "Hz" if ctype == "FREQ" else "km/s"]
    wcs.wcs.crval = [150.0, 2.0, crval]
    wcs.wcs.cdelt = [-1e-4, 1e-4, cdelt]
    wcs.wcs.crpix = [1, 1, 1]
    if restfrq:
        wcs.wcs.restfrq = restfrq
    assert is_hi_cube(wcs, 64) is expected
    assert not is_hi_cube(wcs.celestial, 64)
