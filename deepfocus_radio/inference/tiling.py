"""Tile geometry: where the tiles go, which block of the output each one feeds, and how.

The shape follows MONAI's split inference (a *splitter* placing windows, a *merger*
aggregating them) but works per output block, so a dask task only ever holds one block.

Along each axis of length ``S``, tiles of size ``T`` with a halo ``H`` have a valid centre
(core) of ``C = T - 2H`` voxels. Tile ``i`` starts at ``i*C - H`` (reflect padding supplies
the voxels outside the cube) and *owns* the output ``[i*C, (i+1)*C)``; the last tile is
shifted back so that its core ends at ``S``, so no tile is mostly padding. Output blocks
(dask chunks, zarr chunks) group ``k`` consecutive tiles per axis.

Two ways to reconcile overlaps (``blend``):

- ``"crop"``: each voxel comes from the one tile that owns it (the centre of its tile, at
  least ``H`` voxels from the tile's border). For a network whose receptive field fits in
  the halo this equals the whole-cube pass exactly, and no tile is computed twice.
- ``"linear"``: tiles are averaged with weights ramping linearly over their halos (like
  MONAI's blending); it smooths seams when the receptive field exceeds the halo, at the
  cost of computing the neighbouring tiles of every block again.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["BLEND_MODES", "AxisTiles", "BlockPlan", "TileLayout", "axis_weights", "merge_block",
           "reflect_indices"]

BLEND_MODES = ("crop", "linear")


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
        """Tiles for an axis; with ``multiple`` > 1, every tile starts ``halo`` voxels before
        a multiple of ``multiple`` so that a network's pooling grid is the same in every
        tile as in the whole-array pass."""
        core = tile - 2 * halo
        if core >= size:
            return cls(size, tile, halo, (-halo,), ((0, size),), 1)
        stride = (core // multiple) * multiple or core
        count = 0
        while count * stride + core < size:
            count += 1
        last = -(-(size - core) // multiple) * multiple if stride % multiple == 0 else size - core
        starts = [i * stride - halo for i in range(count)] + [last - halo]
        owned = [(i * stride, (i + 1) * stride) for i in range(count)]
        owned.append((count * stride, size))
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
    region: tuple  # (lo, hi) of the input region, in unreflected coordinates
    tile_starts: tuple  # starts of the contributing tiles
    tile_owned: tuple  # output ranges those tiles own (crop)
    shape: tuple  # array shape
    tile: tuple
    halo: tuple
    blend: str

    @property
    def tile_count(self):
        return int(np.prod([len(s) for s in self.tile_starts]))

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
        if start > -halo:  # a neighbour tile exists before this one
            ramp = np.minimum(ramp, (positions - start + 0.5) / (2.0 * halo))
        if start + tile < plan.shape[axis] + halo:  # and after it
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
    multiple : int, optional
        Tile starts are aligned (after the halo) on multiples of this (the network's total
        down-sampling factor, e.g. 4 for a 3-stage U-Net).
    """

    def __init__(self, shape, tile, halo, per_block, blend, multiple=1):
        self.shape = tuple(int(n) for n in shape)
        self.tile = tuple(int(t) for t in tile)
        self.halo = tuple(int(h) for h in halo)
        self.blend = blend
        self.axes = [AxisTiles.build(n, t, h, k, multiple)
                     for n, t, h, k in zip(self.shape, self.tile, self.halo, per_block)]

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
                         self.shape, self.tile, self.halo, self.blend)

    def tile_count(self):
        """Tile evaluations for the whole array (tiles shared by blocks counted again)."""
        return sum(self.plan(index).tile_count for index in np.ndindex(*self.grid))
