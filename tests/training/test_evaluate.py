import json

import numpy as np
import pytest
from spectral_cube import SpectralCube

from deepfocus_radio.exceptions import CheckpointError, ConfigError, OutputExistsError
from deepfocus_radio.models import build_model, save_model
from deepfocus_radio.training import evaluate, train
from deepfocus_radio.training.data import open_cube_array
from deepfocus_radio.training.metrics import image_metrics

from .helpers import deconvolver_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def trained(handmade_root, tmp_path):
    return train(deconvolver_config(handmade_root, tmp_path / "run", train={"epochs": 1}))


def test_deconvolver_predictions_report_and_plots(trained, handmade_root):
    result = evaluate(trained.output_dir, progress=False, n_plots=1)
    assert result.output_dir == trained.output_dir / "eval_test"
    assert [p.name for p in result.predictions] == ["prediction_cube_6.fits",
                                                    "prediction_cube_7.fits"]
    for path, cube_id in zip(result.predictions, ("6", "7")):
        written = SpectralCube.read(str(path))
        reference = SpectralCube.read(str(handmade_root / "Test" / f"dirty_cube_{cube_id}.fits"))
        assert written.wcs.wcs.compare(reference.wcs.wcs)
        assert written.beam == reference.beam and written.unit == reference.unit
        clean = open_cube_array(handmade_root / "Test" / f"clean_cube_{cube_id}.fits")
        recomputed = image_metrics(written.unmasked_data[:].value, clean)
        row = next(r for r in result.rows if r["ID"] == cube_id and r["method"] == "prediction")
        assert row["l1"] == pytest.approx(recomputed["l1"], rel=1e-5)
        assert row["ssim"] == pytest.approx(recomputed["ssim"], rel=1e-4)
    report = json.loads(result.report.read_text())
    assert set(report["metrics"]) == {"prediction", "dirty", "tclean"}
    summary = report["metrics"]["prediction"]
    assert summary["n_cubes"] == 2
    assert summary["l1"] == pytest.approx(np.mean([r["l1"] for r in result.rows
                                                   if r["method"] == "prediction"]))
    tclean = report["metrics"]["tclean"]
    assert tclean["flux_recovery"] == pytest.approx(0.8, rel=1e-3)  # tclean = 0.8 x clean
    assert summary["l1"] != tclean["l1"]
    assert (result.output_dir / "report.csv").read_text().startswith("ID,method,l1,mse,ssim")
    names = {p.name for p in result.plots}
    assert names == {"panels_6.png", "spectrum_6.png", "learning_curves.png"}
    for path in result.plots:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_missing_tclean_baseline_is_not_an_error(trained, handmade_root, tmp_path):
    for path in (handmade_root / "Test").glob("tclean_cube_*.fits"):
        path.unlink()
    result = evaluate(trained.best_checkpoint, output_dir=tmp_path / "eval", progress=False,
                      n_plots=0)
    assert set(result.metrics) == {"prediction", "dirty"}
    with pytest.raises(OutputExistsError, match="is not empty"):
        evaluate(trained.best_checkpoint, output_dir=tmp_path / "eval", progress=False)
    again = evaluate(trained.best_checkpoint, output_dir=tmp_path / "eval", overwrite=True,
                     split="Validation", progress=False, n_plots=0)
    assert [r["ID"] for r in again.rows if r["method"] == "prediction"] == ["4", "5"]


def test_evaluate_from_config_and_plain_model(trained, handmade_root, tmp_path):
    config = deconvolver_config(handmade_root, trained.output_dir)
    from_config = evaluate(config, output_dir=tmp_path / "a", progress=False, n_plots=0)
    plain = build_model(trained.model.config)
    plain.load_state_dict(trained.model.state_dict())
    path = save_model(plain, tmp_path / "plain.safetensors")
    from_plain = evaluate(path, data_root=handmade_root, output_dir=tmp_path / "b",
                          progress=False, n_plots=0)
    assert from_plain.metrics["prediction"]["l1"] == pytest.approx(
        from_config.metrics["prediction"]["l1"], rel=1e-6)


def test_evaluate_errors(trained, tmp_path, handmade_root):
    with pytest.raises(ConfigError, match="'data.root' names .* not a directory"):
        evaluate(trained.best_checkpoint, data_root=tmp_path / "nowhere",
                 output_dir=tmp_path / "c", progress=False)
    regressor = build_model({"dmode": "regressor", "arch": "resnet", "spatial_dims": 2,
                             "stem": "small", "block_sizes": [8], "depths": [1]})
    path = save_model(regressor, tmp_path / "reg.safetensors")
    with pytest.raises(CheckpointError, match="holds no training metadata"):
        evaluate(path, data_root=handmade_root, output_dir=tmp_path / "d")
    plain = save_model(build_model(trained.model.config), tmp_path / "plain.safetensors")
    with pytest.raises(ConfigError, match="no data root"):
        evaluate(plain, output_dir=tmp_path / "e")


def test_classifier_report(handmade_root, tmp_path):
    config = {"model": {"dmode": "classifier", "arch": "vgg", "spatial_dims": 2,
                        "block_sizes": [4, 8], "depths": [1, 1], "head_features": [16],
                        "pool_size": 1},
              "data": {"root": str(handmade_root), "cutout_size": [8, 8]},
              "train": {"epochs": 1, "batch_size": 4, "progress": False},
              "output": {"dir": str(tmp_path / "run")}}
    result = train(config)
    report = evaluate(result.output_dir, progress=False)
    metrics = report.metrics
    assert metrics["classes"] == ["bright", "faint"] and metrics["n"] == 4
    assert np.sum(metrics["confusion_matrix"]) == 4
    correct = np.mean([r["true"] == r["predicted"] for r in report.rows])
    assert metrics["accuracy"] == pytest.approx(correct)
    assert {p.name for p in report.plots} == {"confusion_matrix.png", "learning_curves.png"}
    assert (report.output_dir / "predictions.csv").read_text().startswith("ID,x,y,z,true")


def test_2d_deconvolver_with_ssim_loss(handmade_root, tmp_path):
    config = deconvolver_config(handmade_root, tmp_path / "run", train={"epochs": 1},
                                model={"spatial_dims": 2}, data={"crop_size": [16, 16]},
                                loss={"terms": {"l1": 1.0, "ssim": 0.5}})
    result = train(config)
    assert {"train_l1", "train_ssim"} <= set(result.history[0])
    report = evaluate(result.output_dir, progress=False, n_plots=0)
    written = SpectralCube.read(str(report.predictions[0]))
    assert written.shape == (16, 32, 32)
    assert np.isfinite(report.metrics["prediction"]["ssim"])
