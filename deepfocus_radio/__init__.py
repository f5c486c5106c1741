"""deepfocus_radio: deep learning for radio interferometric spectral cubes.

Deconvolve dirty ALMA/SKA cubes, detect and characterize sources, and train, test and
search the networks that do it. ``import deepfocus_radio`` registers the ``deepfocus``
accessor on :class:`spectral_cube.SpectralCube`; the heavy parts (torch, dask) are
imported on first use of the functions below.
"""

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it; resolved lazily so the import stays light.
_LAZY = {
    "simulate_dataset": "deepfocus_radio.simulation",
    "build_model": "deepfocus_radio.models",
    "create_model": "deepfocus_radio.models",
    "load_model": "deepfocus_radio.models",
    "fits_to_zarr": "deepfocus_radio.io",
    "open_cube": "deepfocus_radio.io",
    "predict_tiled": "deepfocus_radio.inference",
    "deconvolve": "deepfocus_radio.inference",
    "train": "deepfocus_radio.training",
    "evaluate": "deepfocus_radio.training",
    "sweep": "deepfocus_radio.training",
    "score_catalog": "deepfocus_radio.sources",
    "find_sources": "deepfocus_radio.sources",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepfocus_radio' has no attribute {name!r}")


def __dir__():
    return __all__


importlib.import_module("deepfocus_radio.accessor").register()
