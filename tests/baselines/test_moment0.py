import numpy as np
import pytest
from astropy import units as u

from deepfocus_radio.baselines.moment0 import moment0_catalog
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import CATALOG_COLUMNS, score_catalog


@pytest.fixture(scope="module")
def bright_cube():
    config = AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24), n_sources_range=(3, 3),
                        snr_range=(40.0, 60.0), beam_fwhm_pixels_range=(4.0, 4.5),
                        blend_fraction=0.0, continuum_fraction=0.0, line_fwhm_range=(4.0, 6.0))
    return simulate_alma_cube(config, seed=11)


def test_moment0_baseline_finds_bright_sources(bright_cube):
    catalog = moment0_catalog(bright_cube.to_spectral_cube("dirty"))
    assert set(CATALOG_COLUMNS) <= set(catalog.colnames)
    assert catalog["flux"].unit == u.Jy * u.km / u.s
    truth = bright_cube.truth_catalog()
    report = score_catalog(catalog, truth, beam=bright_cube.beam, pixel_scale=bright_cube.pixel_scale,
                           channel_width=abs(bright_cube.header["CDELT3"]) * u.Hz)
    assert report.completeness == 1.0
    assert report.errors["position"].median < 0.3


def test_moment0_baseline_on_noise_finds_nothing(bright_cube):
    noise_only = bright_cube.to_spectral_cube("dirty")
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1e-3, size=noise_only.shape).astype(np.float32)
    from spectral_cube import SpectralCube

    cube = SpectralCube(data * noise_only.unit, noise_only.wcs, beam=noise_only.beam)
    catalog = moment0_catalog(cube, nsigma=6.0)
    assert len(catalog) == 0 and set(CATALOG_COLUMNS) <= set(catalog.colnames)
