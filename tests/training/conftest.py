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
