"""Cramer-Rao bounds against closed forms (white noise, delta PSF) and their scalings."""

import numpy as np
import pytest

from deepfocus_radio.sources.bounds import PARAMETERS, cramer_rao_bound, noise_power_spectrum
from deepfocus_radio.sources.psf_fit import gaussian_image

SHAPE = (64, 64)


def delta_psf():
    psf = np.zeros(SHAPE)
    psf[SHAPE[0] // 2, SHAPE[1] // 2] = 1.0
    return psf


def sigmas(covariance):
    return dict(zip(PARAMETERS, np.sqrt(np.diag(covariance))))


def test_angle_and_centre_bounds_match_the_closed_forms_in_white_noise():
    # For F * G, G an elliptical Gaussian of unit integral (sigmas a, b), in white noise
    # of variance s**2 per pixel: sigma_angle = 4 s sqrt(pi) / (F sqrt(a b) (1/b^2 - 1/a^2))
    # and, for the axis along x, sigma_x = s sqrt(8 pi a^3 b) / F.
    flux, a, b, s = 50.0, 6.0, 3.0, 0.7
    bound = sigmas(cramer_rao_bound(flux, a, b, 0.0, [1.0], delta_psf(),
                                    np.full(SHAPE, s**2)))
    angle = 4 * s * np.sqrt(np.pi) / (flux * np.sqrt(a * b) * (1 / b**2 - 1 / a**2))
    assert bound["angle"] == pytest.approx(angle, rel=0.02)
    assert bound["x"] == pytest.approx(s * np.sqrt(8 * np.pi * a**3 * b) / flux, rel=0.02)
    assert bound["y"] == pytest.approx(s * np.sqrt(8 * np.pi * a * b**3) / flux, rel=0.02)
    turned = sigmas(cramer_rao_bound(flux, a, b, 0.7, [1.0], delta_psf(), np.full(SHAPE, s**2)))
    assert turned["angle"] == pytest.approx(angle, rel=0.02)  # the angle's bound is isotropic


def test_a_circular_source_has_no_angle_and_the_bounds_scale_with_noise_and_line():
    one = sigmas(cramer_rao_bound(20.0, 4.0, 4.0, 0.3, [1.0], delta_psf(), np.ones(SHAPE)))
    assert one["angle"] > 1e3  # no information on the angle of a round source
    noisier = sigmas(cramer_rao_bound(20.0, 4.0, 2.0, 0.3, [1.0], delta_psf(),
                                      np.full(SHAPE, 4.0)))
    base = sigmas(cramer_rao_bound(20.0, 4.0, 2.0, 0.3, [1.0], delta_psf(), np.ones(SHAPE)))
    for name in PARAMETERS:  # twice the noise rms: twice every error
        assert noisier[name] == pytest.approx(2 * base[name], rel=1e-6)
    # the same flux spread evenly over 4 channels of independent noise: a quarter of the
    # information (the sum of profile**2), so twice the error
    spread = sigmas(cramer_rao_bound(20.0, 4.0, 2.0, 0.3, np.full(4, 0.25), delta_psf(),
                                     np.ones(SHAPE)))
    assert spread["angle"] == pytest.approx(2 * base["angle"], rel=1e-6)


def test_modes_without_noise_or_signal_carry_no_information():
    # a PSF that keeps only the low spatial frequencies, and noise only there too: the
    # empty modes are left out instead of dividing zero by zero
    ky, kx = np.meshgrid(np.fft.fftfreq(SHAPE[0]), np.fft.fftfreq(SHAPE[1]), indexing="ij")
    weights = (np.hypot(kx, ky) < 0.2).astype(float)
    psf = np.fft.fftshift(np.real(np.fft.ifft2(weights)))
    psf /= psf.max()
    cov = cramer_rao_bound(10.0, 3.0, 2.0, 0.2, [1.0], psf, weights * 0.5)
    assert np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)


def test_noise_power_of_white_noise_and_robust_to_a_source():
    rng = np.random.default_rng(3)
    cube = rng.normal(0.0, 2.0, size=(64,) + SHAPE)
    power = noise_power_spectrum(cube)
    assert power.mean() == pytest.approx(4.0, rel=0.03)
    # the real modes (zero and Nyquist frequencies) follow a chi-square with one degree of
    # freedom, not an exponential: without their own median they would come out 35% low
    real = power[np.ix_([0, 32], [0, 32])]
    assert real.mean() == pytest.approx(4.0, rel=0.2)
    cube[10:12, 30:34, 30:34] += 50.0  # a bright source in 2 of 64 channels
    assert noise_power_spectrum(cube).mean() == pytest.approx(4.0, rel=0.05)


def test_noise_power_rejects_a_cube_with_nan():
    cube = np.zeros((3,) + SHAPE)
    cube[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN-free"):
        noise_power_spectrum(cube)


def test_a_known_shape_gives_the_matched_filter_flux_error():
    # with the shape known, the flux is a linear amplitude: sigma_F = s / sqrt(sum(G**2)),
    # sum(G**2) = 1 / (4 pi a b) for a unit-integral Gaussian; the centre is decoupled
    s, a, b = 0.5, 5.0, 3.0
    cov = cramer_rao_bound(30.0, a, b, 0.4, [1.0], delta_psf(), np.full(SHAPE, s**2),
                           free=("flux",))
    assert cov.shape == (1, 1)
    assert np.sqrt(cov[0, 0]) == pytest.approx(s * np.sqrt(4 * np.pi * a * b), rel=0.02)
    with_centre = cramer_rao_bound(30.0, a, b, 0.4, [1.0], delta_psf(), np.full(SHAPE, s**2),
                                   free=("flux", "x", "y"))
    assert with_centre[0, 0] == pytest.approx(cov[0, 0], rel=1e-3)
    # measuring the axes too costs flux precision (flux and size are degenerate)
    free_shape = cramer_rao_bound(30.0, a, b, 0.4, [1.0], delta_psf(), np.full(SHAPE, s**2))
    assert free_shape[0, 0] > 1.5 * cov[0, 0]
    with pytest.raises(ValueError, match="unknown parameters"):
        cramer_rao_bound(30.0, a, b, 0.4, [1.0], delta_psf(), np.ones(SHAPE), free=("size",))


@pytest.mark.parametrize("args, message", [
    ((0.0, 3.0, 2.0), "must be positive"),
    ((1.0, 3.0, 0.0), "must be positive"),
])
def test_bad_sources_get_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        cramer_rao_bound(*args, 0.0, [1.0], delta_psf(), np.ones(SHAPE))


def test_a_profile_that_does_not_fit_the_psf_cube_is_an_error():
    with pytest.raises(ValueError, match="3 channels, the PSF 2"):
        cramer_rao_bound(1.0, 3.0, 2.0, 0.0, [0.2, 0.5, 0.3], np.stack([delta_psf()] * 2),
                         np.ones(SHAPE))


def test_the_bound_is_the_variance_of_the_best_flux_estimate_in_correlated_noise():
    # dirty-image-like noise: white noise through a low-pass uv weighting H, PSF = H**2
    # (natural weighting); with the shape known, the generalized least-squares amplitude
    # is the efficient estimate, so its scatter over noise draws is the bound
    rng = np.random.default_rng(11)
    ky, kx = np.meshgrid(np.fft.fftfreq(SHAPE[0]), np.fft.fftfreq(SHAPE[1]), indexing="ij")
    weights = np.exp(-0.5 * (np.hypot(kx, ky) / 0.08) ** 2)

    def noise(n):
        white = rng.normal(0.0, 1.0, size=(n,) + SHAPE)
        return np.real(np.fft.ifft2(np.fft.fft2(white) * weights))

    psf = np.fft.fftshift(np.real(np.fft.ifft2(weights**2)))
    psf /= psf.max()
    power = noise_power_spectrum(noise(200))
    flux, a, b, angle = 40.0, 3.0, 2.0, 0.5
    bound = np.sqrt(cramer_rao_bound(flux, a, b, angle, [1.0], psf, power,
                                     free=("flux",))[0, 0])
    unit = (np.fft.fft2(gaussian_image(SHAPE, SHAPE[1] // 2, SHAPE[0] // 2, a, b, angle))
            * np.fft.fft2(np.fft.ifftshift(psf)))
    draws = flux * np.real(np.fft.ifft2(unit)) + noise(2000)
    estimates = (np.real(np.fft.fft2(draws) * unit.conj()) / power).sum(axis=(1, 2)) / (
        (np.abs(unit) ** 2 / power).sum())
    assert estimates.mean() == pytest.approx(flux, abs=4 * bound / np.sqrt(2000))
    assert estimates.std() == pytest.approx(bound, rel=0.06)  # 2000 draws: 1.6% scatter
