"""``predict_tiled``: a network over a (chan, y, x) array in overlapping tiles, through dask.

Each output block is one dask task: it gathers its input region (the block and its halo,
never reaching outside the cube but to the network's pooling grid) from the neighbouring
input chunks, normalizes it by
the per-channel noise, cuts it into tiles, runs them through the network in batches,
merges them (see :mod:`deepfocus_radio.inference.tiling`) and multiplies back by the
noise. The network travels as one :class:`~deepfocus_radio.inference.runner.ModelSpec`
key of the graph and is built once per process.
"""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfocus_radio.exceptions import (
    ConfigError,
    ModelMismatchError,
    OutputExistsError,
    TileShrunkWarning,
)
from deepfocus_radio.inference.graph import build_prediction_graph, channel_sigma
from deepfocus_radio.inference.runner import ModelSpec, model_geometry, resolve_device
from deepfocus_radio.inference.tiling import BLEND_MODES, TileLayout, round_up

__all__ = ["predict_tiled", "DEFAULT_TILE", "DEFAULT_HALO", "DEFAULT_BATCH_SIZE", "TilingSettings",
           "resolve_tiling"]

#: Default tile and halo (chan, y, x) of 3D and 2D networks (2D: one plane at a time).
#: The reference is the network run once on the whole cube. Measured on a 32x160x160
#: noise cube with (32, 96, 96) tiles (max |tiled - whole| / dynamic range): the shipped
#: "alma" model, 5e-7 at these defaults; the default U-Net (``create_model("unet")``, three
#: poolings, random weights), 2e-2 with halos up to 16 in y/x, 8e-3 at 24, 2.5e-3 at 32,
#: and 1e-6 with (32, 128, 128) tiles and a halo of 40 (its receptive field is wide: stay
#: below 1e-3 with a halo of 40). A network whose receptive field fits in the halo gives
#: the whole-cube result to float rounding.
DEFAULT_TILE = {3: (32, 96, 96), 2: (1, 128, 128)}
DEFAULT_HALO = {3: (8, 24, 24), 2: (0, 16, 16)}
DEFAULT_BATCH_SIZE = 4


@dataclass(frozen=True)
class TilingSettings:
    """Checked tiling settings for one array, and the network's grid (see
    :func:`network_grid`) that the tiles follow."""

    tile: tuple
    halo: tuple
    batch_size: int
    blend: str
    per_block: tuple
    multiple: tuple
    pad_mode: str

    def layout(self, shape):
        """The :class:`~deepfocus_radio.inference.tiling.TileLayout` of an array."""
        return TileLayout(shape, self.tile, self.halo, self.per_block, self.blend,
                          self.multiple, self.pad_mode)


def _triple(name, value, spatial_dims, *, minimum):
    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)
    if spatial_dims == 2 and len(values) == 2:
        values = (1 if name == "tile" else 0,) + values
    if len(values) != 3 or any(isinstance(v, bool) or int(v) != v or v < minimum for v in values):
        raise ConfigError(
            f"{name}={value!r} must be {'an integer' if minimum else 'a non-negative integer'} "
            f">= {minimum} or three of them in (chan, y, x) order"
        )
    values = tuple(int(v) for v in values)
    if spatial_dims == 2 and values[0] != (1 if name == "tile" else 0):
        raise ConfigError(f"{name}={value!r}: a 2D network works plane by plane, so the channel "
                          f"{name} must be {1 if name == 'tile' else 0}; give (y, x) sizes")
    return values


def network_grid(module, spatial_dims):
    """The network's down-sampling factor per axis (chan, y, x) and how it pads its input.

    Read from ``module.size_multiple`` and ``module.pad_mode`` (U-Net and CAE of
    ``build_model``); otherwise the product of all pooling and convolution strides on
    every axis, with reflection. Tiles start on multiples of the factor, so every tile
    sees the pooling grid of the whole-array pass, and are filled past the array's end as
    the network pads its input.
    """
    import torch

    pad_mode = str(getattr(module, "pad_mode", "reflect"))
    multiple = getattr(module, "size_multiple", None)
    if multiple is not None:
        multiple = tuple(int(m) for m in multiple)
        return ((1,) + multiple if spatial_dims == 2 else multiple), pad_mode
    factor = 1
    for layer in module.modules():
        if isinstance(layer, (torch.nn.MaxPool2d, torch.nn.MaxPool3d, torch.nn.AvgPool2d,
                              torch.nn.AvgPool3d, torch.nn.Conv2d, torch.nn.Conv3d)):
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            stride = stride if isinstance(stride, tuple) else (stride,)
            factor *= max(int(s) for s in stride)
    return ((1, factor, factor) if spatial_dims == 2 else (factor,) * 3), pad_mode


def resolve_tiling(shape, module, spatial_dims, *, tile=None, halo=None, batch_size=None,
                   blend=None):
    """Check tiling settings against the data and fill in defaults.

    Default tile and halo: the model card's ``tiling`` for a shipped model, else
    :data:`DEFAULT_TILE` and :data:`DEFAULT_HALO`. Tiles are rounded up to the network's
    down-sampling factor on each axis (see
    :func:`network_grid`); a tile longer than an axis (rounded up to that factor) is shrunk
    to it, with a :class:`~deepfocus_radio.exceptions.TileShrunkWarning` when the tile was
    given (the default tile is shrunk to small cubes silently).

    Returns
    -------
    TilingSettings

    Raises
    ------
    ConfigError
        If a size is malformed, ``tile <= 2 * halo`` on an axis, ``batch_size < 1`` or
        ``blend`` is unknown.
    """
    explicit = tile is not None
    card = getattr(getattr(module, "card", None), "tiling", None) or {}
    default_tile = card.get("tile", DEFAULT_TILE[spatial_dims])
    default_halo = card.get("halo", DEFAULT_HALO[spatial_dims])
    tile = _triple("tile", default_tile if tile is None else tile, spatial_dims, minimum=1)
    if halo is None:  # default halo, but never more than a quarter of a tile the user chose
        halo = tuple(min(h, t // 4) for h, t in zip(_triple("halo", default_halo, spatial_dims,
                                                            minimum=0), tile))
    halo = _triple("halo", halo, spatial_dims, minimum=0)
    blend = "crop" if blend is None else blend
    if blend not in BLEND_MODES:
        raise ConfigError(f"blend={blend!r} is not one of {list(BLEND_MODES)}")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1):
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer")
    for axis, (t, h) in enumerate(zip(tile, halo)):
        if t <= 2 * h:
            raise ConfigError(
                f"tile={tile} and halo={halo}: on axis {('chan', 'y', 'x')[axis]} the tile must "
                f"be larger than twice the halo (tile {t} <= 2 x {h}); enlarge tile or reduce halo"
            )
    multiple, pad_mode = network_grid(module, spatial_dims)
    tile = _fit_tile(tile, shape, multiple, warn=explicit)
    return TilingSettings(tile, halo, int(batch_size), blend,
                          _per_block(shape, tile, halo, int(batch_size)), multiple, pad_mode)


def _fit_tile(tile, shape, multiple, *, warn):
    rounded = [round_up(t, m) for t, m in zip(tile, multiple)]
    padded = [round_up(n, m) for n, m in zip(shape, multiple)]
    new = tuple(min(t, p) for t, p in zip(rounded, padded))
    if warn and any(t > p for t, p in zip(tile, padded)):
        warnings.warn(
            f"tile={tuple(tile)} is larger than the data {tuple(shape)}; using tile={new}",
            TileShrunkWarning, stacklevel=4)
    return new


def _per_block(shape, tile, halo, batch_size):
    """Tiles per block: about ``batch_size`` tiles, spread over y and x."""
    counts = [max(1, math.ceil(n / max(1, t - 2 * h))) for n, t, h in zip(shape, tile, halo)]
    ky = min(counts[1], math.ceil(math.sqrt(batch_size)))
    kx = min(counts[2], math.ceil(batch_size / ky))
    return (1, ky, kx)


def _check_model(module, ndim):
    spatial_dims, in_channels, out_channels = model_geometry(module)
    if in_channels != 1 or out_channels != 1:
        raise ModelMismatchError(
            f"model has in_channels={in_channels}, out_channels={out_channels}; tiled inference "
            "feeds one cube (one channel) and expects one output channel"
        )
    if spatial_dims == 3 and ndim != 3:
        raise ModelMismatchError(
            f"model has spatial_dims=3 and needs a (chan, y, x) cube with a spectral axis; the "
            f"data has {ndim} axes. Use a 2D model for images"
        )
    if ndim not in (2, 3):
        raise ModelMismatchError(f"data must be (y, x) or (chan, y, x); got {ndim} axes")
    return spatial_dims


def predict_tiled(array, model, *, tile=None, halo=None, batch_size=None, blend=None, device=None,
                  noise=None, out=None, overwrite=False, client=None, progress=True, threads=None,
                  num_workers=None, amp=False, store_metadata=None):
    """Run a network over an array in overlapping tiles, lazily and out of core.

    Parameters
    ----------
    array : ndarray or dask.array.Array
        (chan, y, x) for a 3D network; (y, x) or (chan, y, x) (plane by plane) for a 2D
        one. Any brightness unit (bare values); NaNs are fed as 0 and restored as NaN.
    model : torch.nn.Module, str or os.PathLike
        Network, model file or shipped name (see ``deepfocus_radio.load_model``).
    tile : int or tuple of int, optional
        Tile size in voxels, (chan, y, x); default the model card's (shipped models), else
        (32, 96, 96) in 3D, (1, 128, 128) in 2D.
    halo : int or tuple of int, optional
        Least voxels of context on each side of the part of a tile that is kept, (chan, y,
        x); default (8, 24, 24) in 3D, (0, 16, 16) in 2D, but at most a quarter of the tile
        on each axis. Tiles use the fewest that this allows and split their spare overlap
        evenly, so most get more. No context is needed at the cube's edges, where the
        whole-cube pass has none either. Tiled equals whole-array output when the network's
        receptive field fits in the halo (see ``DEFAULT_HALO`` for the U-Net).
    batch_size : int, optional
        Tiles per forward pass (default 4); an output block holds about this many tiles.
    blend : {"crop", "linear"}, optional
        How overlaps are reconciled (default "crop"; see ``tiling``).
    device : str or torch.device, optional
        Default CUDA when available, else CPU.
    noise : float or array-like, optional
        Noise rms per channel (same unit as ``array``); default
        ``deepfocus_radio.noise.channel_noise(array)``. Inputs are divided by it before
        the network and outputs multiplied by it.
    out : str or os.PathLike, optional
        zarr store to write into (block by block; the output never has to fit in memory).
        A run that was killed resumes: blocks already written are skipped.
    overwrite : bool, optional
        Replace an existing ``out``.
    client : `distributed.Client`, optional
        Cluster to run on; default the active client, else local threads.
    progress : bool, optional
        Show a progress bar while computing.
    threads : int, optional
        torch threads in each process (default: torch's).
    num_workers : int, optional
        Threads of the local scheduler (default: the number of cores).
    amp : bool, optional
        bfloat16 autocast on CUDA (off by default: it costs ~1e-2 relative accuracy).
    store_metadata : dict, optional
        ``header``, ``unit``, ``beam`` and ``attrs`` for the ``out`` store.

    Returns
    -------
    ndarray or dask.array.Array
        float32, same shape as ``array``: a numpy array for numpy input, a lazy dask array
        for dask input, a dask array reading ``out`` when ``out`` is given.

    Raises
    ------
    ModelMismatchError
        If the network's ``spatial_dims``, ``in_channels`` or output do not fit the data.
    ConfigError
        If a tiling setting or ``device`` is invalid.
    OutputExistsError
        If ``out`` exists (and is not an unfinished run of the same job) and ``overwrite``
        is False.
    """
    import dask.array as da

    from deepfocus_radio.io._compute import compute
    from deepfocus_radio.io.fits import LazyArray
    from deepfocus_radio.models import load_model

    if out is not None and Path(out).exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    module = load_model(model)
    device = resolve_device(device)
    is_dask = isinstance(array, da.Array)
    data = array if is_dask else np.asarray(array)
    spatial_dims = _check_model(module, data.ndim)
    squeeze = data.ndim == 2
    data = data[None] if squeeze else data
    settings = resolve_tiling(data.shape, module, spatial_dims, tile=tile, halo=halo,
                              batch_size=batch_size, blend=blend)
    layout = settings.layout(data.shape)
    spec = ModelSpec(module, device=device, spatial_dims=spatial_dims,
                     threads=threads, amp=amp)
    # (from_array would copy a numpy array or memory map whole; LazyArray reads per chunk)
    source = data if is_dask else da.from_array(LazyArray(data), chunks=layout.chunks,
                                                asarray=True, name=False)
    sigma = channel_sigma(data, noise)  # (numpy read directly: no dask pass)
    if out is not None:
        from deepfocus_radio.inference.store import predict_to_store

        result = predict_to_store(source, spec, layout, settings, sigma, out, overwrite=overwrite,
                                  client=client, progress=progress, num_workers=num_workers,
                                  metadata=store_metadata or {})
    else:
        result = build_prediction_graph(source, spec, layout, settings.batch_size, sigma)
        if not is_dask:
            (result,) = compute(result, client=client, desc="predict", progress=progress,
                                num_workers=num_workers)
    return result[0] if squeeze else result
