"""Simulated ALMA-like and SKA-like spectral cubes, with truth, for training and tests.

The public entry points are :func:`simulate_alma_cube`, :func:`simulate_ska_cube`
(one cube, a :class:`SimulatedCube`) and :func:`simulate_dataset` (a Train/Validation/
Test data set on disk, in the layout of DESIGN.md). Settings live in :class:`AlmaConfig`
and :class:`SkaConfig`.
"""

from deepfocus_radio.simulation.alma import simulate_alma_cube
from deepfocus_radio.simulation.config import AlmaConfig, SkaConfig
from deepfocus_radio.simulation.cube import SimulatedCube
from deepfocus_radio.simulation.dataset import simulate_dataset
from deepfocus_radio.simulation.ska import simulate_ska_cube

__all__ = ["AlmaConfig", "SkaConfig", "SimulatedCube", "simulate_alma_cube", "simulate_dataset", "simulate_ska_cube"]
