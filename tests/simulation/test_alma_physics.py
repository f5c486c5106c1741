"""Physics of the ALMA-like simulator, checked on FITS files read back with spectral-cube."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from scipy.optimize import curve_fit
from scipy.signal import fftconvolve
from spectral_cube import SpectralCube

from deepfocus_radio.conventions import beam_area_pixels, channel_width_kms
from deepfocus_radio.noise import robust_std
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.simulation.array import builtin_array, write_antenna_file
from deepfocus_radio.simulation.imaging import fit_beam

SMALL = dict(image_shape=(64, 64), n_channels_range=(16, 16), continuum_fraction=0.0, blend_fraction=0.0)


def _one_source(**settings):
    return AlmaConfig(**{**SMALL, "n_sources_range": (1, 1), **settings})


def _written(cube, tmp_path, which):
    cube.write(tmp_path, 0, overwrite=True)
    return SpectralCube.read(tmp_path / f"{which}_cube_0.fits")


def test_psf_peaks_at_one_at_the_centre(tmp_path):
    cube = simulate_alma_cube(AlmaConfig(**SMALL), seed=1)
    with fits.open(cube.write(tmp_path, 0)["psf"]) as hdul:
        psf = hdul[0].data
    assert psf.shape == cube.dirty.shape
    np.testing.assert_allclose(psf[:, 32, 32], 1.0, rtol=1e-6)
    assert np.all(psf.max(axis=(1, 2)) <= 1.0 + 1e-6)
    assert psf.min() < -0.01  # real sidelobes, not a Gaussian
    # The restoring beam is the fit to the main lobe of the lowest-frequency PSF.
    assert cube.header["CDELT3"] > 0
    lowest = fit_beam(psf[0].astype(float), cube.pixel_scale)
    for attribute in ("major", "minor"):
        assert getattr(lowest, attribute).to_value(u.arcsec) == pytest.approx(
            getattr(cube.beam, attribute).to_value(u.arcsec), rel=1e-4)
    assert fit_beam(psf[-1].astype(float), cube.pixel_scale).sr <= cube.beam.sr


def test_lone_point_source_is_the_psf_centred_on_its_pixel(tmp_path):
    config = _one_source(source_fwhm_range=(0.0, 0.0), snr_range=(3000.0, 3000.0), line_fwhm_range=(4.0, 4.0))
    cube = simulate_alma_cube(config, seed=7)
    cube.write(tmp_path, 0)
    dirty = fits.getdata(tmp_path / "dirty_cube_0.fits")
    sky = fits.getdata(tmp_path / "sky_cube_0.fits")
    psf = fits.getdata(tmp_path / "psf_cube_0.fits")
    row = cube.sources[0]
    z, y, x = np.unravel_index(np.argmax(sky), sky.shape)
    assert (x, y) == (row["x"], row["y"])  # the sky pixel holding the source is its true pixel
    flux = sky[z].sum()
    assert sky[z, y, x] == pytest.approx(flux)  # a point fills one pixel
    window = (slice(y - 10, y + 11), slice(x - 10, x + 11))
    expected = flux * psf[z, 32 - 10 : 32 + 11, 32 - 10 : 32 + 11]
    np.testing.assert_allclose(dirty[z][window], expected, atol=5 * cube.noise_rms[z])
    assert np.unravel_index(np.argmax(dirty[z]), dirty[z].shape) == (y, x)


def test_sidelobes_change_with_the_array_layout(tmp_path):
    layout = builtin_array("alma")
    sparse = type(layout)(layout.enu[::5] * 2.0, layout.diameter[::5], layout.pads[::5])
    write_antenna_file(tmp_path / "sparse.cfg", sparse)
    psfs = []
    for settings in ({}, {"antenna_file": str(tmp_path / "sparse.cfg")}):
        cube = simulate_alma_cube(AlmaConfig(**SMALL, n_sources_range=(0, 0), **settings), seed=3)
        psfs.append(cube.psf[0])
    far = np.hypot(*np.meshgrid(np.arange(64) - 32, np.arange(64) - 32)) > 8
    sidelobe_rms = [np.sqrt(np.mean(p[far] ** 2)) for p in psfs]
    assert sidelobe_rms[1] > 1.5 * sidelobe_rms[0]  # 9 antennas: much worse sidelobes than 43


def test_longer_baselines_give_finer_pixels_for_the_same_beam_sampling():
    scales = []
    for baseline in (500.0, 2000.0):
        settings = dict(SMALL, n_sources_range=(0, 0), max_baseline_range=(baseline, baseline))
        cube = simulate_alma_cube(AlmaConfig(**settings), seed=5)
        scales.append(cube.pixel_scale.to_value(u.arcsec))
        fwhm_px = np.sqrt(cube.beam.major * cube.beam.minor).to_value(u.arcsec) / scales[-1]
        assert 2.5 * 0.97 <= fwhm_px <= 8.0 * 1.03
    assert scales[0] / scales[1] == pytest.approx(4.0, rel=0.1)


def test_natural_weighting_gives_a_larger_beam_than_uniform():
    beams = {}
    for weighting in ("natural", "uniform"):
        cube = simulate_alma_cube(AlmaConfig(**SMALL, n_sources_range=(0, 0), weighting=weighting), seed=11)
        beams[weighting] = cube.beam.sr.to_value(u.arcsec**2)
    assert beams["natural"] > 1.2 * beams["uniform"]


def test_pa_30_major_axis_points_north_east(tmp_path):
    config = _one_source(source_fwhm_range=(3.0, 3.0), axis_ratio_range=(0.3, 0.3), pa_range=(30.0, 30.0),
                         snr_range=(50.0, 50.0), beam_fwhm_pixels_range=(3.0, 3.0))
    cube = simulate_alma_cube(config, seed=2)
    assert cube.sources["pa"][0] == pytest.approx(30.0)
    sky_cube = _written(cube, tmp_path, "sky")
    image = sky_cube.moment0(axis=0).value
    yy, xx = np.indices(image.shape)
    weight = image / image.sum()
    cx, cy = (weight * xx).sum(), (weight * yy).sum()
    cov = np.cov(np.vstack([xx.ravel() - cx, yy.ravel() - cy]), aweights=weight.ravel())
    major = np.linalg.eigh(cov)[1][:, 1]
    celestial = WCS(sky_cube.header).celestial
    centre = celestial.pixel_to_world(cx, cy)
    tip = celestial.pixel_to_world(cx + 5 * major[0], cy + 5 * major[1])
    pa = centre.position_angle(tip).to_value(u.deg) % 180.0
    assert pa == pytest.approx(30.0, abs=1.0)
    dx, dy = 5 * major * np.sign(major[1])  # the half of the axis that points north
    assert dy > 0 and dx < 0  # up and to the left: north-east for CDELT1 < 0
    assert sky_cube.header["CDELT1"] < 0


def test_noise_rms_matches_the_requested_level(tmp_path):
    config = AlmaConfig(image_shape=(96, 96), n_channels_range=(12, 12), n_sources_range=(0, 0),
                        noise_rms_range=(2e-3, 2e-3))
    cube = simulate_alma_cube(config, seed=4)
    dirty = _written(cube, tmp_path, "dirty")
    data = dirty.unitless_filled_data[:]
    np.testing.assert_allclose(cube.noise_rms, 2e-3)
    np.testing.assert_allclose(np.sqrt(np.mean(data**2, axis=(1, 2))), 2e-3, rtol=1e-5)
    assert robust_std(data) == pytest.approx(2e-3, rel=0.05)
    # Correlated like interferometric noise: neighbouring pixels within a beam are alike.
    neighbour = np.mean(data[:, :, 1:] * data[:, :, :-1]) / np.mean(data**2)
    assert neighbour > 0.5


def test_integrated_flux_on_the_clean_cube_matches_truth(tmp_path):
    config = _one_source(source_fwhm_range=(1.0, 1.0), line_fwhm_range=(5.0, 5.0), snr_range=(20.0, 20.0),
                         n_channels_range=(24, 24))
    cube = simulate_alma_cube(config, seed=8)
    clean = _written(cube, tmp_path, "clean")
    assert clean.beam.major.to_value(u.arcsec) == pytest.approx(cube.beam.major.to_value(u.arcsec))
    row = cube.sources[0]
    pixel = abs(clean.header["CDELT2"]) * u.deg
    width = abs(clean.header["CDELT3"]) * u.Hz
    dv = channel_width_kms(width, row["freq"] * u.Hz).to_value(u.km / u.s)
    total = clean.unitless_filled_data[:].sum() / beam_area_pixels(clean.beam, pixel) * dv
    assert total == pytest.approx(row["flux"], rel=0.02)
    truth = cube.truth_catalog()
    assert truth["flux"].unit == u.Jy * u.km / u.s
    assert truth["fwhm_major"][0].to_value(u.arcsec) == pytest.approx(row["fwhm_major"] * pixel.to_value(u.arcsec))


def _gaussian(z, amplitude, centre, sigma):
    return amplitude * np.exp(-0.5 * ((z - centre) / sigma) ** 2)


def test_line_centre_and_width_match_truth(tmp_path):
    config = _one_source(line_fwhm_range=(7.0, 7.0), snr_range=(200.0, 200.0), n_channels_range=(40, 40))
    cube = simulate_alma_cube(config, seed=9)
    spectrum = _written(cube, tmp_path, "clean").unitless_filled_data[:].sum(axis=(1, 2))
    row = cube.sources[0]
    channels = np.arange(spectrum.size)
    start = (spectrum.max(), channels[np.argmax(spectrum)], 2.0)
    (_, centre, sigma), _ = curve_fit(_gaussian, channels, spectrum, p0=start)
    assert centre == pytest.approx(row["z"], abs=0.2)
    assert 2.3548 * abs(sigma) == pytest.approx(row["fwhm_z"], rel=0.05)
    assert row["freq"] == pytest.approx(cube.header["CRVAL3"] + row["z"] * cube.header["CDELT3"])


def test_snr_and_peak_are_measured_in_the_noise_free_cubes(tmp_path):
    config = _one_source(snr_range=(3.0, 3.0), source_fwhm_range=(0.0, 0.5))
    cube = simulate_alma_cube(config, seed=12)
    cube.write(tmp_path, 0)
    sky = fits.getdata(tmp_path / "sky_cube_0.fits").astype(float)
    psf = fits.getdata(tmp_path / "psf_cube_0.fits").astype(float)
    row = cube.sources[0]
    z, y, x = (int(round(row[k])) for k in ("z", "y", "x"))
    box = (slice(y - 1, y + 2), slice(x - 1, x + 2))
    signal = [fftconvolve(sky[k], psf[k], mode="same")[box].max() for k in (z - 1, z, z + 1)]
    assert row["snr"] == pytest.approx(max(signal) / cube.noise_rms[z], rel=1e-3)
    assert row["peak"] == pytest.approx(cube.clean[z - 1 : z + 2][(slice(None), *box)].max(), rel=1e-6)
    assert 2.0 < row["snr"] < 4.5  # a faint source near its target SNR of 3


def test_a_blended_source_keeps_its_own_snr(tmp_path):
    """A faint point source 2 pixels from one 9x brighter: its ``snr`` is its own peak
    (its line's peak flux density over the noise), not its neighbour's, which the
    noise-free dirty cube shows at its position."""
    config = AlmaConfig(**{**SMALL, "n_sources_range": (2, 2), "blend_fraction": 1.0,
                           "source_fwhm_range": (0.0, 0.0), "snr_range": (3.0, 100.0)})
    cube = simulate_alma_cube(config, seed=3)
    cube.write(tmp_path, 0)
    sky = fits.getdata(tmp_path / "sky_cube_0.fits").astype(float)
    psf = fits.getdata(tmp_path / "psf_cube_0.fits").astype(float)
    faint, bright = sorted(cube.sources, key=lambda row: row["snr"])
    z, y, x = (int(round(faint[k])) for k in ("z", "y", "x"))
    assert np.hypot(faint["x"] - bright["x"], faint["y"] - bright["y"]) < 3
    own = faint["line_peak"] / cube.noise_rms[z]
    assert faint["snr"] == pytest.approx(own, rel=0.03)
    box = (slice(y - 1, y + 2), slice(x - 1, x + 2))
    blend = max(fftconvolve(sky[k], psf[k], mode="same")[box].max()
                for k in (z - 1, z, z + 1)) / cube.noise_rms[z]
    assert blend > 5 * faint["snr"]
    assert bright["snr"] == pytest.approx(bright["line_peak"] / cube.noise_rms[z], rel=0.03)


def test_class_label_separates_point_and_extended_sources():
    points = simulate_alma_cube(_one_source(source_fwhm_range=(0.0, 0.4)), seed=1).sources
    extended = simulate_alma_cube(_one_source(source_fwhm_range=(0.6, 2.0)), seed=1).sources
    assert points["class"][0] == "point" and extended["class"][0] == "extended"
    assert extended["fwhm_major"][0] > points["fwhm_major"][0]


def test_the_full_psf_holds_every_sidelobe_of_the_dirty_cube():
    """``full_psf=True``: the noise-free dirty cube is the sky convolved with ``psf_full``
    (scipy, at every offset within the image), so the dirty cube minus that is the noise
    alone; the image-sized ``psf`` (CASA's ``.psf``) misses a bright source's sidelobes
    beyond half the image. Asking for it changes nothing else."""
    config = _one_source(snr_range=(300.0, 300.0), source_fwhm_range=(0.0, 0.0),
                         track_hours_range=(0.1, 0.2))
    plain = simulate_alma_cube(config, seed=4)
    cube = simulate_alma_cube(config, seed=4, full_psf=True)
    assert plain.psf_full is None
    np.testing.assert_array_equal(cube.dirty, plain.dirty)
    nchan, ny, nx = cube.dirty.shape
    assert cube.psf_full.shape == (nchan, 2 * ny, 2 * nx)
    np.testing.assert_array_equal(cube.psf_full[:, ny // 2:ny // 2 + ny, nx // 2:nx // 2 + nx],
                                  cube.psf)

    def residual_rms(psf, centre_y, centre_x):
        rms = []
        for sky, kernel, dirty in zip(cube.sky.astype(float), psf.astype(float), cube.dirty):
            full = fftconvolve(sky, kernel, mode="full")  # offset 0 at the kernel's peak
            left = dirty - full[centre_y:centre_y + ny, centre_x:centre_x + nx]
            rms.append(np.sqrt(np.mean(left ** 2)))
        return np.array(rms)

    z = int(round(cube.sources["z"][0]))
    with_full = residual_rms(cube.psf_full, ny, nx)
    np.testing.assert_allclose(with_full, cube.noise_rms, rtol=2e-3)
    with_image = residual_rms(cube.psf, ny // 2, nx // 2)
    assert with_image[z] > 1.5 * cube.noise_rms[z]
