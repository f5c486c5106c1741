import numpy as np
import pytest
import torch
from astropy.io import fits

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.training.config import resolve_config
from deepfocus_radio.training.data import (
    DeconvolverDataset,
    NoiseCache,
    SourceDataset,
    find_cubes,
    open_cube_array,
    read_params,
)
from deepfocus_radio.training.prepare import build_datasets, model_config_for, split_dir
from deepfocus_radio.training.scaling import TargetScaler

from .helpers import SHAPE, cube_header


def test_find_cubes_pairs_by_trailing_id(handmade_root):
    train = handmade_root / "Train"
    (train / "dirty_cube_9.fits").write_bytes((train / "dirty_cube_1.fits").read_bytes())
    records = find_cubes(train)
    assert [r.cube_id for r in records] == ["1", "2", "3"]  # 9 has no clean cube
    assert records[0].dirty.name == "dirty_cube_1.fits"
    assert records[0].clean.name == "clean_cube_1.fits"
    assert records[0].tclean is None and records[0].shape == SHAPE
    assert [r.cube_id for r in find_cubes(train, require_clean=False)] == ["1", "2", "3", "9"]
    assert find_cubes(handmade_root / "Test")[0].tclean.name == "tclean_cube_6.fits"


def test_open_cube_array_drops_stokes_and_is_lazy(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    fits.PrimaryHDU(data).writeto(tmp_path / "dirty_cube_1.fits")
    array = open_cube_array(tmp_path / "dirty_cube_1.fits")
    assert array.shape == (2, 3, 4) and isinstance(array.base, np.memmap) or array.base is not None
    np.testing.assert_array_equal(array, data[0])
    fits.PrimaryHDU(np.zeros((2, 2, 2, 3, 4), np.float32)).writeto(tmp_path / "five.fits")
    with pytest.raises(InputDataError, match="expected a 2D, 3D or 4D cube"):
        open_cube_array(tmp_path / "five.fits")


def test_read_params_aliases_and_missing_columns(tmp_path):
    folder = tmp_path / "Train"
    folder.mkdir()
    (folder / "train_params.csv").write_text("ID,x,y,z,fwhm_x,fwhm_y\n1,3,4,5,2.0,1.0\n")
    table = read_params(folder)
    assert table["fwhm_major"][0] == 2.0 and table["fwhm_minor"][0] == 1.0
    assert table["ID"][0] == "1"
    with pytest.raises(InputDataError, match="lacks the column.*flux"):
        read_params(folder, required=["flux"])
    (folder / "other_params.csv").write_text("ID,x,y,z\n")
    with pytest.raises(InputDataError, match="expected one '\\*_params.csv' file, found 2"):
        read_params(folder)


def test_noise_cache_uses_dirty_channel_noise(handmade_root):
    record = find_cubes(handmade_root / "Train")[0]
    expected = channel_noise(open_cube_array(record.dirty))
    np.testing.assert_allclose(NoiseCache("channel_noise").factors(record), expected, rtol=1e-6)
    cube = NoiseCache("cube_noise").factors(record)
    assert np.all(cube == np.float32(np.median(expected)))
    assert np.all(NoiseCache("fixed", scale=0.5).factors(record) == 0.5)
    assert np.all(NoiseCache("none").factors(record) == 1.0)


def test_noise_cache_rejects_noiseless_cube(tmp_path):
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(tmp_path / "dirty_cube_1.fits")
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(tmp_path / "clean_cube_1.fits")
    record = find_cubes(tmp_path)[0]
    with pytest.raises(InputDataError, match="noise is zero or undefined"):
        NoiseCache("channel_noise").factors(record)


def test_deconvolver_crops_are_noise_normalized_and_reproducible(handmade_root):
    records = find_cubes(handmade_root / "Train")
    noise = NoiseCache("channel_noise")
    dataset = DeconvolverDataset(records, crop_size=(16, 32, 32), noise=noise,
                                 samples_per_cube=2, seed=3)
    assert len(dataset) == 6
    dirty, clean = dataset[2]
    assert dirty.shape == clean.shape == (1, 16, 32, 32) and dirty.dtype == torch.float32
    record = records[1]
    factors = noise.factors(record)[:, None, None]
    expected_dirty = np.asarray(open_cube_array(record.dirty), np.float32) / factors
    expected_clean = np.asarray(open_cube_array(record.clean), np.float32) / factors
    np.testing.assert_allclose(dirty[0].numpy(), expected_dirty, rtol=1e-6)
    np.testing.assert_allclose(clean[0].numpy(), expected_clean, rtol=1e-6)
    assert 0.7 < float(np.std(dirty[0, :, :4, :4].numpy())) < 1.5  # noise units


def test_deconvolver_random_crops_epochs_and_2d(handmade_root):
    records = find_cubes(handmade_root / "Train")
    dataset = DeconvolverDataset(records, crop_size=(4, 8, 8), noise=NoiseCache("none"),
                                 augment=True, seed=1)
    first = dataset[0][0]
    assert torch.equal(first, dataset[0][0])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0][0])
    flat = DeconvolverDataset(records, crop_size=(8, 8), noise=NoiseCache("none"), seed=1)
    dirty, clean = flat[1]
    assert dirty.shape == clean.shape == (1, 8, 8)
    with pytest.raises(ConfigError, match="data.crop_size \\[4, 64, 64\\] is larger"):
        DeconvolverDataset(records, crop_size=(4, 64, 64), noise=NoiseCache("none"))
    with pytest.raises(ConfigError, match="data set is empty"):
        DeconvolverDataset([], crop_size=(4, 8, 8), noise=NoiseCache("none"))


def test_augmented_pairs_stay_aligned(handmade_root):
    records = find_cubes(handmade_root / "Train")
    plain = DeconvolverDataset(records, crop_size=(16, 32, 32), noise=NoiseCache("none"), seed=5)
    augmented = DeconvolverDataset(records, crop_size=(16, 32, 32), noise=NoiseCache("none"),
                                   augment=True, seed=5)
    changed = 0
    for index in range(3):
        dirty, clean = augmented[index]
        base_dirty, base_clean = plain[index]
        changed += not torch.equal(dirty, base_dirty)
        # the brightest clean pixel moves with the dirty one: same transform for both
        peak = np.unravel_index(int(torch.argmax(clean)), clean.shape)
        base_peak = np.unravel_index(int(torch.argmax(base_clean)), base_clean.shape)
        assert float(clean[peak]) == pytest.approx(float(base_clean[base_peak]))
        assert float(dirty[peak]) == pytest.approx(float(base_dirty.flatten()[
            np.ravel_multi_index(base_peak, base_clean.shape)]))
    assert changed >= 1


def test_source_dataset_stamps_targets_and_classes(handmade_root):
    records = find_cubes(handmade_root / "Train")
    table = read_params(handmade_root / "Train")
    noise = NoiseCache("channel_noise")
    dataset = SourceDataset(records, table, cutout_size=(9, 9), noise=noise,
                            targets=["flux", "x", "pa"], line_width=1)
    stamp, target = dataset[0]
    row = table[0]
    assert stamp.shape == (1, 9, 9)
    assert target.tolist() == pytest.approx([row["flux"], 4.0, 30.0])
    record = dataset.by_id[row["ID"]]
    cube = np.asarray(open_cube_array(record.dirty), np.float32)
    z, y, x = int(row["z"]), int(row["y"]), int(row["x"])
    factors = noise.factors(record)[z - 1:z + 2, None, None]
    expected = (cube[z - 1:z + 2, y - 4:y + 5, x - 4:x + 5] / factors).sum(axis=0)
    np.testing.assert_allclose(stamp[0].numpy(), expected, rtol=1e-5)
    assert dataset.cutout_origin(0) == (z - 1, y - 4, x - 4)
    classes = SourceDataset(records, table, cutout_size=(4, 8, 8), noise=noise,
                            classes=["bright", "faint"])
    cube_cut, label = classes[1]
    assert cube_cut.shape == (1, 4, 8, 8) and label.dtype == torch.int64
    assert ["bright", "faint"][int(label)] == table["class"][1]


def test_source_dataset_edges_and_bad_ids(handmade_root, tmp_path):
    records = find_cubes(handmade_root / "Train")
    table = read_params(handmade_root / "Train")
    table["x"][0] = 0  # cutout runs off the cube: zero padding
    dataset = SourceDataset(records, table, cutout_size=(8, 8), noise=NoiseCache("none"),
                            targets=["y"])
    stamp, _ = dataset[0]
    assert stamp.shape == (1, 8, 8) and np.all(stamp[0, :, :4].numpy() == 0)
    table["ID"] = ["42"] + list(table["ID"][1:])
    with pytest.raises(InputDataError, match="cube IDs without a cube file: 42"):
        SourceDataset(records, table, cutout_size=(8, 8), noise=NoiseCache("none"))
    with pytest.raises(ConfigError, match="params CSV lists no source"):
        SourceDataset(records, table[:0], cutout_size=(8, 8), noise=NoiseCache("none"))


def test_target_scaler_roundtrip_and_errors():
    values = np.array([[1.0, 10.0, 5.0], [10.0, 20.0, 6.0], [100.0, 30.0, 7.0]])
    scaler = TargetScaler.fit(values, ["flux", "pa", "x"], {"flux": "log", "x": "none"})
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    np.testing.assert_allclose(scaled[:, 2], values[:, 2])
    np.testing.assert_allclose(scaler.inverse(scaled), values)
    again = TargetScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(again.inverse(scaled), values)
    with pytest.raises(InputDataError, match="target 'flux' has values <= 0"):
        TargetScaler.fit(np.array([[0.0], [1.0]]), ["flux"], {"flux": "log"})


def regressor_config(root, **data):
    return resolve_config({"model": {"dmode": "regressor", "arch": "resnet", "spatial_dims": 2},
                           "data": {"root": str(root), "targets": ["flux"],
                                    "cutout_size": [8, 8], **data}})


def test_build_datasets_checks_folders_and_columns(handmade_root, tmp_path):
    bundle = build_datasets(regressor_config(handmade_root, target_scaling={"flux": "log"}))
    assert set(bundle.datasets) == {"Train", "Validation"}
    assert bundle.scaler.kinds == ["log"]
    assert model_config_for(regressor_config(handmade_root), bundle)["out_channels"] == 1
    with pytest.raises(ConfigError, match="'data.root' names .* not a directory"):
        build_datasets(regressor_config(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="has no Test/ folder"):
        split_dir(regressor_config(tmp_path), "Test")
    with pytest.raises(InputDataError, match="lacks the column.*bogus.*requested by data.targets"):
        build_datasets(regressor_config(handmade_root, targets=["bogus"]))
    empty = tmp_path / "empty"
    (empty / "Train").mkdir(parents=True)
    (empty / "Validation").mkdir()
    with pytest.raises(ConfigError, match="split Train in data.root is empty"):
        build_datasets(regressor_config(empty))


def test_classifier_classes_and_out_channels(handmade_root):
    config = resolve_config({"model": {"dmode": "classifier", "arch": "resnet",
                                       "spatial_dims": 2, "out_channels": 3},
                             "data": {"root": str(handmade_root), "cutout_size": [8, 8]}})
    bundle = build_datasets(config)
    assert bundle.classes == ["bright", "faint"]
    with pytest.raises(ConfigError, match="'model.out_channels' is 3 but .* 2 classes"):
        model_config_for(config, bundle)


def test_handmade_header_is_valid():
    header = cube_header(SHAPE)
    assert header["BMAJ"] > header["BMIN"]


def test_blank_channels_are_divided_by_one_and_fed_as_zero(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 0.5, (3, 8, 8)).astype(np.float32)
    data[1] = np.nan  # a blanked channel
    fits.PrimaryHDU(data).writeto(tmp_path / "dirty_cube_1.fits")
    fits.PrimaryHDU(np.nan_to_num(data)).writeto(tmp_path / "clean_cube_1.fits")
    record = find_cubes(tmp_path)[0]
    factors = NoiseCache("channel_noise").factors(record)
    assert factors[1] == 1.0 and 0.3 < factors[0] < 0.8
    dataset = DeconvolverDataset([record], crop_size=(3, 8, 8), noise=NoiseCache("none"))
    dirty, _ = dataset[0]
    assert torch.isfinite(dirty).all() and torch.all(dirty[0, 1] == 0)


def test_datasets_pickle_without_their_memory_maps(handmade_root):
    import pickle

    records = find_cubes(handmade_root / "Train")
    dataset = DeconvolverDataset(records, crop_size=(4, 8, 8), noise=NoiseCache("none"), seed=2)
    first = dataset[0]
    assert dataset._arrays  # opened lazily on first use
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._arrays == {}
    again = copy[0]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_augmented_cutouts_move_positions_and_angles(handmade_root):
    records = find_cubes(handmade_root / "Train")
    table = read_params(handmade_root / "Train")
    dataset = SourceDataset(records, table, cutout_size=(11, 11), noise=NoiseCache("none"),
                            targets=["x", "y", "pa"], input_kind="clean", augment=True,
                            line_width=1, seed=4)
    angles = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            stamp, target = dataset[index]
            x, y, pa = target.tolist()
            peak_y, peak_x = np.unravel_index(int(torch.argmax(stamp[0])), stamp[0].shape)
            assert (peak_x, peak_y) == (round(x), round(y))  # point sources: peak at (x, y)
            assert pa in (30.0, 150.0, 120.0, 60.0)
            angles.add(pa)
    assert len(angles) > 1
