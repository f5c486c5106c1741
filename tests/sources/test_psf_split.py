"""Splitting merged blends: two-component PSF-convolved fits to the dirty cube."""

import numpy as np
import pytest
from astropy import units as u

from deepfocus_radio.noise import channel_noise
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import find_sources, read_catalog, write_catalog
from deepfocus_radio.sources.characterize import SkyGeometry
from deepfocus_radio.sources.psf_fit import refine_with_psf

FLUX = u.Jy * u.km / u.s


def blend(seed):
    """Two point sources at SNR 25-40, 0.5-1 beam apart, lines within a FWHM of each other
    (the simulator's blends)."""
    config = AlmaConfig(image_shape=(48, 48), n_channels_range=(24, 24),
                        beam_fwhm_pixels_range=(4.0, 5.0), n_sources_range=(2, 2),
                        snr_range=(25.0, 40.0), source_fwhm_range=(0.0, 0.0),
                        line_fwhm_range=(4.0, 6.0), continuum_fraction=0.0, blend_fraction=1.0)
    return simulate_alma_cube(config, seed=seed)


def merged(truth):
    """The one detection that a finder makes of the pair: the summed flux at the
    flux-weighted centre."""
    weights = truth["flux"].value / truth["flux"].value.sum()
    row = truth[:1].copy()
    for name in ("x", "y", "z"):
        row[name] = [np.sum(weights * truth[name].value)] * u.pix
    row["flux"] = [truth["flux"].value.sum()] * truth["flux"].unit
    return row


def beam_pixels(sim):
    return sim.beam.major.to_value(u.arcsec) / sim.pixel_scale.to_value(u.arcsec)


def assert_recovers(found, truth, sim):
    """Each true source has its own row within 0.25 beam, with its flux within 10%."""
    used = set()
    for source in truth:
        distance = np.hypot(found["x"].value - source["x"].value,
                            found["y"].value - source["y"].value) / beam_pixels(sim)
        best = int(np.argmin(distance))
        assert distance[best] < 0.25 and best not in used
        used.add(best)
        assert found["flux"][best].to_value(FLUX) == pytest.approx(
            source["flux"].to_value(FLUX), rel=0.10)


@pytest.mark.parametrize("seed", [1, 2])  # 0.67 beam and 3 channels; 0.86 beam, same line
def test_a_merged_pair_is_split_into_its_two_sources(seed):
    sim = blend(seed)
    truth = sim.truth_catalog()
    geometry = SkyGeometry(sim.wcs, sim.beam, sim.dirty.shape[0])
    noise = channel_noise(sim.dirty)
    one = refine_with_psf(merged(truth), sim.dirty, sim.psf, noise=noise, geometry=geometry,
                          progress=False)
    assert len(one) == 1 and "psf_split" not in one.colnames  # the default fits one source
    split = refine_with_psf(merged(truth), sim.dirty, sim.psf, noise=noise, geometry=geometry,
                            split=True, progress=False)
    assert len(split) == 2 and split.meta["psf_split"] == 1
    assert list(split["psf_split"]) == [1, 2]
    assert_recovers(split, truth, sim)
    # the second source: its line, its significance, no peak in a searched cube
    second = split[1]
    assert second["psf_snr"] > 5 and np.isnan(second["peak"].value)
    true_z = truth["z"].value[np.argmin(np.abs(truth["x"].value - second["x"].value))]
    assert abs(second["z"].value - true_z) < 1.0
    assert second["freq"].to_value(u.Hz) == pytest.approx(geometry.frequency(second["z"].value))
    assert np.isfinite(second["flux_err"].value) and np.isfinite(second["line_fwhm"].value)


def test_single_sources_are_not_split():
    """Isolated, resolved, elliptical sources (SNR 20-40) in three noisy cubes: no split."""
    config = AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24),
                        beam_fwhm_pixels_range=(4.0, 5.0), n_sources_range=(3, 3),
                        snr_range=(20.0, 40.0), source_fwhm_range=(0.0, 1.5),
                        axis_ratio_range=(0.4, 1.0), line_fwhm_range=(3.0, 8.0),
                        continuum_fraction=0.0, blend_fraction=0.0)
    for seed in (5, 6, 7):
        sim = simulate_alma_cube(config, seed=seed)
        geometry = SkyGeometry(sim.wcs, sim.beam, sim.dirty.shape[0])
        refined = refine_with_psf(sim.truth_catalog(), sim.dirty, sim.psf,
                                  noise=channel_noise(sim.dirty), geometry=geometry,
                                  split=True, progress=False)
        assert refined.meta["psf_split"] == 0 and np.all(refined["psf_split"] == 0)
        assert np.all(refined["psf_snr"] > 8)  # all were tested


def test_find_sources_splits_with_the_psf_and_writes_the_column(tmp_path):
    """Even a perfect deconvolution (the sky convolved with the clean beam) shows the pair
    as one source; the split finds both."""
    sim = blend(2)
    truth = sim.truth_catalog()
    dirty = sim.to_spectral_cube("dirty")
    options = dict(deconvolved=sim.clean, psf=sim.psf, progress=False)
    plain = find_sources(dirty, deblend=False, **options)
    assert len(plain) == 1 and "psf_split" not in plain.colnames  # no deblending, no split
    found = find_sources(dirty, **options)
    assert len(found) == 2 and found.meta["psf_split"] == 1
    assert_recovers(found, truth, sim)
    # both true sources are points: the split one does not inherit the merged pair's
    # elongated shape (it did: 0.46 arcsec, 1.2 beams)
    assert np.all(found["fwhm_major"] < 0.5 * sim.beam.major)
    # the split source's peak and SNR are read in the searched cube
    assert np.all(np.isfinite(found["peak"].value)) and np.all(found["snr"] > 10)
    assert list(found["id"]) == [1, 2]
    for name in ("cat.ecsv", "cat.xml"):  # the column and the count survive ECSV and VOTable
        write_catalog(found, tmp_path / name)
        back = read_catalog(tmp_path / name)
        assert list(back["psf_split"]) == [1, 2] and back.meta["psf_split"] == 1
