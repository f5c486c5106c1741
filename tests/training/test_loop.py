import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from deepfocus_radio.exceptions import (
    CheckpointError,
    ConfigError,
    InputDataError,
    ModelMismatchError,
    OutputExistsError,
)
from deepfocus_radio.models import build_model, save_model
from deepfocus_radio.training import train
from deepfocus_radio.training.checkpoint import load_state, training_metadata
from deepfocus_radio.training.loop import resolve_device

from .helpers import deconvolver_config, make_split


def test_training_lowers_validation_loss_and_writes_outputs(simulated_root, tmp_path):
    out = tmp_path / "run"
    result = train(deconvolver_config(simulated_root, out, train={"epochs": 4},
                                      data={"samples_per_cube": 8}, optim={"lr": 1e-2}))
    losses = [r["val_loss"] for r in result.history]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    assert result.best_val_loss == min(losses) and result.best_epoch == int(np.argmin(losses))
    names = {p.name for p in out.iterdir()}
    assert {"best.safetensors", "last.safetensors", "last_state.pt", "metrics.csv",
            "metrics.json", "config.yaml", "learning_curves.png"} <= names
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["history"][-1]["val_loss"] == losses[-1]
    assert summary["best_epoch"] == result.best_epoch
    assert summary["best_val_loss"] == result.best_val_loss
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "lr", "samples_per_second", "train_l1"} <= set(header)
    assert result.model.config["arch"] == "unet" and not result.model.training
    meta = training_metadata(result.model.metadata)
    assert meta["normalization"] == "channel_noise" and meta["epoch"] == result.best_epoch
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 4


def _weights(path):
    return load_file(str(path))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(handmade_root, tmp_path):
    sections = dict(model={"dropout": 0.2}, data={"augment": True},
                    train={"epochs": 3}, optim={"warmup_epochs": 1, "name": "adamw"})
    full = train(deconvolver_config(handmade_root, tmp_path / "full", **sections))
    part = tmp_path / "part"
    stopped = train(deconvolver_config(handmade_root, part, **sections),
                    callback=lambda epoch, record: epoch == 1)
    assert stopped.stopped_early and len(stopped.history) == 2
    resumed = train(deconvolver_config(handmade_root, part, **sections), resume=True)
    assert len(resumed.history) == 3
    for name in ("last.safetensors", "best.safetensors"):
        expected, found = _weights(tmp_path / "full" / name), _weights(part / name)
        assert expected.keys() == found.keys()
        for key in expected:
            assert torch.equal(expected[key], found[key]), key
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]
    state = load_state(part / "last_state.pt")
    assert state["epoch"] == 2 and isinstance(state["torch_rng"], torch.Tensor)


def test_early_stopping(handmade_root, tmp_path):
    # A learning rate far below float32 resolution leaves the weights, hence the
    # validation loss, unchanged: epoch 1 does not improve and patience 1 stops there.
    config = deconvolver_config(handmade_root, tmp_path / "run", train={"epochs": 6,
                                "early_stopping": 1}, optim={"lr": 1e-12, "name": "sgd",
                                                             "momentum": 0.0})
    result = train(config)
    assert result.stopped_early and len(result.history) == 2
    assert result.history[0]["val_loss"] == result.history[1]["val_loss"]


def test_divergence_is_reported(handmade_root, tmp_path):
    config = deconvolver_config(handmade_root, tmp_path / "run",
                                optim={"lr": 1e30, "name": "sgd", "momentum": 0.0})
    # on CUDA, mixed precision's gradient scaler skips the steps with inf gradients, so the
    # loss may turn NaN an epoch or more later than on the CPU (epoch 2 on an H200)
    first = "1" if resolve_device("auto").type == "cpu" else r"\d+"
    with pytest.raises(InputDataError, match=f"training diverged in epoch {first}.*lower optim.lr"):
        train(config)


def test_failures_before_training(handmade_root, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="'train.learning_rate'"):
        train(deconvolver_config(handmade_root, out, train={"learning_rate": 1}))
    with pytest.raises(ConfigError, match="'data.root' names .* not a directory"):
        train(deconvolver_config(tmp_path / "missing", out))
    empty = tmp_path / "empty"
    make_split(empty / "Train", "train", [1], rng=np.random.default_rng(0))
    (empty / "Validation").mkdir()
    with pytest.raises(ConfigError, match="split Validation in data.root is empty"):
        train(deconvolver_config(empty, out))
    regressor = {"model": {"dmode": "regressor", "arch": "resnet", "spatial_dims": 2,
                           "stem": "small"},
                 "data": {"root": str(handmade_root), "targets": ["line_flux"],
                          "cutout_size": [8, 8]},
                 "output": {"dir": str(out)}}
    with pytest.raises(InputDataError, match="lacks the column.*line_flux"):
        train(regressor)
    with pytest.raises(ConfigError, match="'optim.betas' must be two numbers"):
        train(deconvolver_config(handmade_root, out, optim={"betas": [0.9]}))
    assert not out.exists()  # nothing was written: the checks ran first


def test_checkpoint_from_another_architecture(handmade_root, tmp_path):
    other = build_model({"dmode": "deconvolver", "arch": "cae", "spatial_dims": 3,
                         "block_sizes": [4, 8], "depths": [1, 1]})
    path = save_model(other, tmp_path / "cae.safetensors")
    config = deconvolver_config(handmade_root, tmp_path / "run", train={"init_from": str(path)})
    with pytest.raises(ModelMismatchError, match="model.arch = 'cae'.*asks for 'unet'"):
        train(config)
    first = train(deconvolver_config(handmade_root, tmp_path / "run2", train={"epochs": 1}))
    wider = deconvolver_config(handmade_root, first.output_dir, model={"block_sizes": [6, 8]})
    with pytest.raises(ModelMismatchError, match="model.block_sizes"):
        train(wider, resume=True)
    same = deconvolver_config(handmade_root, tmp_path / "run3",
                              train={"epochs": 1, "init_from": str(first.best_checkpoint)})
    started = train(same)
    assert len(started.history) == 1


def test_output_and_resume_errors(handmade_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="output.dir .* exists and is not empty"):
        train(deconvolver_config(handmade_root, out))
    with pytest.raises(ConfigError, match="'train.resume' is true but .*last.safetensors"):
        train(deconvolver_config(handmade_root, out), resume=True)
    (out / "last.safetensors").write_bytes(b"x")
    (out / "last_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        train(deconvolver_config(handmade_root, out), resume=True)
    with pytest.raises(CheckpointError, match="cannot read training state"):
        load_state(out / "last_state.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state(out / "nothing.pt")


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="'train.device' 'gpu0' is not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="asks for CUDA, which is not available"):
            resolve_device("cuda")


def test_regressor_learns_flux_better_than_the_mean(simulated_sources_root, tmp_path):
    from deepfocus_radio.training import evaluate

    config = {"model": {"dmode": "regressor", "arch": "resnet", "spatial_dims": 2,
                        "stem": "small", "block_sizes": [8, 16], "depths": [1, 1],
                        "init_features": 8},
              "data": {"root": str(simulated_sources_root), "targets": ["flux"],
                       "target_scaling": {"flux": "log"}, "cutout_size": [12, 12],
                       "line_width": 3},
              "optim": {"lr": 3e-3}, "train": {"epochs": 12, "batch_size": 8, "progress": False},
              "output": {"dir": str(tmp_path / "run")}}
    result = train(config)
    report = evaluate(result.output_dir, progress=False)
    flux = report.metrics["flux"]
    assert flux["n"] == 15  # 3 test cubes x 5 sources
    assert flux["rmse"] < 0.6 * flux["rmse_of_mean"]
    rows = report.rows
    assert {"true_flux", "pred_flux"} <= set(rows[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_with_mixed_precision_learns_and_resumes(simulated_root, tmp_path):
    """CUDA with float16 autocast and a gradient scaler: the loss falls, the weights come
    back to the CPU as float32, and a run stopped after epoch 1 resumes (optimizer, scaler
    and CUDA generator state) to the uninterrupted run's losses (cuDNN's kernels are not
    bitwise reproducible, hence the tolerance)."""
    sections = dict(train={"epochs": 4, "device": "cuda", "amp": True},
                    data={"samples_per_cube": 8}, optim={"lr": 1e-2})
    full = train(deconvolver_config(simulated_root, tmp_path / "full", **sections))
    losses = [r["val_loss"] for r in full.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
    weights = _weights(tmp_path / "full" / "best.safetensors")
    assert all(w.device.type == "cpu" and w.dtype == torch.float32 for w in weights.values())
    part = tmp_path / "part"
    stopped = train(deconvolver_config(simulated_root, part, **sections),
                    callback=lambda epoch, record: epoch == 1)
    assert len(stopped.history) == 2
    resumed = train(deconvolver_config(simulated_root, part, **sections), resume=True)
    assert len(resumed.history) == 4
    np.testing.assert_allclose([r["val_loss"] for r in resumed.history], losses, rtol=0.05)
    assert load_state(part / "last_state.pt")["cuda_rng"]
