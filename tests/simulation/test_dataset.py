"""simulate_dataset and the ``deepfocus simulate`` command."""

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable, Table

from deepfocus_radio.cli.main import main
from deepfocus_radio.cli.simulate import load_config_file
from deepfocus_radio.exceptions import ConfigError, InputDataError, OutputExistsError
from deepfocus_radio.simulation import simulate_alma_cube, simulate_dataset
from deepfocus_radio.simulation.dataset import cube_seed
from deepfocus_radio.simulation.quicklook import save_quicklook

TINY = {"image_shape": [24, 24], "n_channels_range": [6, 8], "n_sources_range": [1, 3]}


def test_dataset_layout_params_and_truth(tmp_path):
    root = simulate_dataset(tmp_path / "ds", n_train=2, n_valid=1, n_test=1, config=TINY, seed=4, progress=False)
    assert root == tmp_path / "ds"
    for split, prefix, count in (("Train", "train", 2), ("Validation", "valid", 1), ("Test", "test", 1)):
        folder = root / split
        for index in range(count):
            for name in ("dirty", "clean", "psf", "sky"):
                assert (folder / f"{name}_cube_{index}.fits").is_file()
        params = Table.read(folder / f"{prefix}_params.csv", format="ascii.csv")
        for column in ("ID", "x", "y", "z", "flux", "peak", "fwhm_major", "fwhm_minor", "pa", "fwhm_z", "snr",
                       "ra", "dec", "freq", "class"):
            assert column in params.colnames
        assert set(params["class"]) <= {"point", "extended"}
        assert set(params["ID"]) == set(range(count))
        truth = QTable.read(folder / "truth.ecsv")
        assert len(truth) == len(params)
        assert list(truth["id"]) == list(range(1, len(truth) + 1))
        assert truth["flux"].unit == u.Jy * u.km / u.s
        np.testing.assert_allclose(truth["flux"].value, params["flux"])
    # Each cube is the one its derived seed makes.
    again = simulate_alma_cube(TINY, seed=cube_seed(4, 0, 1))
    np.testing.assert_array_equal(fits.getdata(root / "Train" / "dirty_cube_1.fits"), again.dirty)
    assert json.loads((root / "simulation.json").read_text())["seed"] == 4
    assert not list(root.rglob("*.tmp*"))


def test_cube_seeds_differ_by_split_and_index():
    seeds = {cube_seed(0, split, index) for split in range(3) for index in range(5)}
    assert len(seeds) == 15
    assert cube_seed(0, 1, 2) == cube_seed(0, 1, 2) != cube_seed(1, 1, 2)


def test_an_interrupted_dataset_resumes(tmp_path):
    root = simulate_dataset(tmp_path, n_train=2, n_valid=0, n_test=0, config=TINY, seed=1, progress=False)
    kept = (root / "Train" / "dirty_cube_0.fits").stat().st_mtime_ns
    original = fits.getdata(root / "Train" / "clean_cube_1.fits")
    (root / "Train" / ".rows" / "1_truth.ecsv").unlink()  # as if stopped while making cube 1
    (root / "Train" / "train_params.csv").unlink()
    simulate_dataset(tmp_path, n_train=2, n_valid=0, n_test=0, config=TINY, seed=1, progress=False)
    assert (root / "Train" / "dirty_cube_0.fits").stat().st_mtime_ns == kept
    np.testing.assert_array_equal(fits.getdata(root / "Train" / "clean_cube_1.fits"), original)
    (root / "Train" / "psf_cube_0.fits").unlink()  # a lost product is made again
    simulate_dataset(tmp_path, n_train=2, n_valid=0, n_test=0, config=TINY, seed=1, progress=False)
    assert (root / "Train" / "psf_cube_0.fits").is_file()
    params = Table.read(root / "Train" / "train_params.csv", format="ascii.csv")
    assert set(params["ID"]) == {0, 1}
    # An empty split still gets tables with the standard columns.
    empty = Table.read(root / "Validation" / "valid_params.csv", format="ascii.csv")
    assert len(empty) == 0 and empty.colnames[:4] == ["ID", "x", "y", "z"] and "snr" in empty.colnames
    truth = QTable.read(root / "Validation" / "truth.ecsv")
    assert len(truth) == 0 and truth["flux"].unit == u.Jy * u.km / u.s and truth["fwhm_major"].unit == u.arcsec


def test_dataset_refuses_other_settings_or_foreign_directories(tmp_path):
    simulate_dataset(tmp_path / "a", n_train=1, n_valid=0, n_test=0, config=TINY, seed=1, progress=False)
    with pytest.raises(OutputExistsError, match="made with other settings"):
        simulate_dataset(tmp_path / "a", n_train=1, n_valid=0, n_test=0, config=TINY, seed=2, progress=False)
    (tmp_path / "a" / "Train" / "tclean_cube_0.fits").write_text("the user's own file")
    simulate_dataset(tmp_path / "a", n_train=3, n_valid=0, n_test=0, config=TINY, seed=2, overwrite=True,
                     progress=False)
    assert (tmp_path / "a" / "Train" / "dirty_cube_2.fits").is_file()
    # A smaller data set written over it leaves no stale cube behind, and the user's file alone.
    simulate_dataset(tmp_path / "a", n_train=1, n_valid=0, n_test=0, config=TINY, seed=2, overwrite=True,
                     progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "Train").glob("dirty_cube_*")) == ["dirty_cube_0.fits"]
    assert (tmp_path / "a" / "Train" / "tclean_cube_0.fits").read_text() == "the user's own file"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="is not a deepfocus data set"):
        simulate_dataset(tmp_path / "b", n_train=1, n_valid=0, n_test=0, config=TINY, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "vla"}, "kind must be 'alma' or 'ska'"),
        ({"n_train": -1}, "n_train must be a non-negative integer"),
        ({"n_valid": 1.5}, "n_valid must be a non-negative integer"),
        ({"seed": -3}, "seed must be a non-negative integer"),
        ({"config": {"colour": "red"}}, "unknown AlmaConfig setting"),
    ],
)
def test_dataset_argument_errors(tmp_path, kwargs, message):
    arguments = {"n_train": 1, "n_valid": 0, "n_test": 0, "progress": False, **kwargs}
    with pytest.raises(ConfigError, match=message):
        simulate_dataset(tmp_path / "x", **arguments)


def test_cli_simulate_writes_data_and_quicklook(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text("image_shape: [24, 24]\nn_channels_range: [6, 6]\nn_sources_range: [2, 2]\n")
    out, png = tmp_path / "out", tmp_path / "look.png"
    status = main(["simulate", str(out), "--n-train", "0", "--n-valid", "1", "--n-test", "1", "--seed", "3",
                   "--config", str(config), "--quicklook", str(png), "--quiet"])
    assert status == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "Validation" / "dirty_cube_0.fits").is_file() and (out / "Test" / "test_params.csv").is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_simulate_errors(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "o"), "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "--config: cannot read" in capsys.readouterr().err
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert main(["simulate", str(tmp_path / "o"), "--config", str(listing)]) == 1
    assert "must hold a mapping of settings" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config_file(empty) == {}
    status = main(["simulate", str(tmp_path / "o2"), "--n-train", "0", "--n-valid", "0", "--n-test", "0",
                   "--quicklook", str(tmp_path / "x.png"), "--quiet"])
    assert status == 1
    assert "--quicklook needs at least one cube" in capsys.readouterr().err


def test_quicklook_needs_the_three_cubes(tmp_path):
    with pytest.raises(InputDataError, match="dirty_cube_0.fits not found"):
        save_quicklook(tmp_path, 0, tmp_path / "x.png")


def test_cli_simulate_ska(tmp_path, capsys):
    config = tmp_path / "ska.yaml"
    config.write_text("image_shape: [24, 24]\nn_channels_range: [30, 30]\nn_sources_range: [1, 1]\n"
                      "hi_size_range: [8.0, 12.0]\nw20_range: [60.0, 100.0]\n")
    status = main(["simulate", str(tmp_path / "ska"), "--kind", "ska", "--n-train", "1", "--n-valid", "0",
                   "--n-test", "0", "--config", str(config), "--quiet", "--workers", "1"])
    assert status == 0
    sdc2 = Table.read(tmp_path / "ska" / "Train" / "sdc2_truth.csv", format="ascii.csv")
    assert len(sdc2) == 1 and 60.0 * 0.5 < sdc2["w20"][0] < 100.0 * 1.5
