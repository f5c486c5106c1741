"""The noise's correlation between pixels, against its analytic form."""

import numpy as np
import pytest
from scipy import ndimage

from deepfocus_radio.noise import noise_correlation

SMOOTHING = 2.0  # pixels: white noise smoothed by a Gaussian of this sigma
LAG = 12


def smoothed_noise(seed, n=16, size=128):
    rng = np.random.default_rng(seed)
    return np.array([ndimage.gaussian_filter(plane, SMOOTHING, mode="wrap")
                     for plane in rng.normal(size=(n, size, size))])


def expected():
    """Autocorrelation of white noise smoothed by a Gaussian of sigma s: exp(-d^2 / 4 s^2)."""
    lags = np.arange(-LAG, LAG + 1)
    return np.exp(-(lags[:, None] ** 2 + lags[None, :] ** 2) / (4 * SMOOTHING ** 2))


def close_to_expected(correlation):
    """Lags -LAG..LAG within 0.05 of the analytic correlation, and 0.015 on average (16
    planes of 128x128 pixels measure it to about 0.015 per lag)."""
    cy, cx = correlation.shape[0] // 2, correlation.shape[1] // 2
    deviation = np.abs(correlation[cy - LAG:cy + LAG + 1, cx - LAG:cx + LAG + 1] - expected())
    assert deviation.max() < 0.05 and deviation.mean() < 0.015


def test_correlation_of_smoothed_white_noise():
    measured = noise_correlation(smoothed_noise(1))
    assert measured.shape == (128, 128)
    assert measured[64, 64] == pytest.approx(1.0)
    close_to_expected(measured)
    # symmetric, and a valid correlation: its power spectrum is non-negative
    np.testing.assert_allclose(measured[1:, 1:], measured[1:, 1:][::-1, ::-1], atol=1e-12)
    assert np.fft.fft2(np.fft.ifftshift(measured)).real.min() > -1e-9


def test_blanked_regions_and_bright_sources_do_not_bias_it():
    planes = smoothed_noise(2)
    planes[:, 30:70, 5:60] = np.nan  # a blanked region
    planes[:, 96:105, 86:95] += 20.0  # a bright continuum source, in every plane
    planes[3, 50:60, 80:90] += 5.0  # a line source in one plane
    close_to_expected(noise_correlation(planes))


def test_bad_planes_are_refused():
    with pytest.raises(ValueError, match=r"\(n, ny, nx\) stack"):
        noise_correlation(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="no plane has enough finite"):
        noise_correlation(np.full((2, 32, 32), np.nan))
    with pytest.raises(ValueError, match="no plane has enough finite"):
        noise_correlation(np.ones((2, 32, 32)))
