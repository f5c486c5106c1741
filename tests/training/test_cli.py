import json

import pytest
import yaml
from spectral_cube import SpectralCube

from deepfocus_radio.cli.main import build_parser, main

from .helpers import deconvolver_config


def write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_and_test_commands(simulated_root, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", deconvolver_config(simulated_root, "unused"))
    out = tmp_path / "run"
    status = main(["train", str(config), "--set", "train.epochs=1", "--output", str(out),
                   "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "best epoch 1" in printed and str(out / "best.safetensors") in printed
    assert json.loads((out / "metrics.json").read_text())["history"][0]["epoch"] == 0
    status = main(["train", str(config), "--set", "train.epochs=2", "--output", str(out),
                   "--resume", "--quiet"])
    assert status == 0 and len(json.loads((out / "metrics.json").read_text())["history"]) == 2
    status = main(["test", str(out), "--quiet", "--plots", "0"])
    printed = capsys.readouterr().out
    assert status == 0 and '"prediction"' in printed
    report = json.loads((out / "eval_test" / "report.json").read_text())
    assert report["metrics"]["prediction"]["n_cubes"] == 2
    for cube_id in ("0", "1"):
        written = SpectralCube.read(str(out / "eval_test" / f"prediction_cube_{cube_id}.fits"))
        dirty = SpectralCube.read(str(simulated_root / "Test" / f"dirty_cube_{cube_id}.fits"))
        assert written.wcs.wcs.compare(dirty.wcs.wcs) and written.beam == dirty.beam
        assert written.shape == dirty.shape and written.unit == dirty.unit
    assert main(["test", str(out), "--quiet"]) == 1  # output exists
    assert "is not empty" in capsys.readouterr().err


def test_train_command_reports_config_errors(handmade_root, tmp_path, capsys):
    config = write_config(tmp_path / "bad.yaml",
                          {**deconvolver_config(handmade_root, tmp_path / "run"),
                           "optimizer": {"lr": 1}})
    assert main(["train", str(config)]) == 1
    assert "unknown configuration section 'optimizer'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_sweep_command(handmade_root, tmp_path, capsys):
    config = deconvolver_config(handmade_root, tmp_path / "sweep", train={"epochs": 1})
    config["sweep"] = {"n_trials": 5, "space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}}
    path = write_config(tmp_path / "sweep.yaml", config)
    with pytest.warns(UserWarning, match="importances need at least 2"):
        status = main(["sweep", str(path), "--trials", "1"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "optim.lr = " in printed and "best_config.yaml" in printed


@pytest.mark.parametrize("command", ["train", "test", "sweep"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    assert "examples:" in capsys.readouterr().out
