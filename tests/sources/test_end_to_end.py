"""End to end on the project's ALMA simulator: dirty and clean cubes against the truth."""

import numpy as np
import pytest

from deepfocus_radio.noise import channel_noise
from deepfocus_radio.sources import (characterize_sources, detect_sources, find_sources,
                                     score_catalog)


@pytest.fixture(scope="module")
def simulated():
    simulation = pytest.importorskip("deepfocus_radio.simulation")
    config = simulation.AlmaConfig(
        image_shape=(64, 64), n_channels_range=(32, 32), n_sources_range=(4, 4),
        snr_range=(10, 40), blend_fraction=0.0, continuum_fraction=0.0,
        beam_fwhm_pixels_range=(4, 5), primary_beam=False)
    return simulation.simulate_alma_cube(config, seed=3)


def test_a_perfect_deconvolution_recovers_the_truth(simulated):
    """Search the true clean cube with the dirty cube's noise, as after a perfect network."""
    truth = simulated.truth_catalog()
    clean, dirty = simulated.to_spectral_cube("clean"), simulated.to_spectral_cube("dirty")
    noise = channel_noise(dirty.filled_data[:].value)
    detections = detect_sources(clean, noise=noise, noise_cube=dirty.filled_data[:].value)
    found = characterize_sources(clean, detections, noise=noise,
                                 searched_noise=channel_noise(clean.filled_data[:].value))
    report = score_catalog(found, truth)
    assert report.completeness == 1.0 and report.purity == 1.0
    assert abs(report.errors["flux"].median) < 0.02
    assert report.errors["flux"].fraction_within == 1.0
    assert abs(report.errors["line_fwhm"].median) < 0.03
    assert report.errors["position"].fraction_within == 1.0


def test_dirty_cube_detects_the_bright_sources(simulated):
    truth = simulated.truth_catalog()
    found = find_sources(simulated.to_spectral_cube("dirty"), model=None, progress=False)
    report = score_catalog(found, truth)
    assert report.completeness == 1.0
    assert report.n_found <= report.n_truth + 1
    assert report.errors["position"].median < 0.2
    unmatched = np.setdiff1d(np.arange(len(found)), report.matches["found_index"])
    assert np.all(found["snr"][unmatched] < 6)  # a spurious detection is a faint one
