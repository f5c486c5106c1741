import numpy as np
import pytest

from deepfocus_radio.training.metrics import (
    classification_metrics,
    image_metrics,
    regression_metrics,
)
from deepfocus_radio.training.plots import (
    plot_confusion_matrix,
    plot_cube_panels,
    plot_error_histograms,
    plot_learning_curves,
    plot_scatter,
    plot_spectra,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_image_metrics_values():
    target = np.zeros((8, 16, 16))
    target[4, 8, 8] = 10.0
    prediction = target * 0.5
    metrics = image_metrics(prediction, target, noise=np.ones(8))
    assert metrics["l1"] == pytest.approx(5.0 / target.size)
    assert metrics["mse"] == pytest.approx(25.0 / target.size)
    assert metrics["psnr"] == pytest.approx(10 * np.log10(100.0 / metrics["mse"]))
    assert metrics["flux_recovery"] == pytest.approx(0.5)
    perfect = image_metrics(target, target)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["psnr"] == np.inf
    assert np.isnan(image_metrics(target, np.zeros_like(target))["flux_recovery"])
    with pytest.raises(ValueError, match="differs from target shape"):
        image_metrics(target, target[:2])


def test_regression_metrics_values_and_angles():
    true = np.array([[1.0, 10.0], [2.0, 170.0], [4.0, 90.0]])
    predicted = np.array([[1.05, 175.0], [2.4, 5.0], [4.0, 90.0]])
    metrics = regression_metrics(true, predicted, ["flux", "pa"])
    flux = metrics["flux"]
    assert flux["bias"] == pytest.approx((0.05 + 0.4) / 3)
    assert flux["median_relative_error"] == pytest.approx(0.05)
    assert flux["fraction_within_10pct"] == pytest.approx(2 / 3)
    assert flux["n"] == 3
    pa = metrics["pa"]
    assert pa["bias"] == pytest.approx((-15.0 + 15.0 + 0.0) / 3)  # wrapped modulo 180
    assert pa["rmse"] == pytest.approx(np.sqrt((225 + 225) / 3))


def test_classification_metrics_values():
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert metrics["precision"]["b"] == pytest.approx(0.5)
    assert metrics["recall"]["a"] == pytest.approx(0.5)
    assert np.isnan(metrics["precision"]["c"]) and metrics["recall"]["c"] == 0.0


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(4, 8, 8))
    history = [{"epoch": i, "train_loss": 1.0 / (i + 1), "val_loss": 1.2 / (i + 1),
                "lr": 1e-3} for i in range(3)]
    paths = [
        plot_learning_curves(history, tmp_path / "curves.png"),
        plot_cube_panels({"dirty": cube, "residual": cube - 1}, tmp_path / "panels.png"),
        plot_spectra({"dirty": cube[:, 2, 2]}, tmp_path / "spectrum.png"),
        plot_scatter(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), ["a", "b"],
                     tmp_path / "scatter.png"),
        plot_error_histograms({"a": rng.normal(size=20)}, tmp_path / "errors.png"),
        plot_confusion_matrix([[2, 1], [0, 3]], ["x", "y"], tmp_path / "sub" / "cm.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG
    assert not list(tmp_path.glob("*.tmp*"))
