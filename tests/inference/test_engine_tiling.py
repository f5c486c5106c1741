"""Tile geometry: reflection, ownership of the output, block plans and merging."""

import numpy as np
import pytest

from deepfocus_radio.inference.tiling import (
    AxisTiles,
    TileLayout,
    edge_indices,
    merge_block,
    reflect_indices,
    tile_grid,
)


@pytest.mark.parametrize("size", [1, 2, 5, 17])
def test_reflect_indices_match_numpy_pad(size):
    values = np.arange(size) * 10
    pad = 3 * size
    expected = np.pad(values, pad, mode="reflect") if size > 1 else np.zeros(size + 2 * pad)
    got = values[reflect_indices(np.arange(-pad, size + pad), size)]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size,tile,halo,multiple", [(40, 16, 4, 1), (41, 16, 3, 4), (9, 24, 8, 8),
                                                     (100, 32, 8, 8), (33, 10, 2, 1),
                                                     (160, 96, 0, 8), (48, 32, 8, 1), (1000, 32, 8, 8),
                                                     (161, 96, 2, 8), (200, 64, 24, 4)])
def test_owned_ranges_partition_the_axis_within_tile_cores(size, tile, halo, multiple):
    """Each voxel is owned by one tile, at least ``halo`` from that tile's inner borders;
    tiles stay inside the array rounded up to ``multiple`` and start on its multiples."""
    axis = AxisTiles.build(size, tile, halo, per_block=2, multiple=multiple)
    padded = -(-size // multiple) * multiple
    covered = np.zeros(size, dtype=int)
    for start, (lo, hi) in zip(axis.starts, axis.owned):
        covered[lo:hi] += 1
        assert start == 0 or start + halo <= lo
        assert start + tile >= padded or hi <= start + tile - halo
        assert 0 <= start and (start + tile <= padded or len(axis.starts) == 1)
        assert start % multiple == 0  # the pooling grid of the whole array
    np.testing.assert_array_equal(covered, 1)
    assert sum(axis.chunks) == size
    assert all(c == axis.chunks[0] for c in axis.chunks[:-1])  # a regular zarr chunk grid


def test_tiles_need_no_padding_before_the_array():
    """A (32, 160, 160) cube in (32, 96, 96) tiles with a halo of 8 (pooling factor 8): one
    tile in chan, two in y and x (0 and 64), split at 80 with context on both sides."""
    layout = TileLayout((32, 160, 160), (32, 96, 96), (8, 8, 8), (1, 1, 1), "crop", 8)
    assert [a.starts for a in layout.axes] == [(0,), (0, 64), (0, 64)]
    assert layout.axes[1].owned == ((0, 80), (80, 160))
    assert layout.tile_count() == 4


@pytest.mark.parametrize("tile,halo,multiple", [(96, 8, 8), (96, 4, 8), (32, 8, 1), (64, 24, 4),
                                                (32, 12, 8)])
def test_tile_grid_keeps_the_halo_on_both_sides_of_inner_tiles(tile, halo, multiple):
    stride, step = tile_grid(tile, halo, multiple)
    assert 0 < stride <= tile - 2 * halo and stride % step == 0
    assert step == multiple or (tile, halo, multiple) == (32, 12, 8)  # no aligned grid there


def test_two_tiles_when_their_overlap_holds_both_halos():
    """160 voxels in 96-voxel tiles with a halo of 16: tiles at 0 and 64 (not three), the
    boundary in the middle of their overlap, 16 voxels of context on each side."""
    axis = AxisTiles.build(160, 96, 16, per_block=1, multiple=8)
    assert axis.starts == (0, 64) and axis.owned == ((0, 80), (80, 160))
    assert len(AxisTiles.build(160, 96, 24, per_block=1, multiple=8).starts) == 3


def test_edge_indices_fill_past_the_end_like_torch_pad():
    import torch
    import torch.nn.functional as F

    values = torch.arange(5.0)[None, None]
    for mode in ("reflect", "replicate"):
        expected = F.pad(values, (0, 3), mode=mode)[0, 0].numpy()
        np.testing.assert_array_equal(values[0, 0].numpy()[edge_indices(np.arange(8), 5, mode)],
                                      expected)
    # reflection longer than the axis falls back to replication, as the U-Net does
    np.testing.assert_array_equal(edge_indices(np.arange(4), 2, "reflect"), [0, 1, 1, 1])


@pytest.mark.parametrize("blend", ["crop", "linear"])
def test_merging_identity_tiles_gives_back_the_array(blend, rng):
    data = rng.normal(size=(9, 23, 30))
    layout = TileLayout(data.shape, (6, 10, 12), (1, 2, 3), (1, 2, 2), blend)
    result = np.empty_like(data)
    for index in np.ndindex(*layout.grid):
        plan = layout.plan(index)
        region_index = [edge_indices(np.arange(lo, hi), n, plan.pad_mode)
                        for (lo, hi), n in zip(plan.region, data.shape)]
        region = data[np.ix_(*region_index)]
        tiles = np.stack([region[s] for s in plan.tile_slices()])
        block = merge_block(plan, tiles)
        result[tuple(slice(lo, hi) for lo, hi in plan.bounds)] = block
    np.testing.assert_allclose(result, data, rtol=1e-6)


def test_linear_blend_computes_neighbour_tiles_again():
    shape, tile, halo = (8, 64, 64), (8, 24, 24), (0, 4, 4)
    crop = TileLayout(shape, tile, halo, (1, 2, 2), "crop")
    linear = TileLayout(shape, tile, halo, (1, 2, 2), "linear")
    assert crop.tile_count() == 16  # 4 x 4 tiles, each computed once
    assert linear.tile_count() > crop.tile_count()
