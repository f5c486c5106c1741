"""Tiled inference over cubes of any size: :func:`predict_tiled` and :func:`deconvolve`.

Networks run over overlapping tiles through dask (local threads or dask.distributed),
reading from and writing to chunked stores so that nothing has to fit in memory.
"""

from deepfocus_radio.inference.deconvolve import deconvolve
from deepfocus_radio.inference.predict import predict_tiled, resolve_tiling
from deepfocus_radio.inference.runner import clear_model_cache, resolve_device
from deepfocus_radio.inference.tiling import BLEND_MODES, TileLayout

__all__ = [
    "predict_tiled",
    "deconvolve",
    "resolve_tiling",
    "resolve_device",
    "clear_model_cache",
    "TileLayout",
    "BLEND_MODES",
]
