"""Fixtures of the training tests: small hand-made data sets."""

import numpy as np
import pytest

from .helpers import make_split


@pytest.fixture
def handmade_root(tmp_path):
    """Train (3 cubes) / Validation (2) / Test (2) of 16x32x32 hand-made cubes."""
    rng = np.random.default_rng(7)
    root = tmp_path / "data"
    make_split(root / "Train", "train", [1, 2, 3], rng=rng)
    make_split(root / "Validation", "valid", [4, 5], rng=rng)
    make_split(root / "Test", "test", [6, 7], rng=rng, tclean=True)
    return root


@pytest.fixture(scope="session")
def simulated_root(tmp_path_factory):
    """Train (3) / Validation (2) / Test (2) ALMA-like cubes of 16 x 32 x 32 from the simulator."""
    from deepfocus_radio.simulation import simulate_dataset

    root = tmp_path_factory.mktemp("simulated") / "data"
    settings = {"image_shape": (32, 32), "n_channels_range": (16, 16),
                "n_sources_range": (2, 3), "snr_range": (8.0, 30.0)}
    return simulate_dataset(root, n_train=3, n_valid=2, n_test=2, config=settings, seed=1,
                            progress=False)


@pytest.fixture(scope="session")
def simulated_sources_root(tmp_path_factory):
    """Simulated cubes with many sources and fixed noise, beam and channel width."""
    from deepfocus_radio.simulation import simulate_dataset

    root = tmp_path_factory.mktemp("simulated_sources") / "data"
    settings = {"image_shape": (48, 48), "n_channels_range": (16, 16),
                "n_sources_range": (5, 5), "noise_rms_range": (1e-3, 1e-3),
                "beam_fwhm_pixels_range": (3.0, 3.0), "channel_width_range": (2e6, 2e6),
                "start_frequency_range": (230e9, 230e9), "line_fwhm_range": (2.0, 3.0),
                "source_fwhm_range": (0.0, 0.5), "blend_fraction": 0.0,
                "continuum_fraction": 0.0, "snr_range": (5.0, 60.0)}
    return simulate_dataset(root, n_train=8, n_valid=2, n_test=3, config=settings, seed=2,
                            progress=False)
