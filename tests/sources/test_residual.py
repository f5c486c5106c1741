"""The residual cube: the dirty cube minus the catalogue's PSF-convolved models, and the
faint sources that searching it adds to the pipeline's catalogue."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from scipy import signal
from spectral_cube import SpectralCube

from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import find_sources
from deepfocus_radio.sources.catalog import CATALOG_COLUMNS
from deepfocus_radio.sources.characterize import SkyGeometry
from deepfocus_radio.sources.psf_fit import cube_line_profile, gaussian_image
from deepfocus_radio.sources.residual import residual_cube


@pytest.fixture(scope="module")
def sim(three_sources):
    return three_sources


def dirty_of(sky, psf_full):
    """A sky (chan, y, x; Jy/pixel) convolved with the PSF over twice the image (scipy)."""
    ny, nx = sky.shape[1:]
    return np.stack([signal.fftconvolve(plane, kernel, mode="full")[ny:2 * ny, nx:2 * nx]
                     for plane, kernel in zip(sky.astype(float), psf_full.astype(float))])


def fitted(truth):
    table = truth.copy()
    table["psf_snr"] = np.full(len(table), 10.0)
    return table


def test_the_residual_of_the_true_sources_is_the_noise(sim, tmp_path):
    """Removing the true sources leaves the noise (the dirty cube minus the sky convolved
    with the PSF by scipy), in memory and in a zarr store, in the cube's unit; the input
    is not modified; rows that were not fitted are not subtracted."""
    dirty = sim.to_spectral_cube("dirty")
    before = np.array(dirty.unmasked_data[:].value)
    noise_cube = sim.dirty.astype(float) - dirty_of(sim.sky, sim.psf_full)
    options = dict(geometry=SkyGeometry(sim.wcs, sim.beam, sim.dirty.shape[0]),
                   noise=sim.noise_rms, progress=False)
    residual = residual_cube(dirty, fitted(sim.truth_catalog()), sim.psf_full, **options)
    assert residual.unit == u.Jy / u.beam and residual.shape == dirty.shape
    values = residual.unmasked_data[:].value
    error = values - noise_cube
    rms = np.asarray(sim.noise_rms, dtype=float)[:, None, None]
    assert np.abs(error / rms).max() < 0.1
    assert np.sqrt(np.mean((error / rms) ** 2)) < 0.01
    assert np.abs((sim.dirty - noise_cube) / rms).max() > 15  # the sources were there
    np.testing.assert_array_equal(dirty.unmasked_data[:].value, before)
    stored = residual_cube(dirty, fitted(sim.truth_catalog()), sim.psf_full,
                           store=tmp_path / "residual.zarr", **options)
    assert (tmp_path / "residual.zarr").is_dir()
    np.testing.assert_allclose(stored.unmasked_data[:].value, values, rtol=0, atol=1e-7)
    in_mjy = residual_cube(dirty.to(u.mJy / u.beam), fitted(sim.truth_catalog()),
                           sim.psf_full, **{**options, "noise": 1e3 * sim.noise_rms})
    assert in_mjy.unit == u.mJy / u.beam
    np.testing.assert_allclose(in_mjy.unmasked_data[:].value, 1e3 * values, rtol=1e-5,
                               atol=0.1 * float(np.median(sim.noise_rms)))  # 1e-4 sigma, mJy
    unfitted = fitted(sim.truth_catalog())
    unfitted["psf_snr"][0] = np.nan
    kept = residual_cube(dirty, unfitted, sim.psf_full, **options).unmasked_data[:].value
    z, y, x = (int(round(float(unfitted[c][0].value))) for c in ("z", "y", "x"))
    assert kept[z, y, x] - values[z, y, x] > 5 * sim.noise_rms[z]


def test_the_residual_search_adds_a_faint_source_beside_a_bright_one():
    """A 5-sigma point source 1.4 beams from a 40-sigma one, which the deconvolved cube
    lacks: with ``dirty_candidates`` it is found (from the residual of the fits) at its
    place, its line flux within 30% of the truth; without, it is not."""
    config = AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24),
                        beam_fwhm_pixels_range=(4.0, 5.0), n_sources_range=(1, 1),
                        snr_range=(40.0, 40.0), source_fwhm_range=(0.0, 0.0),
                        line_fwhm_range=(4.0, 5.0), continuum_fraction=0.0, blend_fraction=0.0)
    sim = simulate_alma_cube(config, seed=11, full_psf=True)
    bright = sim.truth_catalog()[0]
    nchan, ny, nx = sim.dirty.shape
    beam_pix = (sim.beam.major / sim.pixel_scale).to_value(u.one)
    x = bright["x"].value + 1.4 * beam_pix * np.cos(0.7)
    y = bright["y"].value + 1.4 * beam_pix * np.sin(0.7)
    profile = cube_line_profile(nchan, bright["z"].value + 1.0, 4.0 / np.sqrt(8 * np.log(2)))
    flux = 5.0 * float(np.median(sim.noise_rms)) / profile.max()  # Jy, summed over channels
    sky = flux * profile[:, None, None] * gaussian_image((ny, nx), x, y, 0.3, 0.3, 0.0)
    dirty = sim.to_spectral_cube("dirty")
    dirty = SpectralCube((sim.dirty + dirty_of(sky, sim.psf_full)) * u.Jy / u.beam, dirty.wcs,
                         beam=dirty.beam)
    options = dict(deconvolved=sim.clean * u.Jy / u.beam, threshold=3.5, psf=sim.psf_full,
                   psf_min_snr=4.0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # outside the training ranges
        without = find_sources(dirty, "alma", **options)
        found = find_sources(dirty, "alma", dirty_candidates=4.0, **options)

    def near(table):
        return np.hypot(table["x"].value - x, table["y"].value - y) < 0.3 * beam_pix

    assert not near(without).any()
    assert near(found).sum() == 1 and found.meta["dirty_candidates_added"] == 1
    row = found[near(found)][0]
    width = SkyGeometry(sim.wcs, sim.beam, nchan).velocity_width(row["z"].value)
    assert row["flux"].to_value(u.Jy * u.km / u.s) == pytest.approx(flux * width, rel=0.3)
    assert row["psf_snr"] >= 4.0


def test_the_residual_search_of_noise_and_blanks_adds_nothing_spurious(sim):
    """A cube of noise alone, with a NaN-blanked corner, through the whole pipeline with
    the residual's candidates: a catalogue with every column, no row in the blanked
    region, every row past its cut."""
    dirty = sim.to_spectral_cube("dirty")
    noise = (sim.dirty.astype(float) - dirty_of(sim.sky, sim.psf_full)).astype(np.float32)
    noise[:, :20, :20] = np.nan
    cube = SpectralCube(noise * u.Jy / u.beam, dirty.wcs, beam=dirty.beam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no sources; training ranges
        found = find_sources(cube, None, threshold=4.0, psf=sim.psf_full, psf_min_snr=4.0,
                             dirty_candidates=4.0, progress=False)
    assert set(CATALOG_COLUMNS) <= set(found.colnames)
    assert not ((found["x"].value < 21) & (found["y"].value < 21)).any()
    assert np.all(np.asarray(found["psf_snr"], dtype=float) >= 4.0)
    assert len(found) <= 1  # at 4 sigma, 64 x 64 x 24 voxels of noise


def test_cubes_larger_than_memory_keep_the_residual_in_a_zarr_store(sim, monkeypatch):
    """With too little memory for a copy of the cube, the deconvolved cube and the residual
    go to zarr stores in a temporary folder (removed afterwards); the catalogue is the one
    made in memory."""
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    import psutil

    from deepfocus_radio.io import open_cube

    dirty = sim.to_spectral_cube("dirty")
    options = dict(threshold=3.5, psf=sim.psf_full, psf_min_snr=4.0, dirty_candidates=4.0,
                   progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # outside the training ranges
        in_memory = find_sources(dirty, "alma", **options)
        stores = []
        real_open = open_cube

        def recording_open(path, **kwargs):
            stores.append(Path(path))
            return real_open(path, **kwargs)

        monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=1024))
        monkeypatch.setattr("deepfocus_radio.io.open_cube", recording_open)
        in_stores = find_sources(dirty, "alma", **options)
    assert {path.name for path in stores} >= {"clean.zarr", "residual.zarr"}
    assert all(not path.exists() and str(path).startswith(tempfile.gettempdir())
               for path in stores)
    assert len(in_stores) == len(in_memory) >= 3
    for name in ("x", "y", "flux", "psf_snr"):
        np.testing.assert_allclose(np.asarray(in_stores[name]), np.asarray(in_memory[name]),
                                   rtol=1e-4)
