"""The dask graph of tiled prediction: one task per output block, one key for the model.

Built by hand (as dask's own ``overlap`` is) so that each block task receives exactly the
pieces of the neighbouring input chunks it needs, whatever the halo (filled past the
array's end as the network pads its input), and so that block boundaries follow the tile grid rather than the
input's chunks.
"""

import numpy as np

from deepfocus_radio.exceptions import InputDataError
from deepfocus_radio.inference._memory import release_freed_memory
from deepfocus_radio.inference.runner import run_tiles
from deepfocus_radio.inference.tiling import edge_indices, merge_block

__all__ = ["channel_sigma", "build_prediction_graph", "predict_block", "block_tasks"]


def channel_sigma(source, noise=None):
    """Per-channel noise used to normalize network inputs (1 where undefined).

    Parameters
    ----------
    source : ndarray or dask.array.Array, shape (chan, y, x)
        The input (a dask array is read one chunk of channels at a time).
    noise : float or array-like, optional
        Given noise (scalar or one value per channel); default
        ``deepfocus_radio.noise.channel_noise`` of the input.

    Returns
    -------
    ndarray, shape (chan,)
        float64; channels with a NaN or zero noise (blank or constant) get 1.

    Raises
    ------
    InputDataError
        If ``noise`` has the wrong length or a negative value.
    """
    from deepfocus_radio.noise import channel_noise

    nchan = source.shape[0]
    if noise is None:
        import dask.array as da

        chunks = source.chunks[0] if isinstance(source, da.Array) else None
        sigma = channel_noise(source, chunks=chunks)
        release_freed_memory()  # the slabs read are freed: return them to the system
    else:
        sigma = np.broadcast_to(np.asarray(noise, dtype=np.float64), (nchan,)).copy() \
            if np.ndim(noise) == 0 or np.size(noise) == nchan else None
        if sigma is None or np.any(sigma < 0):
            raise InputDataError(
                f"noise must be a non-negative scalar or {nchan} values (one per channel); got "
                f"shape {np.shape(noise)}"
            )
    return np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)


def predict_block(spec, sigma, plan, batch_size, parts):
    """Compute one output block from the pieces of input it needs (a dask task).

    Parameters
    ----------
    spec : ModelSpec
        The network.
    sigma : ndarray
        Noise of the channels of the block's region (edge-filled), shape (region chans,).
    plan : BlockPlan
        The block.
    batch_size : int
        Tiles per forward pass.
    parts : nested list of ndarray
        Input pieces, np.block-compatible, covering the region's source bounding box.

    Returns
    -------
    ndarray
        The block, float32, NaN where the input was NaN.
    """
    box = np.block(parts) if isinstance(parts, list) else parts
    box = np.asarray(box, dtype=np.float32)
    region = box[_region_index(plan)]
    finite = np.isfinite(region)
    normalized = np.where(finite, region, 0.0) / sigma[:, None, None].astype(np.float32)
    if plan.pad_mode == "constant":  # the network pads with zeros past the array's end
        for axis, ((lo, _), n) in enumerate(zip(plan.region, plan.shape)):
            normalized[(slice(None),) * axis + (slice(n - lo, None),)] = 0
    distinct = {}  # owned ranges at the array's end may share a tile: computed once
    order = [distinct.setdefault(_slice_key(s), (len(distinct), s))[0]
             for s in plan.tile_slices()]
    tiles = np.stack([normalized[s] for _, s in distinct.values()]).astype(np.float32,
                                                                           copy=False)
    outputs = run_tiles(spec, tiles, batch_size)
    block = merge_block(plan, outputs[order])
    inner = tuple(slice(lo - rlo, hi - rlo) for (lo, hi), (rlo, _) in zip(plan.bounds, plan.region))
    block *= sigma[inner[0]][:, None, None].astype(np.float32)
    block[~finite[inner]] = np.nan
    del box, region, normalized, tiles, outputs
    release_freed_memory()
    return block


def _slice_key(slices):
    return tuple((s.start, s.stop) for s in slices)


def _region_index(plan):
    """Index of the block's region in its source bounding box: slices where the region lies
    inside the array (a view, no copy), integer arrays otherwise."""
    index = []
    for (lo, hi), n in zip(plan.region, plan.shape):
        positions = edge_indices(np.arange(lo, hi), n, plan.pad_mode)
        first = positions.min()
        index.append(slice(lo - first, hi - first) if hi <= n else positions - first)
    if all(isinstance(i, slice) for i in index):
        return tuple(index)
    arrays = [np.arange(i.start, i.stop) if isinstance(i, slice) else i for i in index]
    return np.ix_(*arrays)


def _source_pieces(source_name, source_chunks, plan):
    """Graph references to the pieces of source chunks covering a block's region.

    Returns a nested list (chan, y, x) of either a source chunk key, or a getitem task
    slicing it, ready for ``np.block`` in :func:`predict_block`.
    """
    per_axis = []
    for (lo, hi), n, chunks in zip(plan.region, plan.shape, source_chunks):
        index = edge_indices(np.arange(lo, hi), n, plan.pad_mode)
        first, last = int(index.min()), int(index.max()) + 1
        bounds = np.cumsum((0,) + tuple(chunks))
        pieces = []
        for block in range(int(np.searchsorted(bounds, first, side="right") - 1), len(chunks)):
            a, b = max(first, bounds[block]), min(last, bounds[block + 1])
            if a >= b:
                break
            whole = a == bounds[block] and b == bounds[block + 1]
            pieces.append((block, None if whole else slice(a - bounds[block], b - bounds[block])))
        per_axis.append(pieces)
    return [[[_piece(source_name, (c, y, x)) for x in per_axis[2]] for y in per_axis[1]]
            for c in per_axis[0]]


def _piece(source_name, triple):
    import operator

    key = (source_name,) + tuple(block for block, _ in triple)
    if all(sl is None for _, sl in triple):
        return key
    slices = tuple(slice(None) if sl is None else sl for _, sl in triple)
    return (operator.getitem, key, slices)


def block_tasks(source, spec_key, layout, batch_size, sigma, indices=None):
    """``{block index: task}`` computing each output block (see :func:`predict_block`)."""
    tasks = {}
    grid = layout.grid
    for index in (np.ndindex(*grid) if indices is None else indices):
        plan = layout.plan(index)
        lo, hi = plan.region[0]
        region_sigma = sigma[edge_indices(np.arange(lo, hi), layout.shape[0], plan.pad_mode)]
        pieces = _source_pieces(source.name, source.chunks, plan)
        tasks[tuple(index)] = (predict_block, spec_key, region_sigma, plan, batch_size, pieces)
    return tasks


def build_prediction_graph(source, spec, layout, batch_size, sigma):
    """Lazy dask array of the tiled prediction of ``source`` (chunked like ``layout``)."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    token = tokenize(source.name, spec.key, spec.device, layout.tile, layout.halo, layout.blend,
                     layout.chunks, batch_size, sigma)
    name = f"predict-tiled-{token}"
    spec_key = f"model-spec-{token}"
    dsk = {spec_key: spec}
    for index, task in block_tasks(source, spec_key, layout, batch_size, sigma).items():
        dsk[(name,) + index] = task
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[source])
    return da.Array(graph, name, chunks=layout.chunks, dtype=np.float32)
