"""predict_tiled: tiled equals whole, NaNs, noise normalization, zarr output and resume, errors."""

import dask.array as da
import numpy as np
import pytest
import torch
from engine_helpers import conv_stack, whole_pass

from deepfocus_radio.exceptions import (
    ConfigError,
    InputDataError,
    ModelMismatchError,
    OutputExistsError,
    TileShrunkWarning,
)
from deepfocus_radio.inference import clear_model_cache, predict_tiled
from deepfocus_radio.inference.store import DONE_ARRAY, partial_path
from deepfocus_radio.noise import channel_noise


def test_tiled_equals_whole_for_receptive_field_within_halo(cube):
    model = conv_stack(layers=3)  # receptive field radius 3 voxels
    halo = (3, 3, 3)
    expected = whole_pass(model, cube, channel_noise(cube))
    result = predict_tiled(cube, model, tile=(8, 14, 16), halo=halo, batch_size=3, device="cpu",
                           progress=False)
    assert isinstance(result, np.ndarray) and result.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(result), np.isnan(cube))  # NaN restored
    finite = np.isfinite(cube)
    scale = np.ptp(expected[finite])
    assert np.max(np.abs(result - expected)[finite]) < 1e-5 * scale


def test_too_small_halo_is_not_exact(cube):
    """The test above can fail: with a halo below the receptive field, tiles differ."""
    model = conv_stack(layers=3)
    expected = whole_pass(model, cube, channel_noise(cube))
    result = predict_tiled(cube, model, tile=(8, 14, 16), halo=(1, 1, 1), progress=False)
    assert np.nanmax(np.abs(result - expected)) > 1e-3


def test_dask_input_gives_lazy_output_equal_to_numpy(cube):
    model = conv_stack(layers=2)
    lazy = predict_tiled(da.from_array(cube, chunks=(5, 13, 50)), model, tile=(8, 16, 16),
                         halo=(2, 2, 2), progress=False)
    assert isinstance(lazy, da.Array) and lazy.shape == cube.shape
    eager = predict_tiled(cube, model, tile=(8, 16, 16), halo=(2, 2, 2), progress=False)
    np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-6, equal_nan=True)


def test_default_like_unet_within_1e3_of_whole_with_halo_24(rng):
    """A 3-level U-Net (build_model defaults, narrower): its receptive field (radius ~22
    voxels in y/x) fits a halo of 24, so tiling costs < 1e-3 of the dynamic range."""
    from deepfocus_radio.models import build_model

    model = build_model({"arch": "unet", "dmode": "deconvolver", "spatial_dims": 3,
                         "block_sizes": [4, 8, 16]}, seed=0).eval()
    data = rng.normal(size=(16, 80, 80)).astype(np.float32)
    data[6:9, 30:36, 40:46] += 10.0
    halo = (4, 24, 24)
    expected = whole_pass(model, data, channel_noise(data))
    result = predict_tiled(data, model, tile=(16, 64, 64), halo=halo, device="cpu",
                           progress=False)
    deviation = np.max(np.abs(result - expected)) / np.ptp(expected)
    assert deviation < 1e-3


@pytest.mark.parametrize("planes", [False, True])
def test_2d_model_on_images_and_plane_by_plane(cube, planes):
    model = conv_stack(spatial_dims=2, layers=2)
    data = cube if planes else cube[4]
    noise = channel_noise(cube if planes else cube[4:5])
    expected = whole_pass(model, data if planes else data[None], noise,
                          spatial_dims=2)
    result = predict_tiled(data, model, tile=(12, 12), halo=(2, 2), progress=False)
    assert result.shape == data.shape
    np.testing.assert_allclose(result, expected if planes else expected[0], atol=1e-5,
                               equal_nan=True)


def test_noise_normalization_is_global_and_can_be_given(cube):
    model = conv_stack(layers=2)
    given = np.linspace(0.5, 2.0, cube.shape[0])
    expected = whole_pass(model, cube, given)
    result = predict_tiled(cube, model, tile=(6, 20, 20), halo=(2, 2, 2), noise=given,
                           device="cpu", progress=False)
    np.testing.assert_allclose(result, expected, atol=1e-5, equal_nan=True)
    # normalization makes a nonlinear network scale with its input
    scaled = predict_tiled(cube * 1000, model, tile=(6, 20, 20), halo=(2, 2, 2), device="cpu",
                           progress=False)
    plain = predict_tiled(cube, model, tile=(6, 20, 20), halo=(2, 2, 2), device="cpu",
                          progress=False)
    np.testing.assert_allclose(scaled, plain * 1000, rtol=1e-4, atol=1e-3, equal_nan=True)
    with pytest.raises(InputDataError, match="noise must be"):
        predict_tiled(cube, model, tile=(6, 20, 20), halo=(2, 2, 2), noise=[1.0, 2.0],
                      progress=False)


def test_linear_blend_exact_for_pointwise_model(cube):
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 1), torch.nn.Tanh()).eval()
    crop = predict_tiled(cube, model, tile=(6, 16, 16), halo=(1, 3, 3), progress=False)
    linear = predict_tiled(cube, model, tile=(6, 16, 16), halo=(1, 3, 3), blend="linear",
                           progress=False)
    np.testing.assert_allclose(linear, crop, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_tile_larger_than_cube_is_shrunk_with_warning(cube):
    model = conv_stack(layers=2)
    with pytest.warns(TileShrunkWarning, match=r"using tile=\(14, 40, 44\)"):
        result = predict_tiled(cube, model, tile=(64, 64, 64), halo=(2, 2, 2), device="cpu",
                               progress=False)
    expected = whole_pass(model, cube, channel_noise(cube))
    np.testing.assert_allclose(result, expected, atol=1e-5, equal_nan=True)


class _Wide(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_model_mismatch_errors(cube):
    two_in = torch.nn.Sequential(torch.nn.Conv3d(2, 1, 3, padding=1))
    with pytest.raises(ModelMismatchError, match="in_channels=2"):
        predict_tiled(cube, two_in, progress=False)
    with pytest.raises(ModelMismatchError, match="spatial_dims=3 and needs a \\(chan, y, x\\)"):
        predict_tiled(cube[0], conv_stack(layers=1), progress=False)
    with pytest.raises(ModelMismatchError, match="out_channels=2"):
        predict_tiled(cube, _Wide(2), progress=False)
    shrinking = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3))  # no padding: output smaller
    with pytest.raises(ModelMismatchError, match="maps a tile of shape"):
        predict_tiled(cube, shrinking, tile=(8, 16, 16), halo=(1, 1, 1), progress=False)
    with pytest.raises(ModelMismatchError, match="no 'config' and no Conv2d/Conv3d"):
        predict_tiled(cube, torch.nn.Tanh(), progress=False)
    from deepfocus_radio.models import build_model

    regressor = build_model({"arch": "vgg", "dmode": "regressor", "spatial_dims": 3,
                             "in_channels": 1, "out_channels": 1})
    with pytest.raises(ModelMismatchError, match="dmode='regressor'"):
        predict_tiled(cube, regressor, progress=False)


def test_default_halo_is_capped_to_a_quarter_of_the_tile(cube):
    from deepfocus_radio.inference import resolve_tiling

    model = conv_stack(layers=1)
    settings = resolve_tiling(cube.shape, model, 3, tile=(8, 16, 20))
    assert settings.halo == (2, 4, 5)
    assert resolve_tiling((64, 256, 256), model, 3).halo == (8, 24, 24)


def test_tiling_setting_errors(cube):
    model = conv_stack(layers=1)
    with pytest.raises(ConfigError, match="tile must be larger than twice the halo"):
        predict_tiled(cube, model, tile=(8, 8, 8), halo=(4, 4, 4), progress=False)
    with pytest.raises(ConfigError, match="blend='gaussian'"):
        predict_tiled(cube, model, blend="gaussian", progress=False)
    with pytest.raises(ConfigError, match="batch_size=0"):
        predict_tiled(cube, model, batch_size=0, progress=False)
    with pytest.raises(ConfigError, match="tile=\\(8, 16\\) must be"):
        predict_tiled(cube, model, tile=(8, 16), progress=False)
    with pytest.raises(ConfigError, match="device='tpu9'"):
        predict_tiled(cube, model, device="tpu9", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            predict_tiled(cube, model, device="cuda", progress=False)
    with pytest.raises(ConfigError, match="channel tile must be 1"):
        predict_tiled(cube, conv_stack(spatial_dims=2, layers=1), tile=(4, 16, 16),
                      progress=False)


def test_zarr_output_refuses_to_overwrite_and_progress_bar(cube, tmp_path, capsys):
    model = conv_stack(layers=2)
    out = tmp_path / "pred.zarr"
    lazy = predict_tiled(cube, model, tile=(8, 16, 16), halo=(2, 2, 2), out=out, progress=True)
    assert "predict" in capsys.readouterr().err
    eager = predict_tiled(cube, model, tile=(8, 16, 16), halo=(2, 2, 2), progress=False)
    np.testing.assert_array_equal(np.asarray(lazy), eager)
    assert not partial_path(out).exists()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        predict_tiled(cube, model, out=out, progress=False)
    predict_tiled(cube * 2, model, tile=(8, 16, 16), halo=(2, 2, 2), out=out, overwrite=True,
                  progress=False)


class _Killed(Exception):
    pass


class _Counting(torch.nn.Sequential):
    """Same weights and layers as a conv stack; counts (and can stop) forward passes."""

    calls = 0
    stop_after = None

    def forward(self, x):
        type(self).calls += 1
        if self.stop_after is not None and type(self).calls > self.stop_after:
            raise _Killed("simulated kill")
        return super().forward(x)


def test_resume_skips_written_blocks_and_gives_the_same_result(cube, tmp_path):
    reference_model = conv_stack(layers=2)
    model = _Counting(*reference_model)
    options = dict(tile=(8, 16, 16), halo=(2, 2, 2), batch_size=1, progress=False, num_workers=1)
    full = predict_tiled(cube, reference_model, **options)
    out = tmp_path / "resume.zarr"
    _Counting.calls, _Counting.stop_after = 0, 5
    with pytest.raises(_Killed):
        predict_tiled(cube, model, out=out, **options)
    assert not out.exists() and partial_path(out).exists()
    import zarr

    flags = zarr.open_array(partial_path(out) / DONE_ARRAY, mode="r")[...]
    written, total = int(flags.sum()), flags.size
    assert 0 < written < total
    clear_model_cache()
    _Counting.calls, _Counting.stop_after = 0, None
    resumed = predict_tiled(cube, model, out=out, **options)
    assert _Counting.calls == total - written  # one tile per block here: only the rest ran
    np.testing.assert_array_equal(np.asarray(resumed), full)
    assert DONE_ARRAY not in zarr.open_group(out, mode="r")


def test_shipped_model_tiled_equals_whole_at_the_defaults(rng):
    """The shipped model at the default tile and halo on a cube that is not a multiple of
    anything: within 1e-4 of the single whole-cube pass (measured ~1e-6)."""
    from deepfocus_radio.models import load_model

    model = load_model("alma", device="cpu")
    data = rng.normal(size=(37, 130, 150)).astype(np.float32)
    data[12:18, 60:70, 100:112] += 8.0  # a source on a seam between tiles
    expected = whole_pass(model, data, channel_noise(data))
    result = predict_tiled(data, model, device="cpu", progress=False)
    assert np.max(np.abs(result - expected)) / np.ptp(expected) < 1e-4


def test_shipped_model_card_sets_the_default_tiling():
    """A card's ``tiling`` is the default for that model; explicit settings still win."""
    import copy
    import dataclasses

    from deepfocus_radio.inference import resolve_tiling
    from deepfocus_radio.models import load_model

    model = load_model("alma")
    assert resolve_tiling((64, 256, 256), model, 3).tile == tuple(model.card.tiling["tile"])
    changed = copy.deepcopy(model)
    changed.card = dataclasses.replace(model.card, tiling={"tile": [16, 64, 64],
                                                           "halo": [4, 16, 16]})
    settings = resolve_tiling((64, 256, 256), changed, 3)
    assert (settings.tile, settings.halo) == ((16, 64, 64), (4, 16, 16))
    assert resolve_tiling((64, 256, 256), changed, 3, tile=(32, 96, 96)).tile == (32, 96, 96)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_shipped_model_on_cuda_matches_cpu():
    """The shipped model on CUDA (float32, TF32 convolutions allowed by torch's defaults)
    and with bfloat16 autocast, against the CPU, in units of the cube's noise."""
    from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube

    sim = simulate_alma_cube(AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24)),
                             seed=5)
    noise = channel_noise(sim.dirty)
    cpu = predict_tiled(sim.dirty, "alma", device="cpu", progress=False)
    gpu = predict_tiled(sim.dirty, "alma", device="cuda", progress=False)
    amp = predict_tiled(sim.dirty, "alma", device="cuda", amp=True, progress=False)

    def in_noise(output):
        return np.abs(output - cpu) / noise[:, None, None]

    assert gpu.dtype == amp.dtype == np.float32 and gpu.shape == cpu.shape
    assert in_noise(gpu).max() < 0.05, in_noise(gpu).max()
    assert in_noise(amp).max() < 0.5, in_noise(amp).max()
    assert np.median(in_noise(amp)) < 0.02
