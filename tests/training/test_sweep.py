import json

import optuna
import pytest
import yaml

from deepfocus_radio.exceptions import ConfigError, DeepFocusWarning
from deepfocus_radio.training import sweep, train
from deepfocus_radio.training.sweep import check_space, suggest_parameters

from .helpers import deconvolver_config

SPACE = {
    "optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "model.arch": {"choices": ["unet", "cae"]},
    "model.depths": {"choices": [[1, 1], [2, 1]]},
    "train.batch_size": {"low": 2, "high": 4, "step": 2},
    "loss.terms.ssim": {"low": 0.0, "high": 0.5},
}


def sweep_config(root, out, **settings):
    config = deconvolver_config(root, out)
    config["sweep"] = {"n_trials": 3, "space": SPACE, **settings}
    return config


def test_sweep_resumes_from_sqlite_and_exports_a_trainable_config(handmade_root, tmp_path):
    config = sweep_config(handmade_root, tmp_path / "sweep")
    first = sweep(config, n_trials=2)  # stands for a sweep interrupted after 2 trials
    assert len(first.study.trials) == 2
    assert (tmp_path / "sweep" / "sweep.db").is_file()
    resumed = sweep(config)
    numbers = [t.number for t in resumed.study.trials]
    assert numbers == [0, 1, 2]
    assert resumed.study.trials[0].params == first.study.trials[0].params
    assert resumed.study.trials[0].value == first.study.trials[0].value
    history = json.loads((tmp_path / "sweep" / "trial_0000" / "metrics.json").read_text())
    reported = resumed.study.trials[0].intermediate_values
    assert reported == {r["epoch"]: pytest.approx(r["val_loss"]) for r in history["history"]}
    assert (tmp_path / "sweep" / "trial_0002" / "metrics.json").is_file()
    finished = [t for t in resumed.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert resumed.best_value == min(t.value for t in finished)
    assert isinstance(resumed.best_params["model.depths"], list)
    exported = yaml.safe_load(resumed.best_config_path.read_text())
    assert "sweep" not in exported
    assert exported["optim"]["lr"] == pytest.approx(resumed.best_params["optim.lr"])
    assert exported["model"]["arch"] == resumed.best_params["model.arch"]
    assert {p.name for p in resumed.plots} == {"optimization_history.png",
                                               "param_importances.png"}
    trained = train(resumed.best_config_path, overrides=["train.epochs=1"])
    assert trained.output_dir == tmp_path / "sweep" / "best"
    again = sweep(config)  # nothing left to do: no new trial
    assert len(again.study.trials) == 3


def test_trial_left_running_by_a_killed_process_is_rerun(handmade_root, tmp_path):
    config = sweep_config(handmade_root, tmp_path / "sweep", n_trials=1)
    storage = f"sqlite:///{tmp_path / 'sweep' / 'sweep.db'}"
    (tmp_path / "sweep").mkdir()
    study = optuna.create_study(study_name="deepfocus", storage=storage)
    killed = study.ask()
    params = suggest_parameters(killed, SPACE)
    with pytest.warns(DeepFocusWarning, match="importances need at least 2 completed trials"):
        result = sweep(config)
    states = [t.state for t in result.study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    rerun = result.study.trials[1]
    assert rerun.params["optim.lr"] == pytest.approx(params["optim.lr"])
    assert rerun.params["model.arch"] == params["model.arch"]


@pytest.mark.parametrize("space, message", [
    ({}, "'sweep.space' must map"),
    ({"lr": {"low": 1, "high": 2}}, "'sweep.space.lr' must be a dotted key"),
    ({"sweep.n_trials": {"low": 1, "high": 2}}, "'sweep.space.sweep.n_trials' must be"),
    ({"optim.lr": [1, 2]}, "'sweep.space.optim.lr' must be a mapping"),
    ({"optim.lr": {"choices": []}}, "'sweep.space.optim.lr' must be .choices"),
    ({"optim.lr": {"low": 2, "high": 1}}, "'sweep.space.optim.lr' needs numbers low < high"),
    ({"optim.lr": {"low": 1, "high": 2, "scale": 3}}, "needs numbers low < high"),
])
def test_bad_search_spaces(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(space)


def test_bad_sweeps_fail_before_the_first_trial(handmade_root, tmp_path):
    out = tmp_path / "sweep"
    bad_key = sweep_config(handmade_root, out, space={"optim.learning_rate": {"low": 0.1,
                                                                               "high": 1.0}})
    with pytest.raises(ConfigError, match="'optim.learning_rate'"):
        sweep(bad_key)
    bad_arch = sweep_config(handmade_root, out, space={"model.arch": {"choices": ["unet",
                                                                                "resnet"]}})
    with pytest.raises(ConfigError, match="resnet"):
        sweep(bad_arch)
    with pytest.raises(ConfigError, match="'sweep.n_trials' must be a positive integer"):
        sweep(sweep_config(handmade_root, out), n_trials=0)
    with pytest.raises(ConfigError, match="'data.root' names"):
        sweep(sweep_config(tmp_path / "missing", out))
    assert not out.exists()


def test_suggest_parameters_types():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = suggest_parameters(trial, SPACE)
    assert 1e-4 <= values["optim.lr"] <= 1e-2
    assert values["model.depths"] in ([1, 1], [2, 1])
    assert values["train.batch_size"] in (2, 4) and isinstance(values["train.batch_size"], int)
    assert isinstance(values["loss.terms.ssim"], float)
