"""Tile geometry: reflection, ownership of the output, block plans and merging."""

import numpy as np
import pytest

from deepfocus_radio.inference.tiling import AxisTiles, TileLayout, merge_block, reflect_indices


@pytest.mark.parametrize("size", [1, 2, 5, 17])
def test_reflect_indices_match_numpy_pad(size):
    values = np.arange(size) * 10
    pad = 3 * size
    expected = np.pad(values, pad, mode="reflect") if size > 1 else np.zeros(size + 2 * pad)
    got = values[reflect_indices(np.arange(-pad, size + pad), size)]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size,tile,halo,multiple", [(40, 16, 4, 1), (41, 16, 3, 4), (9, 24, 8, 8),
                                                     (100, 32, 8, 8), (33, 10, 2, 1)])
def test_owned_ranges_partition_the_axis_within_tile_cores(size, tile, halo, multiple):
    axis = AxisTiles.build(size, tile, halo, per_block=2, multiple=multiple)
    covered = np.zeros(size, dtype=int)
    for start, (lo, hi) in zip(axis.starts, axis.owned):
        covered[lo:hi] += 1
        assert start + halo <= lo and hi <= start + tile - halo or len(axis.starts) == 1
        if multiple > 1 and len(axis.starts) > 1:
            assert (start + halo) % multiple == 0  # the pooling grid of the whole array
    np.testing.assert_array_equal(covered, 1)
    assert sum(axis.chunks) == size
    assert all(c == axis.chunks[0] for c in axis.chunks[:-1])  # a regular zarr chunk grid


@pytest.mark.parametrize("blend", ["crop", "linear"])
def test_merging_identity_tiles_gives_back_the_array(blend, rng):
    data = rng.normal(size=(9, 23, 30))
    layout = TileLayout(data.shape, (6, 10, 12), (1, 2, 3), (1, 2, 2), blend)
    result = np.empty_like(data)
    for index in np.ndindex(*layout.grid):
        plan = layout.plan(index)
        region_index = [reflect_indices(np.arange(lo, hi), n)
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
