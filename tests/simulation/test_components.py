"""Building blocks of the simulator: uv tracks, gridding, beams, sky profiles, HI discs."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from radio_beam import Beam

from deepfocus_radio.exceptions import ConfigError, OutputExistsError
from deepfocus_radio.simulation.alma import choose_pixel_scale, draw_observation, inside_fraction
from deepfocus_radio.simulation.array import (
    AntennaArray,
    baselines,
    builtin_array,
    hour_angle_samples,
    read_antenna_file,
    uv_tracks,
    write_antenna_file,
)
from deepfocus_radio.simulation.config import AlmaConfig
from deepfocus_radio.simulation.cube import cube_header, write_fits_atomic
from deepfocus_radio.simulation.hi import HIDisc, moment_sizes, profile_width, render_disc
from deepfocus_radio.simulation.imaging import GaussianPSF, UVSampling, centred_crop, fit_beam, gaussian_kernel
from deepfocus_radio.simulation.observe import default_workers
from deepfocus_radio.simulation.sky import (
    Component,
    beam_peak_per_jy,
    gaussian_line,
    gaussian_profile,
    render_sky,
)


def _tracks(declination=-30.0, hours=1.0):
    enu = builtin_array("alma").scaled(1000.0).enu
    return uv_tracks(enu, latitude=-23.0, declination=declination,
                     hour_angles=hour_angle_samples(-hours / 2, hours, 120.0))


def test_uv_tracks_of_an_east_west_baseline():
    enu = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    hours = np.array([0.0, 3.0, 6.0])
    u_m, v_m = uv_tracks(enu, latitude=-23.0, declination=-40.0, hour_angles=hours)
    angle = np.deg2rad(15.0 * hours)
    np.testing.assert_allclose(u_m, 100.0 * np.cos(angle), atol=1e-9)
    np.testing.assert_allclose(v_m, 100.0 * np.sin(np.deg2rad(-40.0)) * np.sin(angle), atol=1e-9)
    # At the pole every baseline traces a circle of its ground length (for a flat array).
    north = np.array([[0.0, 0.0, 0.0], [0.0, 50.0, 0.0]])
    u_m, v_m = uv_tracks(north, latitude=90.0, declination=90.0, hour_angles=np.linspace(0, 12, 7))
    np.testing.assert_allclose(np.hypot(u_m, v_m), 50.0)


def test_baselines_and_hour_angles():
    enu = np.arange(12.0).reshape(4, 3)
    assert baselines(enu).shape == (6, 3)
    hours = hour_angle_samples(-1.0, 2.0, 60.0)
    assert hours.size == 120
    assert np.diff(hours) == pytest.approx(np.full(119, 1.00273790935 / 60.0))
    assert hour_angle_samples(0.0, 0.001, 60.0).size == 1


def test_antenna_file_round_trip(tmp_path):
    array = builtin_array("ska")
    assert len(array.pads) == 64 and np.all(array.diameter == 15.0)
    write_antenna_file(tmp_path / "ska.cfg", array)
    again = read_antenna_file(tmp_path / "ska.cfg")
    np.testing.assert_allclose(again.enu, array.enu, atol=1e-3)
    assert again.pads == array.pads
    plain = tmp_path / "plain.cfg"
    plain.write_text("0 0 0 12\n30 40 0 12\n")
    assert read_antenna_file(plain).max_baseline == pytest.approx(50.0)
    assert isinstance(read_antenna_file(plain), AntennaArray)


def test_uniform_weighting_gives_each_occupied_cell_the_same_weight():
    u_m, v_m = _tracks()
    psf_hat, uniform = UVSampling(u_m, v_m, (64, 64), 2e-7, "uniform").channel(230e9)
    assert psf_hat.shape == (128, 65) and uniform.shape == (64, 64)
    natural_hat, natural = UVSampling(u_m, v_m, (64, 64), 2e-7, "natural").channel(230e9)
    occupied = natural > 0
    assert occupied.sum() > 100 and np.all((uniform > 0) == occupied)
    # A cell with D samples: natural noise variance D, uniform D * (1/D)**2 = 1/D.
    np.testing.assert_allclose((uniform * natural)[occupied], 1.0)
    counts = natural[occupied] ** 2
    np.testing.assert_allclose(counts, np.rint(counts), rtol=1e-9)  # whole numbers of samples
    assert np.all((psf_hat > 0) == (natural_hat > 0))


def test_briggs_robust_interpolates_between_uniform_and_natural():
    u_m, v_m = _tracks()
    areas = {}
    for name, weighting, robust in (("uniform", "uniform", 0), ("r-2", "briggs", -2), ("r0", "briggs", 0),
                                    ("r2", "briggs", 2), ("natural", "natural", 0)):
        sampling = UVSampling(u_m, v_m, (64, 64), 2e-7, weighting, robust)
        areas[name] = fit_beam(sampling.psf(230e9), 2e-7 * u.rad).sr.value
    assert areas["r-2"] == pytest.approx(areas["uniform"], rel=0.05)
    assert areas["r2"] == pytest.approx(areas["natural"], rel=0.05)
    assert areas["uniform"] < areas["r0"] < areas["natural"]


def test_psf_shrinks_with_frequency_and_no_baseline_error():
    u_m, v_m = _tracks()
    sampling = UVSampling(u_m, v_m, (64, 64), 2e-7, "natural")
    low, high = sampling.psf(200e9), sampling.psf(260e9)
    assert low[32, 32] == pytest.approx(1.0) and high[32, 32] == pytest.approx(1.0)
    assert fit_beam(low, 1 * u.arcsec).sr > fit_beam(high, 1 * u.arcsec).sr
    with pytest.raises(ConfigError, match="no baseline falls on the uv grid"):
        UVSampling(u_m, v_m, (64, 64), 1e-3, "natural").channel(230e9)


def test_fit_beam_recovers_a_gaussian_and_reports_bad_lobes():
    kernel = gaussian_kernel((6.0, 3.0, 120.0), (64, 64), centred=True)
    beam = fit_beam(kernel, 0.5 * u.arcsec)
    assert beam.major.to_value(u.arcsec) == pytest.approx(3.0, rel=1e-6)
    assert beam.minor.to_value(u.arcsec) == pytest.approx(1.5, rel=1e-6)
    assert beam.pa.to_value(u.deg) == pytest.approx(30.0, abs=1e-6)  # pixel angle 120 = PA 30
    with pytest.raises(ConfigError, match="fewer than 5 pixels"):
        fit_beam(gaussian_kernel((1.0, 1.0, 0.0), (16, 16), centred=True), 1 * u.arcsec)
    yy, xx = np.indices((16, 16)) - 8
    saddle = np.exp(-(yy**2) / 8.0) * (1.0 + 0.01 * xx**2)  # rises away from the centre along x
    with pytest.raises(ConfigError, match="not bell-shaped"):
        fit_beam(saddle, 1 * u.arcsec)


def test_gaussian_psf_and_centred_crop():
    model = GaussianPSF((5.0, 3.0, 0.0), (32, 32))
    np.testing.assert_allclose(model.psf(1e9), gaussian_kernel((5.0, 3.0, 0.0), (32, 32), centred=True))
    psf_hat, amplitude = model.channel(1e9)
    assert psf_hat.shape == (64, 33) and amplitude.shape == (32, 32)
    corner = gaussian_kernel((5.0, 3.0, 0.0), (64, 64))
    np.testing.assert_allclose(centred_crop(corner, (32, 32)), model.psf(1e9), atol=1e-12)


def test_choose_pixel_scale_samples_the_beam_as_asked():
    u_m, v_m = _tracks(hours=2.0)
    for target in (2.5, 8.0):
        sampling, beam = choose_pixel_scale(u_m, v_m, shape=(64, 64), frequency=230e9, target_fwhm_pixels=target,
                                            weighting="briggs", robust=0.5)
        fwhm = np.sqrt(beam.major * beam.minor).to_value(u.rad) / sampling.pixel_scale
        assert fwhm == pytest.approx(target, rel=0.03)


def test_draw_observation_respects_the_ranges():
    config = AlmaConfig(n_channels_range=(5, 9), start_frequency_range=(100e9, 101e9), declination_range=(-10, -5))
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = draw_observation(config, rng)
        assert 5 <= obs["nchan"] <= 9 and obs["frequencies"].size == obs["nchan"]
        assert 100e9 <= obs["start_frequency"] <= 101e9 and -10 <= obs["dec"] <= -5
        assert config.hour_angle_range[0] <= obs["ha_start"]
        assert obs["ha_start"] + obs["track_hours"] <= config.hour_angle_range[1] + 1e-9
        assert config.noise_rms_range[0] <= obs["noise_rms"] <= config.noise_rms_range[1]


def test_gaussian_profile_is_normalized_centred_and_sized():
    y0, x0, profile = gaussian_profile(20.3, 15.6, 6.0, 3.0, 0.0)
    assert profile.sum() == pytest.approx(1.0)
    yy, xx = np.indices(profile.shape)
    assert (profile * (xx + x0)).sum() == pytest.approx(20.3, abs=1e-3)
    assert (profile * (yy + y0)).sum() == pytest.approx(15.6, abs=1e-3)
    major, minor = moment_sizes(profile)
    # Pixel integration adds 1/12 pixel^2 to each variance.
    assert major == pytest.approx(np.sqrt(6.0**2 + 8 * np.log(2) / 12), rel=1e-3)
    assert minor == pytest.approx(np.sqrt(3.0**2 + 8 * np.log(2) / 12), rel=1e-3)
    _, _, point = gaussian_profile(10.0, 10.0, 0.0, 0.0, 0.0)
    assert point.max() == pytest.approx(1.0)


def test_gaussian_line_and_beam_peak():
    line = gaussian_line(64, 30.25, 8.0)
    assert line.sum() == pytest.approx(np.sqrt(2 * np.pi) * 8.0 / 2.3548200450309493)
    assert (line * np.arange(64)).sum() / line.sum() == pytest.approx(30.25)
    assert beam_peak_per_jy(0.0, 0.0, 0.0, (4.0, 4.0, 0.0)) == pytest.approx(1.0, rel=5e-3)  # 0.1 px floor
    assert beam_peak_per_jy(4.0, 4.0, 10.0, (4.0, 4.0, 0.0)) == pytest.approx(0.5, rel=1e-9)


def test_render_sky_and_inside_fraction_clip_at_the_edge():
    y0, x0, profile = gaussian_profile(1.0, 10.0, 4.0, 4.0, 0.0)
    fraction = inside_fraction(y0, x0, profile, (20, 20))
    assert 0.5 < fraction < 0.9
    sky = render_sky([Component(y0, x0, profile, np.array([2.0, 0.0, 1.0]))], (20, 20), 3)
    assert sky.shape == (3, 20, 20)
    np.testing.assert_allclose(sky.sum(axis=(1, 2)), np.array([2.0, 0.0, 1.0]) * fraction)
    assert render_sky([], (4, 5), 2).shape == (2, 4, 5)


def test_hi_disc_profile_width_and_rendering():
    frequencies = 1.0e9 + 30e3 * np.arange(100)
    disc = HIDisc(x=20.0, y=20.0, central_frequency=frequencies[50], hi_size=12.0, inclination=70.0, pa=90.0,
                  v_flat=150.0, dispersion=10.0)
    z0, y0, x0, cutout = render_disc(disc, frequencies)
    assert cutout.sum() == pytest.approx(1.0)
    spectrum = cutout.sum(axis=(1, 2))
    dv = 299792.458 * 30e3 / frequencies[50]
    assert profile_width(spectrum, 0.2) * dv == pytest.approx(2 * 150 * np.sin(np.deg2rad(70)), rel=0.2)
    gaussian = np.exp(-0.5 * ((np.arange(50) - 20.0) / 3.0) ** 2)
    assert profile_width(gaussian, 0.5) == pytest.approx(2.3548 * 3.0, rel=0.01)


def test_cube_header_and_atomic_fits_writer(tmp_path):
    beam = Beam(2 * u.arcsec, 1 * u.arcsec, 30 * u.deg)
    header = cube_header(shape=(4, 8, 10), pixel_scale=0.5, ra=10.0, dec=-20.0, start_frequency=1e11,
                         channel_width=1e6, rest_frequency=1.01e11, beam=beam, telescope="ALMA",
                         cards=[("DFTEST", 1, "a card")])
    assert header["CRPIX1"] == 6 and header["CRPIX2"] == 5 and header["CDELT1"] == pytest.approx(-0.5 / 3600)
    assert Beam.from_fits_header(header) == beam and header["DFTEST"] == 1
    path = tmp_path / "cube.fits"
    write_fits_atomic(path, np.zeros((4, 8, 10), dtype=np.float32), header)
    assert fits.getheader(path)["BUNIT"] == "Jy/beam"
    with pytest.raises(OutputExistsError, match="cube.fits exists"):
        write_fits_atomic(path, np.zeros((4, 8, 10), dtype=np.float32), header)


def test_default_workers_is_small():
    assert 1 <= default_workers() <= 4


def test_beam_orientation_follows_the_array_on_the_sky():
    """A snapshot at zenith of an array stretched north-east has fringes along north-east,
    so its beam is long in the perpendicular direction: PA 135 deg (north-west)."""
    rng = np.random.default_rng(0)
    along, across = rng.uniform(-500, 500, 30), rng.uniform(-60, 60, 30)
    direction = np.array([np.sin(np.deg2rad(45.0)), np.cos(np.deg2rad(45.0))])  # (east, north) at PA 45
    perpendicular = np.array([direction[1], -direction[0]])
    enu = np.column_stack([along * direction[0] + across * perpendicular[0],
                           along * direction[1] + across * perpendicular[1], np.zeros(30)])
    u_m, v_m = uv_tracks(enu, latitude=-23.0, declination=-23.0, hour_angles=[0.0])
    principal = np.linalg.eigh(np.cov(np.vstack([u_m, v_m])))[1][:, 1]  # (u = east, v = north)
    assert np.rad2deg(np.arctan2(principal[0], principal[1])) % 180.0 == pytest.approx(45.0, abs=3.0)
    sampling = UVSampling(u_m, v_m, (128, 128), 5e-8, "natural")
    beam = fit_beam(sampling.psf(230e9), 5e-8 * u.rad)
    assert beam.major > 3 * beam.minor
    assert beam.pa.to_value(u.deg) == pytest.approx(135.0, abs=5.0)


def test_natural_noise_is_correlated_like_the_psf():
    from deepfocus_radio.simulation.observe import observe

    u_m, v_m = _tracks(hours=1.0)
    sampling = UVSampling(u_m, v_m, (64, 64), 1.2e-7, "natural")
    frequencies = np.full(24, 230e9)
    result = observe(np.zeros((24, 64, 64)), frequencies, psf_model=sampling, beam_fwhm_pixels=(4.0, 4.0, 0.0),
                     noise_rms=np.full(24, 1.0), rng=np.random.default_rng(1), workers=1)
    noise = result.noise.astype(float)
    power = np.abs(np.fft.fft2(noise)) ** 2
    autocorrelation = np.fft.fftshift(np.fft.ifft2(power.mean(axis=0)).real)
    autocorrelation /= autocorrelation[32, 32]
    np.testing.assert_allclose(autocorrelation[28:37, 28:37], result.psf[0, 28:37, 28:37], atol=0.06)
    assert np.all(result.dirty_signal == 0) and np.all(result.clean == 0)


def test_psf_is_the_direct_fourier_sum_of_the_sampling():
    """PSF(dx, dy) = mean over visibilities of cos(2 pi (u l + v m)), l = -dx * pixel (east
    to the left), m = dy * pixel: exact for the gridded u, v, close for the true ones."""
    enu = builtin_array("alma").scaled(400.0).enu[:8]
    u_m, v_m = uv_tracks(enu, latitude=-23.0, declination=-50.0, hour_angles=[-0.5, 0.0, 0.7])
    frequency, pixel, n = 100e9, 4e-7, 24
    psf = UVSampling(u_m, v_m, (n, n), pixel, "natural").psf(frequency)
    u_lam, v_lam = u_m * frequency / 299792458.0, v_m * frequency / 299792458.0
    dy, dx = np.mgrid[:n, :n] - n // 2
    l, m = -dx * pixel, dy * pixel
    k_u, k_v = np.rint(u_lam * 2 * n * pixel) / (2 * n * pixel), np.rint(v_lam * 2 * n * pixel) / (2 * n * pixel)
    gridded = np.cos(2 * np.pi * (k_u[:, None, None] * l + k_v[:, None, None] * m)).mean(axis=0)
    np.testing.assert_allclose(psf, gridded, atol=1e-9)
    exact = np.cos(2 * np.pi * (u_lam[:, None, None] * l + v_lam[:, None, None] * m)).mean(axis=0)
    core = (slice(n // 2 - 2, n // 2 + 3),) * 2
    np.testing.assert_allclose(psf[core], exact[core], atol=0.05)


def test_builtin_layouts_are_the_documented_generator_output():
    from deepfocus_radio.simulation.array import _generate_layout

    for name, (n, diameter, seed, longest) in {"alma": (43, 12.0, 2026, 1000.0),
                                               "ska": (64, 15.0, 7, 8000.0)}.items():
        expected = _generate_layout(n, diameter, seed=seed).scaled(longest)
        np.testing.assert_allclose(builtin_array(name).enu, expected.enu, atol=1e-3)


def test_measure_sources_takes_each_sources_own_peak_near_it():
    from deepfocus_radio.simulation.alma import measure_sources

    psf = np.zeros((5, 10, 10))
    psf[:, 5, 5], psf[:, 5, 6] = 1.0, 0.5  # a peak-1 PSF with a sidelobe one pixel east
    own = np.zeros((3, 10, 10))  # channels 1-3 of a source at (4.4, 5.2, 2.1)
    own[1, 4, 4] = 3.0
    own[0, 9, 0] = 50.0  # its own emission too far away to count
    sources = [{"x": 5.2, "y": 4.4, "z": 2.1}]
    measure_sources(sources, [own], psf=psf, beam_fwhm_pixels=(1.0, 1.0, 0.0),
                    noise_rms=np.full(5, 0.5))
    assert sources[0]["snr"] == pytest.approx(3.0 / 0.5)  # the PSF's peak at (4, 4)
    assert sources[0]["peak"] == pytest.approx(3.0)  # the restoring beam's
    # at (4, 5), one pixel east, the sidelobe gives 1.5: the maximum is the peak


def test_small_helpers():
    from deepfocus_radio.simulation.alma import column_dtypes, morphology_class, seed_card
    from deepfocus_radio.simulation.cube import CATALOG_UNITS, empty_catalog

    assert seed_card(12) == "12"
    assert seed_card(np.random.SeedSequence(5, spawn_key=(1, 2))) == "5/1-2"
    assert morphology_class(2.0, (4.0, 4.0, 0.0)) == "extended"
    assert morphology_class(1.9, (4.0, 4.0, 0.0)) == "point"
    assert column_dtypes(["x", "class", "blended"]) == [float, str, bool]
    empty = empty_catalog()
    assert len(empty) == 0 and list(empty.colnames) == list(CATALOG_UNITS)
    assert empty["line_fwhm"].unit == u.km / u.s
