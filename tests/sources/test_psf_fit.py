"""PSF refinement: fits of PSF-convolved source models to the dirty cube."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from scipy import signal

from deepfocus_radio.cli.main import main
from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.simulation.sky import gaussian_profile
from deepfocus_radio.sources import find_sources, read_catalog
from deepfocus_radio.sources.characterize import SkyGeometry
from deepfocus_radio.sources.psf_fit import PsfReader, refine_with_psf

FLUX = u.Jy * u.km / u.s


@pytest.fixture(scope="module")
def sim(three_sources):
    return three_sources


def noiseless_dirty(sim):
    """The sky convolved with each channel's PSF (scipy, independently of the simulator).
    The PSF's peak is at (ny // 2, nx // 2) of an even-sized plane: dropping its first row
    and column centres it in an odd-sized kernel, as ``mode='same'`` expects."""
    return np.stack([signal.fftconvolve(sky, psf[1:, 1:], mode="same")
                     for sky, psf in zip(sim.sky.astype(float), sim.psf.astype(float))])


def geometry(sim):
    return SkyGeometry(sim.wcs, sim.beam, sim.dirty.shape[0])


def perturbed(truth):
    """The truth with the errors a deconvolver makes: flux +30%, axes +20%, centre +0.6 px."""
    table = truth.copy()
    table["flux"] *= 1.3
    table["fwhm_major"] *= 1.2
    table["fwhm_minor"] *= 1.2
    table["x"] += 0.6 * u.pix
    return table


def test_noiseless_fit_recovers_the_truth(sim):
    truth = sim.truth_catalog()
    noise = np.full(sim.dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(perturbed(truth), noiseless_dirty(sim), sim.psf, noise=noise,
                              geometry=geometry(sim), shape_prior=0.0, progress=False)
    assert refined.meta["psf_refined"] == len(truth)
    # 2%: a neighbour's sidelobes beyond half the PSF plane (+-32 px) cannot be modelled
    np.testing.assert_allclose(refined["flux"].to_value(FLUX), truth["flux"].to_value(FLUX),
                               rtol=0.02)
    np.testing.assert_allclose(refined["fwhm_major"].value, truth["fwhm_major"].value, rtol=0.02)
    np.testing.assert_allclose(refined["x"].value, truth["x"].value, atol=0.05)
    pa_error = np.mod(refined["pa"].value - truth["pa"].value + 90, 180) - 90
    assert np.all(np.abs(pa_error) < 1.0)
    # the fit's uncertainties are finite and positive
    assert np.all(refined["flux_err"].value > 0) and np.all(np.isfinite(refined["pa_err"].value))


def test_flux_holds_the_whole_line_when_the_catalogue_width_is_wrong(sim):
    """Shapes are fitted on the channels weighted by the catalogue's line profile, but the
    flux comes from their plain sum: with line widths 25% too wide, a flux from the
    weighted channels would be 10% low (the overlap of the two profiles)."""
    truth = sim.truth_catalog()
    start = perturbed(truth)
    start["line_fwhm"] *= 1.25
    noise = np.full(sim.dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(start, noiseless_dirty(sim), sim.psf, noise=noise,
                              geometry=geometry(sim), shape_prior=0.0, progress=False)
    assert refined.meta["psf_refined"] == len(truth)
    np.testing.assert_allclose(refined["flux"].to_value(FLUX), truth["flux"].to_value(FLUX),
                               rtol=0.02)
    np.testing.assert_allclose(refined["fwhm_major"].value, truth["fwhm_major"].value, rtol=0.02)


def test_continuum_under_the_line_is_removed(sim):
    truth = sim.truth_catalog()
    dirty = noiseless_dirty(sim)
    # a flat-spectrum continuum source under the narrowest line (the others leave too few
    # line-free channels in 24 to measure it), convolved with the PSF
    index = int(np.argmin(truth["line_fwhm"]))
    row = truth[index]
    sky = np.zeros(sim.sky.shape[1:])  # 3 sigma per channel (a 1 Jy point: 1 Jy/beam)
    sky[int(round(row["y"].value)), int(round(row["x"].value))] = 3 * np.median(sim.noise_rms)
    dirty = dirty + np.stack([signal.fftconvolve(sky, p[1:, 1:], mode="same")
                              for p in sim.psf.astype(float)])
    noise = np.full(dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(truth, dirty, sim.psf, noise=noise, geometry=geometry(sim),
                              progress=False)
    assert refined["flux"][index].to_value(FLUX) == pytest.approx(row["flux"].to_value(FLUX),
                                                                  rel=0.03)


def test_continuum_under_a_line_that_fills_the_band(sim):
    """No line-free channels: the line's core and wings separate line and continuum (of
    the line's morphology, as in the simulator)."""
    truth = sim.truth_catalog()
    index = int(np.argmax(truth["line_fwhm"]))  # FWHM 5.9 channels of 24: 1 line-free
    row = truth[index]
    scale = sim.pixel_scale.to_value(u.arcsec)
    y0, x0, profile = gaussian_profile(row["x"].value, row["y"].value,
                                       row["fwhm_major"].value / scale,
                                       row["fwhm_minor"].value / scale, row["pa"].value)
    padded = np.zeros((sim.sky.shape[1] + 2 * 64, sim.sky.shape[2] + 2 * 64))
    padded[y0 + 64:y0 + 64 + profile.shape[0], x0 + 64:x0 + 64 + profile.shape[1]] = profile
    sky = 3 * np.median(sim.noise_rms) * padded[64:-64, 64:-64] / profile.max()
    dirty = noiseless_dirty(sim) + np.stack([signal.fftconvolve(sky, p[1:, 1:], mode="same")
                                             for p in sim.psf.astype(float)])
    noise = np.full(dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(perturbed(truth), dirty, sim.psf, noise=noise,
                              geometry=geometry(sim), progress=False)
    # the continuum holds 88% of the line's flux over the window: unseparated, it stays
    assert refined["flux"][index].to_value(FLUX) == pytest.approx(row["flux"].to_value(FLUX),
                                                                  rel=0.03)


def test_noisy_fit_is_closer_than_a_wrong_catalogue(sim):
    truth = sim.truth_catalog()
    start = perturbed(truth)
    refined = refine_with_psf(start, sim.dirty, sim.psf, noise=channel_noise(sim.dirty),
                              geometry=geometry(sim), progress=False)
    before = np.abs(start["flux"] / truth["flux"] - 1)
    after = np.abs(refined["flux"] / truth["flux"] - 1)
    assert np.all(after < 0.15) and np.all(after < before)


def test_psf_checks(sim):
    with pytest.raises(InputDataError, match="channels"):
        PsfReader(sim.psf[:5], sim.dirty.shape[0])
    with pytest.raises(InputDataError, match="peak is 2"):
        PsfReader(2 * sim.psf, sim.dirty.shape[0])
    single = PsfReader(sim.psf[0], sim.dirty.shape[0])  # one plane serves every channel
    kernel = single.weighted(np.array([0.5, 0.5]), 3, 4)
    assert kernel.shape == (9, 9) and kernel[4, 4] == pytest.approx(1.0)


def test_find_sources_with_psf_files_and_cli(sim, tmp_path, capsys):
    paths = sim.write(tmp_path, 0)
    plain = find_sources(paths["dirty"], model=None, progress=False)
    refined = find_sources(paths["dirty"], model=None, psf=paths["psf"], progress=False)
    assert refined.meta["psf_refined"] > 0 and len(refined) == len(plain)
    truth = sim.truth_catalog()

    def errors(table):
        near = [np.argmin(np.hypot(table["x"].value - t["x"].value,
                                   table["y"].value - t["y"].value)) for t in truth]
        return np.abs(table["flux"][near] / truth["flux"] - 1)
    assert np.median(errors(refined)) < np.median(errors(plain))
    out = tmp_path / "cat.ecsv"
    assert main(["find-sources", str(paths["dirty"]), "--out", str(out), "--model", "none",
                 "--psf", str(paths["psf"]), "--quiet"]) == 0
    assert read_catalog(out).meta["psf_refined"] == refined.meta["psf_refined"]
    cut = tmp_path / "cut.ecsv"
    assert main(["find-sources", str(paths["dirty"]), "--out", str(cut), "--model", "none",
                 "--psf", str(paths["psf"]), "--psf-min-snr", "4", "--quiet"]) == 0
    assert read_catalog(cut).meta["psf_min_snr"] == 4.0
    residual = tmp_path / "residual.ecsv"  # the residual's candidates: the dirty cube too
    assert main(["find-sources", str(paths["dirty"]), "--out", str(residual), "--model",
                 "none", "--psf", str(paths["psf"]), "--psf-min-snr", "4",
                 "--dirty-candidates", "4", "--quiet"]) == 0
    with_candidates = read_catalog(residual)
    assert with_candidates.meta["dirty_candidates"] == 4.0
    assert len(with_candidates) == len(read_catalog(cut)) + with_candidates.meta[
        "dirty_candidates_added"]
    with pytest.raises(InputDataError, match="channels"):
        find_sources(paths["dirty"], model=None, psf=sim.psf[:3], progress=False)
    with pytest.raises(FileNotFoundError, match="PSF"):
        find_sources(paths["dirty"], model=None, psf=tmp_path / "missing.fits", progress=False)


def test_psf_with_a_2d_image_is_refused(tmp_path, sim):
    header = sim.wcs.celestial.to_header()
    header["BUNIT"] = "Jy/beam"
    header.update(sim.beam.to_header_keywords())
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(sim.dirty[5], header=header).writeto(path)
    with pytest.raises(ConfigError, match="psf"):
        find_sources(path, model=None, psf=sim.psf[0], progress=False)


def test_units_of_the_dirty_cube_are_honoured(sim):
    truth = sim.truth_catalog()
    noise = channel_noise(sim.dirty)
    in_jy = refine_with_psf(truth, sim.dirty * u.Jy / u.beam, sim.psf, noise=noise,
                            geometry=geometry(sim), progress=False)
    in_mjy = refine_with_psf(truth, sim.dirty * 1e3 * u.mJy / u.beam, sim.psf, noise=noise * 1e3,
                             geometry=geometry(sim), progress=False)
    np.testing.assert_allclose(in_mjy["flux"].value, in_jy["flux"].value, rtol=1e-4)
    with pytest.raises(InputDataError, match="Jy/beam"):
        refine_with_psf(truth, sim.dirty * u.K, sim.psf, noise=noise, geometry=geometry(sim),
                        progress=False)


def test_psf_snr_flags_an_artefact(sim):
    """A catalogued 'source' where the dirty cube holds only noise (an artefact of the
    deconvolved cube) gets a low psf_snr and is dropped by min_snr; real ones stay."""
    truth = sim.truth_catalog()
    fake = truth[:1].copy()
    fake["x"], fake["y"] = [8.0] * u.pix, [8.0] * u.pix  # empty corner of the cube
    from astropy.table import vstack
    table = vstack([truth, fake])
    noise = channel_noise(sim.dirty)
    refined = refine_with_psf(table, sim.dirty, sim.psf, noise=noise, geometry=geometry(sim),
                              progress=False)
    assert np.all(refined["psf_snr"][:-1] > 10)
    assert refined["psf_snr"][-1] < 2  # noise: its fitted flux is insignificant
    kept = refine_with_psf(table, sim.dirty, sim.psf, noise=noise, geometry=geometry(sim),
                           min_snr=4, progress=False)
    assert len(kept) == len(truth) and kept.meta["psf_dropped"] == 1
    assert list(kept["id"]) == list(range(1, len(truth) + 1))
    with pytest.raises(ConfigError, match="need psf"):
        find_sources(sim.to_spectral_cube("dirty"), model=None, psf_min_snr=4, progress=False)


def test_blanked_pixels_and_channels_are_ignored(sim):
    """NaN-blanked pixels (a mosaic edge) and a blanked channel neither crash the fits nor
    spoil the fluxes of the sources they do not cover."""
    truth = sim.truth_catalog()
    dirty = noiseless_dirty(sim)
    blanked = dirty.copy()
    blanked[:, :, :6] = np.nan   # a blanked strip at the left edge
    blanked[2] = np.nan          # a blanked channel among the continuum channels
    blanked[11] = np.nan         # and one in the middle of the lines
    noise = np.full(dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(perturbed(truth), blanked, sim.psf, noise=noise,
                              geometry=geometry(sim), progress=False)
    assert np.all(np.isfinite(refined["flux"].value))
    assert refined.meta["psf_refined"] == len(truth)
    # 5%: without its peak channel, a narrow line's flux rests on fewer data, and the
    # neighbours' unmodelled far sidelobes (see the noiseless test) weigh more
    np.testing.assert_allclose(refined["flux"].to_value(FLUX), truth["flux"].to_value(FLUX),
                               rtol=0.05)


def test_dirty_candidates_recover_a_source_the_deconvolution_lost(sim):
    """A source missing from the deconvolved cube, but in the dirty cube, comes back with
    dirty_candidates (verified by its PSF fit); the others are not duplicated."""
    truth = sim.truth_catalog()
    lost = truth[0]
    clean = sim.clean.copy()
    yy, xx = np.mgrid[:clean.shape[1], :clean.shape[2]]
    clean[:, np.hypot(xx - lost["x"].value, yy - lost["y"].value) < 12] = 0.0
    deconvolved = clean * u.Jy / u.beam
    dirty = sim.to_spectral_cube("dirty")

    def near_lost(table):
        return np.hypot(table["x"].value - lost["x"].value, table["y"].value - lost["y"].value) < 2

    without = find_sources(dirty, "alma", deconvolved=deconvolved, psf=sim.psf, progress=False)
    assert not near_lost(without).any()
    found = find_sources(dirty, "alma", deconvolved=deconvolved, psf=sim.psf,
                         dirty_candidates=5.0, progress=False)
    added = found.meta["dirty_candidates_added"]
    assert near_lost(found).sum() == 1 and added >= 1 and len(found) == len(without) + added
    assert found["psf_snr"][near_lost(found)][0] >= 5
    assert list(found["id"]) == list(range(1, len(found) + 1))


def test_swapped_axes_keep_their_errors():
    """A fit that ends with the minor axis longer reports the axes major first, the angle
    turned by 90 deg, and each axis with its own error."""
    from deepfocus_radio.sources.psf_fit import _major_first

    params, errors = _major_first(np.array([1.0, 5.0, 6.0, 1.0, 2.0, 0.3]),
                                  np.array([0.1, 0.01, 0.02, 0.05, 0.4, 0.03]))
    np.testing.assert_allclose(params, [1.0, 5.0, 6.0, 2.0, 1.0, 0.3 + np.pi / 2])
    np.testing.assert_allclose(errors, [0.1, 0.01, 0.02, 0.4, 0.05, 0.03])
    point, point_errors = _major_first(np.array([1.0, 5.0, 6.0]), np.array([0.1, 0.01, 0.02]))
    np.testing.assert_allclose(point, [1.0, 5.0, 6.0])


def test_psf_reader_weights_several_rows_in_one_read(sim):
    """Rows of weights give the same sums as one call per row, for a PSF cube and for a
    single plane (the fits weight the same PSF crop for several images at once)."""
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.0, 1.0, size=(3, 6))
    for psf in (sim.psf, sim.psf[len(sim.psf) // 2]):
        reader = PsfReader(psf, sim.dirty.shape[0])
        stacked = reader.weighted(weights, 5, 7)
        assert stacked.shape == (3, 15, 15)
        for row, image in zip(weights, stacked):
            np.testing.assert_allclose(image, reader.weighted(row, 5, 7), rtol=1e-12, atol=0)


@pytest.mark.parametrize("n_channels, line_fwhm", [(40, 6.0), (24, 8.0)])
def test_psf_snr_is_the_significance_of_the_line_weighted_image(n_channels, line_fwhm):
    """``psf_snr`` comes from the channels weighted by the line profile, the matched filter
    of a Gaussian line: for a point source it exceeds the plain sum's flux / flux_err by
    [sum(w p) / sqrt(sum(w^2))] / [sum(p) / sqrt(n)] over the fitted channels (w = p),
    computed here from scipy's normal distribution. The second case is a line too wide to
    leave line-free channels (its continuum is fitted with the line, and none is found)."""
    from scipy.stats import norm

    from deepfocus_radio.sources.psf_fit import CONTINUUM_OFFSET, MIN_CONTINUUM_CHANNELS, WINDOW

    config = AlmaConfig(image_shape=(48, 48), n_channels_range=(n_channels, n_channels),
                        beam_fwhm_pixels_range=(4.0, 4.0), n_sources_range=(1, 1),
                        snr_range=(30.0, 30.0), source_fwhm_range=(0.0, 0.0),
                        line_fwhm_range=(line_fwhm, line_fwhm), continuum_fraction=0.0,
                        blend_fraction=0.0)
    single = simulate_alma_cube(config, seed=3)
    truth = single.truth_catalog()
    truth["fwhm_major"] = truth["fwhm_minor"] = 0.0 * u.arcsec  # a point: centre fitted only
    noise = np.full(single.dirty.shape[0], float(np.median(single.noise_rms)))
    # psf_snr is on the noise-per-beam scale whatever the fit's weighting: compare it with
    # the plain sum's flux / flux_err on that scale
    refined = refine_with_psf(truth, noiseless_dirty(single), single.psf, noise=noise,
                              geometry=geometry(single), noise_correlation=None,
                              progress=False)
    correlated = refine_with_psf(truth, noiseless_dirty(single), single.psf, noise=noise,
                                 geometry=geometry(single), progress=False)
    # (within 3%: here the two Jacobians are taken by different finite differences)
    assert float(correlated["psf_snr"][0]) == pytest.approx(float(refined["psf_snr"][0]),
                                                             rel=0.03)
    z = truth["z"][0].value
    sigma = line_fwhm / np.sqrt(8 * np.log(2))  # channels
    # the fitted channels: whole channels from z - 1.2 FWHM to z + 1.2 FWHM, in the band
    channels = np.arange(max(np.floor(z - WINDOW * line_fwhm), 0),
                         min(np.ceil(z + WINDOW * line_fwhm) + 1, n_channels))
    line_free = np.abs(np.arange(n_channels) - z) > CONTINUUM_OFFSET * line_fwhm
    # the second case is the joint-continuum one
    assert (line_free.sum() < MIN_CONTINUUM_CHANNELS) == (line_fwhm == 8.0)
    p = norm.cdf(channels + 0.5, z, sigma) - norm.cdf(channels - 0.5, z, sigma)
    gain = np.sqrt(np.sum(p ** 2)) / (np.sum(p) / np.sqrt(channels.size))
    boxcar = float(refined["flux"][0] / refined["flux_err"][0])
    assert gain > 1.1
    assert float(refined["psf_snr"][0]) / boxcar == pytest.approx(gain, rel=0.05)


def correlated_noise(shape, rms, seed, *, large_scale=8.0, fraction=0.5):
    """Noise of rms ``rms`` per pixel: a part correlated over about a beam (a Gaussian of
    sigma 1.5 px) and a ``fraction`` (of the variance) correlated over ``large_scale`` px,
    as a dirty cube's sidelobes and missing short spacings make it."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    parts = []
    for sigma in (1.5, large_scale):
        part = np.array([ndimage.gaussian_filter(plane, sigma, mode="wrap")
                         for plane in rng.normal(size=shape)])
        parts.append(part / part.std())
    return rms * (np.sqrt(1 - fraction) * parts[0] + np.sqrt(fraction) * parts[1])


def test_fits_weighed_by_the_noise_correlation_beat_the_noise_per_beam(sim):
    """With noise correlated on scales larger than the beam, generalized least squares
    (the correlation measured on the cube, the default) gives fluxes less than 0.65 times
    as scattered as ordinary least squares with the noise per beam (0.3-0.5 times in
    trials), and errors that hold: the pulls' spread is about 1 (0.9-1.2 in trials),
    where the noise-per-beam errors are too small (1.5-1.7)."""
    truth = sim.truth_catalog()
    clean = noiseless_dirty(sim)
    rms = 3 * float(np.median(sim.noise_rms))
    true_flux = truth["flux"].to_value(FLUX)
    errors = {"measure": [], None: []}
    pulls = {"measure": [], None: []}
    for seed in range(8):
        cube = clean + correlated_noise(clean.shape, rms, seed)
        for mode in errors:
            out = refine_with_psf(truth, cube, sim.psf, noise=np.full(cube.shape[0], rms),
                                  geometry=geometry(sim), noise_correlation=mode,
                                  progress=False)
            assert out.meta["psf_noise"] == ("correlated" if mode else "per beam")
            error = out["flux"].to_value(FLUX) - true_flux
            errors[mode].extend(error / true_flux)
            pulls[mode].extend(error / out["flux_err"].to_value(FLUX))
    scatter = {mode: np.sqrt(np.mean(np.square(values))) for mode, values in errors.items()}
    assert scatter["measure"] < 0.65 * scatter[None]
    assert 0.7 < np.std(pulls["measure"]) < 1.4
    assert np.std(pulls[None]) > np.std(pulls["measure"])


def test_noise_correlation_choices_are_checked(sim):
    truth = sim.truth_catalog()
    noise = np.full(sim.dirty.shape[0], float(np.median(sim.noise_rms)))
    kwargs = dict(noise=noise, geometry=geometry(sim), progress=False)
    with pytest.raises(ValueError, match="'measure', None or an array"):
        refine_with_psf(truth, sim.dirty, sim.psf, noise_correlation="psf", **kwargs)
    with pytest.raises(InputDataError, match="finite 2D array with 1 at lag 0"):
        refine_with_psf(truth, sim.dirty, sim.psf, noise_correlation=np.full((4, 4), 0.5),
                        **kwargs)
    blank = np.full(sim.dirty.shape, np.nan, dtype=np.float32)
    with pytest.raises(InputDataError, match="noise correlation could not be measured"):
        refine_with_psf(truth, blank, sim.psf, **kwargs)
    # a correlation given as an array is used as given: the white-noise one (a single 1)
    # weighs the pixels alike, unlike the noise per beam, and both refine every row
    white = refine_with_psf(truth, sim.dirty, sim.psf, noise_correlation=np.ones((1, 1)),
                            **kwargs)
    per_beam = refine_with_psf(truth, sim.dirty, sim.psf, noise_correlation=None, **kwargs)
    assert white.meta["psf_refined"] == per_beam.meta["psf_refined"] == len(truth)
    # with white noise assumed, each pixel counts as independent: errors sqrt(beam area)
    # (in pixels) times smaller
    ratio = (per_beam["flux_err"] / white["flux_err"]).value
    assert np.median(ratio) > 2.0


def test_cutouts_too_large_for_the_correlation_matrix_weigh_the_noise_per_beam(sim, monkeypatch):
    """Above ``MAX_CORRELATED_PIXELS`` valid pixels a cutout is fitted as with
    ``noise_correlation=None`` (its Cholesky factor would grow as the cube of its pixels)."""
    from deepfocus_radio.sources import psf_fit

    truth = sim.truth_catalog()
    noise = np.full(sim.dirty.shape[0], float(np.median(sim.noise_rms)))
    kwargs = dict(noise=noise, geometry=geometry(sim), progress=False)
    per_beam = refine_with_psf(truth, sim.dirty, sim.psf, noise_correlation=None, **kwargs)
    correlated = refine_with_psf(truth, sim.dirty, sim.psf, **kwargs)
    monkeypatch.setattr(psf_fit, "MAX_CORRELATED_PIXELS", 0)
    capped = refine_with_psf(truth, sim.dirty, sim.psf, **kwargs)
    np.testing.assert_allclose(capped["flux"].value, per_beam["flux"].value, rtol=1e-9)
    np.testing.assert_allclose(capped["flux_err"].value, per_beam["flux_err"].value, rtol=1e-9)
    assert not np.allclose(correlated["flux_err"].value, per_beam["flux_err"].value, rtol=1e-3)


def test_whiteners_are_shared_by_cutouts_of_one_layout(sim, monkeypatch):
    """The correlation matrix depends on the valid pixels' layout only: a second cutout of
    that layout reuses the factor; the least recently used go beyond the memory budget."""
    from deepfocus_radio.noise import noise_correlation
    from deepfocus_radio.sources import psf_fit
    from deepfocus_radio.sources._arrays import CubeReader

    correlation = noise_correlation(sim.dirty)
    fitter = psf_fit._Fitter(CubeReader(sim.dirty), PsfReader(sim.psf, sim.dirty.shape[0]),
                             np.asarray(sim.noise_rms, float), geometry(sim), 0.3,
                             correlation=correlation)
    square, holed = np.ones((15, 15), bool), np.ones((15, 15), bool)
    holed[7, 7] = False
    first = fitter.whitener(square)
    assert fitter.whitener(square.copy()) is first
    other = fitter.whitener(holed)
    assert other is not first and other.factor.shape == (224, 224)
    # it whitens the noise's correlation matrix (with the floor on its diagonal), built
    # here from the lags between the cutout's pixels
    lags = np.fft.ifftshift(correlation)
    y, x = np.nonzero(square)
    matrix = lags[(y[:, None] - y[None, :]) % lags.shape[0],
                  (x[:, None] - x[None, :]) % lags.shape[1]]
    matrix += psf_fit.CORRELATION_FLOOR * np.eye(len(y))
    np.testing.assert_allclose(first(first(matrix).T), np.eye(len(y)), atol=1e-8)
    monkeypatch.setattr(psf_fit, "WHITENER_CACHE_BYTES", first.factor.nbytes)
    fitter.whitener(np.ones((14, 14), bool))  # over budget: the oldest two go
    assert fitter.whitener(square) is not first


def test_a_given_correlation_that_is_not_a_valid_covariance_is_repaired(sim):
    """A user's correlation array need not have a non-negative spectrum (0.9 at every
    neighbouring pixel and 0 beyond does not): its negative eigenvalues are raised to the
    floor before the Cholesky factor is taken, and every row is still refined."""
    from deepfocus_radio.sources import psf_fit

    invalid = np.zeros((3, 3))
    invalid[1, 1], invalid[0, 1], invalid[2, 1], invalid[1, 0], invalid[1, 2] = 1, .9, .9, .9, .9
    assert np.fft.fft2(np.fft.ifftshift(invalid)).real.min() < 0
    whitener = psf_fit._Whitener(invalid, np.ones((9, 9), bool))
    assert np.all(np.isfinite(whitener.factor))
    truth = sim.truth_catalog()
    noise = np.full(sim.dirty.shape[0], float(np.median(sim.noise_rms)))
    refined = refine_with_psf(truth, sim.dirty, sim.psf, noise=noise, geometry=geometry(sim),
                              noise_correlation=invalid, progress=False)
    assert refined.meta["psf_refined"] == len(truth)


@pytest.fixture(scope="module")
def bright():
    """One bright point source observed in a short track (strong far sidelobes), with the
    PSF over twice the image."""
    config = AlmaConfig(image_shape=(64, 64), n_channels_range=(16, 16),
                        beam_fwhm_pixels_range=(3.0, 3.5), n_sources_range=(1, 1),
                        snr_range=(300.0, 300.0), source_fwhm_range=(0.0, 0.0),
                        line_fwhm_range=(3.0, 4.0), track_hours_range=(0.1, 0.2),
                        continuum_fraction=0.0, blend_fraction=0.0)
    return simulate_alma_cube(config, seed=4, full_psf=True)


def test_psf_windows_read_the_psf_at_any_offsets(bright):
    """``PsfReader.window`` against plain indexing of a zero-padded PSF, off the centre and
    partly beyond the PSF; ``sidelobe_reach`` against a scan of the plane."""
    psf = bright.psf.astype(float)
    nchan, ny, nx = psf.shape
    reader = PsfReader(psf, nchan)
    padded = np.zeros((nchan, 3 * ny, 3 * nx))
    padded[:, ny:2 * ny, nx:2 * nx] = psf
    weights = np.linspace(0.5, 1.5, 5)
    for rows, cols in (((-3, 3), (-3, 3)), ((20, 45), (-40, -10)), ((-70, -20), (5, 9)),
                       ((40, 50), (0, 3))):  # the last beyond the PSF
        got = reader.window(weights, 4, rows, cols)
        y, x = ny + ny // 2, nx + nx // 2  # the peak in the padded array
        block = padded[4:9, y + rows[0]:y + rows[1] + 1, x + cols[0]:x + cols[1] + 1]
        np.testing.assert_allclose(got, np.tensordot(weights, block, axes=1), atol=1e-12)
        assert reader.covers(rows, cols) == bool(np.any(block))
    np.testing.assert_array_equal(reader.weighted(weights, 4, 6),
                                  reader.window(weights, 4, (-6, 6), (-6, 6)))
    middle = np.abs(psf[nchan // 2])
    yy, xx = np.indices(middle.shape)
    distance = np.hypot(yy - ny // 2, xx - nx // 2)
    for level in (0.5, 0.1, 0.03):
        reach = reader.sidelobe_reach([level])[0]
        beyond = middle[distance >= reach]
        assert (beyond.size == 0 or beyond.max() < level) and (
            middle[distance >= reach - 1].max() >= level)


def test_a_neighbours_image_is_its_model_convolved_with_the_psf(bright):
    """A source's dirty image on a cutout far from it (beyond half the image: only the PSF
    over twice the image holds those offsets) and on one near it, against scipy's
    convolution of its model image with the PSF over the whole plane."""
    from deepfocus_radio.sources import psf_fit
    from deepfocus_radio.sources._arrays import CubeReader

    psf = bright.psf_full.astype(float)
    nchan, ny, nx = bright.dirty.shape
    fitter = psf_fit._Fitter(CubeReader(bright.dirty), PsfReader(psf, nchan),
                             np.asarray(bright.noise_rms, float), geometry(bright), 0.3)
    profile = np.full(nchan, 1.0 / nchan)
    source = psf_fit._SourceModel(2.0, 6.3, 55.7, 1.5, 0.9, 0.7, profile, 1.0, False)
    weights = np.linspace(0.2, 1.0, 6)
    model = psf_fit.gaussian_image((ny, nx), 6.3, 55.7, 1.5, 0.9, 0.7)
    kernel = np.tensordot(weights, psf[3:9], axes=1)
    expected = signal.fftconvolve(model, kernel, mode="full")[ny:2 * ny, nx:2 * nx]
    for box in ((2, 14, 48, 62), (40, 60, 0, 12)):  # far (about 50 px), then near
        ya, yb, xa, xb = box
        got = fitter._contribution(source, weights, 3, box)
        # the model is cut at 3.5 sigma (plus 2 pixels) around the source
        np.testing.assert_allclose(got, expected[ya:yb, xa:xb], rtol=0,
                                   atol=1e-5 * np.abs(expected).max())
    assert np.abs(expected[2:14, 48:62]).max() > 0.01 * np.abs(expected).max()


def test_far_sidelobes_of_a_bright_source_are_subtracted_with_the_full_psf(bright):
    """A catalogue row where a bright source's sidelobe, farther than half the image,
    peaks: with the image-sized PSF (CASA's ``.psf``) it looks like a source (the
    sidelobe is not modelled), with the PSF over twice the image it is the bright
    source's and holds no flux of its own."""
    truth = bright.truth_catalog()
    nchan, ny, nx = bright.dirty.shape
    z = int(round(bright.sources["z"][0]))
    sky = bright.sky[z].astype(float)
    far = (signal.fftconvolve(sky, bright.psf_full[z].astype(float), mode="full")[ny:2 * ny, nx:2 * nx]
           - signal.fftconvolve(sky, bright.psf[z].astype(float), mode="full")[
               ny // 2:ny // 2 + ny, nx // 2:nx // 2 + nx])
    far[:3], far[-3:], far[:, :3], far[:, -3:] = 0, 0, 0, 0  # away from the edges
    y, x = np.unravel_index(np.argmax(far), far.shape)
    assert far[y, x] > 10 * bright.noise_rms[z]
    table = truth.copy()
    table.add_row(table[0])
    table["x"][1], table["y"][1] = x * u.pix, y * u.pix
    table["flux"][1] = 0.05 * table["flux"][0]
    options = dict(noise=bright.noise_rms, geometry=geometry(bright), progress=False)
    image_psf = refine_with_psf(table, bright.dirty, bright.psf, **options)
    full_psf = refine_with_psf(table, bright.dirty, bright.psf_full, **options)
    assert image_psf["psf_snr"][1] > 5
    assert not full_psf["psf_snr"][1] > 3
    # the bright source's own fit no longer loses flux to the row's modelled emission
    alone = refine_with_psf(truth, bright.dirty, bright.psf_full, **options)
    flux = full_psf["flux"][0].to_value(FLUX)
    assert flux == pytest.approx(alone["flux"][0].to_value(FLUX), rel=0.01)
    assert flux == pytest.approx(truth["flux"][0].to_value(FLUX), rel=0.05)
