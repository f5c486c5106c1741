"""Tile geometry: where the tiles go, which block of the output each one feeds, and how.

The shape follows MONAI's split inference (a *splitter* placing windows, a *merger*
aggregating them) but works per output block, so a dask task only ever holds one block.

The reference is the network run once on the whole array, and tiles are placed so that
they see what that pass sees:

- Tiles never reach outside the array, except up to the next multiple of the network's
  down-sampling factor ``m`` (its pooling grid), where they are filled as the network pads
  its own input (reflect, replicate or zeros). At the array's edges a tile therefore sees
  the same zero padding of its convolutions as the whole pass (which is also what the
  network saw at the edges of its training crops), and a short axis is one tile, not two.
- Every tile starts on a multiple of ``m``, so its pooling grid is the whole pass's.
- Along an axis of length ``S``, tiles of size ``T`` with a halo ``H`` own consecutive
  output ranges of ``D`` voxels (the *stride*: a multiple of ``m``, at most ``T - 2H``).
  Tile ``i`` owns ``[iD, (i+1)D)`` and starts ``O`` voxels before it (``H <= O <= T - D - H``,
  ``O`` a multiple of ``m`` as near the middle as possible, so the context is balanced on
  both sides), moved inside the array at the two ends. Output blocks (dask chunks, zarr
  chunks) group ``k`` consecutive tiles per axis, so block edges fall on a regular grid.

Two ways to reconcile overlaps (``blend``):

- ``"crop"``: each voxel comes from the one tile that owns it (at least ``H`` voxels from
  the tile's inner borders). For a network whose receptive field fits in the halo this
  equals the whole-array pass exactly, and no tile is computed twice.
- ``"linear"``: tiles are averaged with weights ramping linearly over ``2H`` voxels from
  each inner border (like MONAI's blending); it smooths seams when the receptive field
  exceeds the halo, at the cost of computing the neighbouring tiles of every block again.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["BLEND_MODES", "PAD_MODES", "AxisTiles", "BlockPlan", "TileLayout", "axis_weights",
           "edge_indices", "merge_block", "reflect_indices", "round_up", "tile_grid"]

BLEND_MODES = ("crop", "linear")
#: How positions past the array's end are filled (as ``torch.nn.functional.pad`` does).
PAD_MODES = ("reflect", "replicate", "constant")


def round_up(n, multiple):
    """``n`` rounded up to a multiple of ``multiple`` (positive integers)."""
    return -(-n // multiple) * multiple


def reflect_indices(indices, size):
    """Map indices outside ``[0, size)`` inside by mirror reflection (numpy's "reflect").

    Parameters
    ----------
    indices : ndarray of int
        Positions along an axis, possibly negative or >= ``size``.
    size : int
        Axis length.

    Returns
    -------
    ndarray of int
        Same as the positions ``np.pad(..., mode="reflect")`` reads; a length-1 axis maps
        everything to 0.
    """
    indices = np.asarray(indices)
    if size == 1:
        return np.zeros_like(indices)
    period = 2 * (size - 1)
    folded = np.mod(indices, period)
    return np.where(folded < size, folded, period - folded)


def edge_indices(indices, size, mode):
    """Positions inside ``[0, size)`` that fill ``indices`` past the array's end.

    Parameters
    ----------
    indices : ndarray of int
        Positions along an axis, ``>= 0``.
    size : int
        Axis length.
    mode : {"reflect", "replicate", "constant"}
        As the network pads its input. Reflection falls back to replication when the
        padding is not shorter than the axis (as the network does). For ``"constant"`` the
        positions are clipped; the caller sets the values past ``size`` to zero.

    Returns
    -------
    ndarray of int
    """
    indices = np.asarray(indices)
    if mode == "reflect" and (indices.size == 0 or indices.max() < 2 * size - 1):
        return reflect_indices(indices, size)
    return np.clip(indices, 0, size - 1)


def tile_grid(tile, halo, multiple):
    """The largest stride of inner tiles along an axis, and the step of their starts.

    Parameters
    ----------
    tile, halo, multiple : int
        Tile size, halo and the network's down-sampling factor on this axis (voxels).

    Returns
    -------
    stride, step : int
        An inner tile owns ``stride`` voxels with at least ``halo`` of context on both
        sides and starts on a multiple of ``step``: ``multiple`` when such a stride
        exists, else 1 (the pooling grid is given up on this axis).
    """
    for step in (multiple, 1):
        for stride in range((tile - 2 * halo) // step * step, 0, -step):
            if _offsets(tile, halo, stride, step):
                return stride, step
    raise ValueError(f"tile {tile} must be larger than twice the halo {halo}")


def _offsets(tile, halo, stride, step):
    """Offsets (multiples of ``step``) of an inner tile's start before its owned range."""
    lo, hi = round_up(halo, step), (tile - stride - halo) // step * step
    return range(lo, hi + 1, step)


@dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis: their starts, owned output ranges and block grouping."""

    size: int
    tile: int
    halo: int
    starts: tuple
    owned: tuple
    per_block: int

    @classmethod
    def build(cls, size, tile, halo, per_block, multiple=1):
        """Tiles for an axis of ``size`` voxels (see the module docstring).

        The first tile starts at 0 and the last ends at ``padded`` (``size`` rounded up to
        ``multiple``); they need context on one side only. Between them, the fewest inner
        tiles allowed by the halo, owning equal ranges, with the spare overlap split evenly
        so that every tile has at least ``halo`` voxels of context and usually more.
        """
        padded = round_up(size, multiple)
        if tile >= padded:
            return cls(size, tile, halo, (0,), ((0, size),), 1)
        last = padded - tile
        span = last + halo  # the last tile can own from here on
        if span <= tile - halo and span < size:  # two tiles: split their overlap evenly
            boundary = min(max(padded // 2, span), tile - halo, size - 1)
            return cls(size, tile, halo, (0, last), ((0, boundary), (boundary, size)),
                       max(1, int(per_block)))
        largest, step = tile_grid(tile, halo, multiple)
        count = 1 + round_up(span, largest) // largest
        stride = round_up(round_up(span, count - 1) // (count - 1), step)
        middle = (tile - stride) / 2
        offset = min(_offsets(tile, halo, stride, step), key=lambda o: (abs(o - middle), o))
        starts = [0] + [min(max(0, i * stride - offset), last) for i in range(1, count - 1)]
        starts.append(last)
        owned = [(i * stride, (i + 1) * stride) for i in range(count - 1)]
        owned.append(((count - 1) * stride, size))
        while owned[-1][0] >= size:  # rounding the stride up left nothing to the last tile
            starts.pop()
            owned.pop()
            owned[-1] = (owned[-1][0], size)
        return cls(size, tile, halo, tuple(starts), tuple(owned), max(1, int(per_block)))

    @property
    def block_bounds(self):
        """Output ranges ``(start, stop)`` of the blocks along this axis."""
        groups = range(0, len(self.starts), self.per_block)
        return [(self.owned[g][0], self.owned[min(g + self.per_block, len(self.starts)) - 1][1])
                for g in groups]

    @property
    def chunks(self):
        return tuple(stop - start for start, stop in self.block_bounds)

    def tiles_for_block(self, block, blend):
        """Indices of the tiles that contribute to output block ``block``."""
        lo, hi = self.block_bounds[block]
        if blend == "crop":
            return [i for i, (a, b) in enumerate(self.owned) if a < hi and b > lo and b > a]
        return [i for i, s in enumerate(self.starts) if s < hi and s + self.tile > lo]


@dataclass(frozen=True)
class BlockPlan:
    """Everything a task needs to compute one output block (picklable, small).

    All tuples hold one entry per axis; tile entries hold one item per contributing tile.
    """

    index: tuple
    bounds: tuple  # (lo, hi) of the output block
    region: tuple  # (lo, hi) of the input region; may pass the array's end (edge filled)
    tile_starts: tuple  # starts of the contributing tiles
    tile_owned: tuple  # output ranges those tiles own (crop)
    shape: tuple  # array shape
    tile: tuple
    halo: tuple
    blend: str
    last_start: tuple  # start of the last tile of each axis (it has no neighbour after it)
    pad_mode: str = "reflect"  # how the region is filled past the array's end

    @property
    def tile_count(self):
        """Distinct tiles (two owned ranges at an array's end may share one tile)."""
        return int(np.prod([len(set(s)) for s in self.tile_starts]))

    def tile_slices(self):
        """Slices of each tile inside the region array, in ``np.ndindex`` order."""
        counts = [len(s) for s in self.tile_starts]
        for position in np.ndindex(*counts):
            yield tuple(
                slice(starts[p] - lo, starts[p] - lo + t)
                for starts, p, (lo, _), t in zip(self.tile_starts, position, self.region, self.tile)
            )


def axis_weights(plan, axis, which, lo, hi):
    """Weight of contributing tile ``which`` along ``axis`` over output ``[lo, hi)``."""
    positions = np.arange(lo, hi)
    if plan.blend == "crop":
        a, b = plan.tile_owned[axis][which]
        return ((positions >= a) & (positions < b)).astype(np.float64)
    start, tile, halo = plan.tile_starts[axis][which], plan.tile[axis], plan.halo[axis]
    ramp = np.ones(hi - lo)
    if halo > 0:
        if start > 0:  # a neighbour tile exists before this one
            ramp = np.minimum(ramp, (positions - start + 0.5) / (2.0 * halo))
        if start < plan.last_start[axis]:  # and after it
            ramp = np.minimum(ramp, (start + tile - positions - 0.5) / (2.0 * halo))
    inside = (positions >= start) & (positions < start + tile)
    return np.where(inside, np.clip(ramp, 1e-3, 1.0), 0.0)


def merge_block(plan, tile_outputs):
    """Combine the tile outputs of a block into the block (the *merger*).

    Parameters
    ----------
    plan : BlockPlan
        The block.
    tile_outputs : ndarray, shape (ntiles, *tile)
        Outputs of the block's tiles, in the order of :meth:`BlockPlan.tile_slices`.

    Returns
    -------
    ndarray
        The block (``hi - lo`` voxels per axis), float32.
    """
    shape = tuple(hi - lo for lo, hi in plan.bounds)
    crop = plan.blend == "crop"
    total = np.zeros(shape, dtype=np.float32 if crop else np.float64)
    weight_sum = None if crop else np.zeros(shape, dtype=np.float64)
    counts = [len(s) for s in plan.tile_starts]
    for n, position in enumerate(np.ndindex(*counts)):
        out, tile, weights = _placement(plan, position, crop)
        if crop:  # copy the owned part of the tile's centre, nothing else
            total[out] = tile_outputs[n][tile]
        else:
            weight = (weights[0][:, None, None] * weights[1][None, :, None]
                      * weights[2][None, None, :])
            total[out] += weight * tile_outputs[n][tile]
            weight_sum[out] += weight
    if weight_sum is not None:
        total /= weight_sum
    return total.astype(np.float32, copy=False)


def _placement(plan, position, crop):
    """Output slices, tile slices and (blending) 1D weights of one tile in its block."""
    out_slices, tile_slices, weights = [], [], []
    for axis, ((lo, hi), p) in enumerate(zip(plan.bounds, position)):
        start = plan.tile_starts[axis][p]
        if crop:
            a, b = plan.tile_owned[axis][p]
            a, b = max(lo, a), min(hi, b)
        else:
            a, b = max(lo, start), min(hi, start + plan.tile[axis])
            weights.append(axis_weights(plan, axis, p, a, b))
        out_slices.append(slice(a - lo, b - lo))
        tile_slices.append(slice(a - start, b - start))
    return tuple(out_slices), tuple(tile_slices), weights


class TileLayout:
    """Tiles and output blocks over a whole array (the *splitter*).

    Parameters
    ----------
    shape : tuple of int
        Array shape (chan, y, x).
    tile, halo : tuple of int
        Tile size and halo per axis; ``tile > 2 * halo``.
    per_block : tuple of int
        Tiles per output block along each axis.
    blend : str
        ``"crop"`` or ``"linear"``.
    multiple : int or tuple of int, optional
        The network's down-sampling factor per axis (e.g. 4 in y and x for a 3-level
        U-Net): tiles start on its multiples.
    pad_mode : {"reflect", "replicate", "constant"}, optional
        How the network pads an input to ``multiple``; tiles reaching past the array's end
        are filled the same way. Reflection becomes replication on every axis when some
        axis is too short to reflect (as the network does).
    """

    def __init__(self, shape, tile, halo, per_block, blend, multiple=1, pad_mode="reflect"):
        self.shape = tuple(int(n) for n in shape)
        self.tile = tuple(int(t) for t in tile)
        self.halo = tuple(int(h) for h in halo)
        self.blend = blend
        multiples = (multiple,) * len(self.shape) if np.ndim(multiple) == 0 else multiple
        self.multiple = tuple(int(m) for m in multiples)
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode={pad_mode!r} is not one of {list(PAD_MODES)}")
        padded = [round_up(n, m) for n, m in zip(self.shape, self.multiple)]
        if pad_mode == "reflect" and any(p - n >= n for p, n in zip(padded, self.shape)):
            pad_mode = "replicate"
        self.pad_mode = pad_mode
        self.axes = [AxisTiles.build(n, t, h, k, m) for n, t, h, k, m in
                     zip(self.shape, self.tile, self.halo, per_block, self.multiple)]

    @property
    def chunks(self):
        """Output block sizes per axis (dask ``chunks``)."""
        return tuple(axis.chunks for axis in self.axes)

    @property
    def grid(self):
        """Number of output blocks per axis."""
        return tuple(len(c) for c in self.chunks)

    def plan(self, index):
        """The :class:`BlockPlan` of block ``index`` (a tuple of block numbers)."""
        bounds, starts, owned, region = [], [], [], []
        for axis, block in zip(self.axes, index):
            tiles = axis.tiles_for_block(block, self.blend)
            bounds.append(axis.block_bounds[block])
            starts.append(tuple(axis.starts[i] for i in tiles))
            owned.append(tuple(axis.owned[i] for i in tiles))
            region.append((axis.starts[tiles[0]], axis.starts[tiles[-1]] + axis.tile))
        return BlockPlan(tuple(index), tuple(bounds), tuple(region), tuple(starts), tuple(owned),
                         self.shape, self.tile, self.halo, self.blend,
                         tuple(axis.starts[-1] for axis in self.axes), self.pad_mode)

    def tile_count(self):
        """Tile evaluations for the whole array (tiles shared by blocks counted again)."""
        return sum(self.plan(index).tile_count for index in np.ndindex(*self.grid))
