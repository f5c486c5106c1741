"""Architecture and hyper-parameter search with optuna (TPE sampler, median pruning).

The ``sweep`` section of a training configuration declares the search::

    sweep:
      n_trials: 20            # trials in the study, counting those of earlier runs
      storage: sweep.db       # SQLite file (relative to output.dir); resumes when present
      study_name: deepfocus
      timeout: null           # seconds
      seed: 0                 # TPE sampler seed
      pruner: {n_startup_trials: 2, n_warmup_steps: 1}
      space:                  # dotted configuration keys
        model.arch: {choices: [unet, cae]}
        model.depths: {choices: [[1, 1], [2, 2]]}
        model.block_sizes: {choices: [[8, 16], [16, 32]]}
        optim.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        train.batch_size: {choices: [2, 4]}
        model.dropout: {low: 0.0, high: 0.3}
        loss.terms.ssim: {low: 0.0, high: 1.0}

``choices`` gives a categorical parameter (lists allowed as choices); ``low``/``high``
give an integer range when both are integers, else a float range (``log``, ``step``
optional). Each trial trains in ``output.dir/trial_<number>`` and reports its validation
loss every epoch; trials worse than the median of earlier ones at the same epoch are
pruned. The best trial is exported as ``output.dir/best_config.yaml``, which
:func:`~deepfocus_radio.training.train` accepts as it is.
"""

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from deepfocus_radio.exceptions import ConfigError, DeepFocusWarning
from deepfocus_radio.training.config import (
    apply_overrides,
    dump_config,
    load_config,
    resolve_config,
)

__all__ = ["SweepResult", "sweep", "suggest_parameters", "check_space"]

_SECTIONS = ("model", "data", "optim", "loss", "train")


@dataclass
class SweepResult:
    """What :func:`sweep` produced.

    Attributes
    ----------
    study : `optuna.study.Study`
        The study (all trials, including those of earlier runs).
    best_value : float
        Best validation loss.
    best_params : dict
        Parameters of the best trial (decoded: lists are lists).
    best_config : dict
        Ready-to-train configuration of the best trial (no ``sweep`` section).
    best_config_path : `~pathlib.Path`
        ``best_config.yaml``.
    output_dir : `~pathlib.Path`
        Sweep folder.
    plots : list of `~pathlib.Path`
        Optimization history and parameter importances (PNG).
    """

    study: object
    best_value: float
    best_params: dict
    best_config: dict
    best_config_path: Path
    output_dir: Path
    plots: list = field(default_factory=list)


def _encode(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _decode(spec, value):
    choices = spec.get("choices")
    if choices is not None and any(isinstance(c, (list, dict)) for c in choices):
        return json.loads(value) if isinstance(value, str) else value
    return value


def check_space(space):
    """Validate the ``sweep.space`` mapping.

    Parameters
    ----------
    space : Mapping
        Dotted configuration key -> ``{choices: [...]}`` or ``{low, high[, log, step]}``.

    Raises
    ------
    ConfigError
        Empty space, key outside the trainable sections, or malformed specification;
        the message names the key.
    """
    if not isinstance(space, dict) or not space:
        raise ConfigError("configuration key 'sweep.space' must map configuration keys "
                          "(e.g. optim.lr) to search ranges; it is empty")
    for key, spec in space.items():
        if key.split(".")[0] not in _SECTIONS or "." not in key:
            raise ConfigError(f"configuration key 'sweep.space.{key}' must be a dotted key in "
                              f"one of the sections {', '.join(_SECTIONS)}")
        if not isinstance(spec, dict):
            raise ConfigError(f"configuration key 'sweep.space.{key}' must be a mapping with "
                              "'choices' or 'low' and 'high'")
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], list) \
                    or not spec["choices"]:
                raise ConfigError(f"configuration key 'sweep.space.{key}' must be "
                                  "{choices: [a non-empty list]} alone")
            continue
        unknown = set(spec) - {"low", "high", "log", "step"}
        numbers = all(isinstance(spec.get(k), (int, float)) and not isinstance(spec.get(k), bool)
                      for k in ("low", "high"))
        if unknown or not numbers or not spec["low"] < spec["high"]:
            raise ConfigError(f"configuration key 'sweep.space.{key}' needs numbers low < high "
                              f"(and optionally log, step); got {spec!r}")


def suggest_parameters(trial, space):
    """Draw one value per entry of the search space from an optuna trial.

    Parameters
    ----------
    trial : `optuna.trial.Trial`
    space : Mapping
        Checked by :func:`check_space`.

    Returns
    -------
    dict
        Dotted key -> value (lists decoded).
    """
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            raw = trial.suggest_categorical(key, [_encode(c) for c in spec["choices"]])
        elif all(isinstance(spec[k], int) for k in ("low", "high")) and not spec.get("log") \
                and isinstance(spec.get("step", 1), int):
            raw = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1))
        else:
            raw = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                      log=bool(spec.get("log", False)), step=spec.get("step"))
        values[key] = _decode(spec, raw)
    return values


def _trial_config(base, params, output_dir):
    raw = copy.deepcopy(base)
    raw.pop("sweep", None)
    apply_overrides(raw, params)
    raw["output"] = {**raw.get("output", {}), "dir": str(output_dir), "overwrite": True}
    raw["train"] = {**raw.get("train", {}), "resume": False}
    return resolve_config(raw)


def _dry_run_space(base, space, sweep_dir):
    """Each value at its first choice / low bound must give a valid configuration."""
    from deepfocus_radio.models import resolve_config as resolve_model

    first = {k: (s["choices"][0] if "choices" in s else s["low"]) for k, s in space.items()}
    last = {k: (s["choices"][-1] if "choices" in s else s["high"]) for k, s in space.items()}
    for params in (first, last):
        config = _trial_config(base, params, sweep_dir / "check")
        resolve_model(config["model"])


def sweep(config, *, overrides=(), n_trials=None):
    """Search architectures and hyper-parameters with optuna; resumable from SQLite.

    Parameters
    ----------
    config : str, `~pathlib.Path` or Mapping
        Training configuration with a ``sweep`` section (see the module docstring);
        ``output.dir`` is the sweep folder.
    overrides : sequence of str, optional
        ``"section.key=value"`` settings applied first.
    n_trials : int, optional
        Overrides ``sweep.n_trials`` (total number of finished trials wanted in the study).

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        Invalid search space or configuration, detected before the first trial.
    """
    import optuna

    base = load_config(config, overrides=overrides)
    settings = base["sweep"]
    check_space(settings["space"])
    sweep_dir = Path(base["output"]["dir"]).expanduser()
    _dry_run_space(base, settings["space"], sweep_dir)
    _check_data(base)
    total = settings["n_trials"] if n_trials is None else n_trials
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ConfigError(f"configuration key 'sweep.n_trials' must be a positive integer, "
                          f"got {total!r}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    study = _open_study(settings, sweep_dir)
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                   optuna.trial.TrialState.PRUNED)]
    remaining = total - len(done)
    if remaining > 0:
        study.optimize(_objective(base, settings["space"], sweep_dir), n_trials=remaining,
                       timeout=settings["timeout"])
    return _export(study, base, settings["space"], sweep_dir)


def _check_data(base):
    """Open the data once so that data errors appear before the first trial."""
    from deepfocus_radio.training.prepare import build_datasets

    build_datasets(base)


def _open_study(settings, sweep_dir):
    import optuna

    storage_name = settings["storage"] or "sweep.db"
    if "://" in str(storage_name):
        storage = str(storage_name)
    else:
        path = Path(storage_name)
        path = path if path.is_absolute() else sweep_dir / path
        storage = f"sqlite:///{path.resolve()}"
    pruner_settings = settings["pruner"] or {}
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=int(pruner_settings.get("n_startup_trials", 2)),
        n_warmup_steps=int(pruner_settings.get("n_warmup_steps", 1)))
    study = optuna.create_study(
        study_name=settings["study_name"], storage=storage, load_if_exists=True,
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=settings["seed"]),
        pruner=pruner)
    _requeue_interrupted(study)
    return study


def _requeue_interrupted(study):
    """Trials left RUNNING by a killed process are failed and queued again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params)


def _objective(base, space, sweep_dir):
    import optuna

    from deepfocus_radio.training.loop import train

    def objective(trial):
        params = suggest_parameters(trial, space)
        config = _trial_config(base, params, sweep_dir / f"trial_{trial.number:04d}")
        config["train"]["progress"] = False

        def report(epoch, record):
            trial.report(record["val_loss"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")
            return False

        result = train(config, callback=report)
        return result.best_val_loss

    return objective


def _export(study, base, space, sweep_dir):
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError("no sweep trial completed (all pruned or failed); widen "
                          "sweep.space or raise sweep.n_trials")
    best = study.best_trial
    params = {key: _decode(space.get(key, {}), value) for key, value in best.params.items()}
    best_config = _trial_config(base, params, sweep_dir / "best")
    best_config["output"]["overwrite"] = False
    best_config.pop("sweep")
    best_config_path = sweep_dir / "best_config.yaml"
    dump_config(best_config, best_config_path)
    plots = _plots(study, sweep_dir)
    return SweepResult(study=study, best_value=float(best.value), best_params=params,
                       best_config=best_config, best_config_path=best_config_path,
                       output_dir=sweep_dir, plots=plots)


def _plots(study, sweep_dir):
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    from deepfocus_radio.training.plots import save_figure

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    drawers = {"optimization_history": optuna_plots.plot_optimization_history}
    if len(complete) >= 2:
        drawers["param_importances"] = optuna_plots.plot_param_importances
    else:
        warnings.warn("parameter importances need at least 2 completed trials; "
                      "param_importances.png was not drawn", DeepFocusWarning, stacklevel=3)
    paths = []
    for name, function in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axis = function(study)
        figure = axis.figure
        paths.append(save_figure(figure, sweep_dir / f"{name}.png"))
        plt.close(figure)
    return paths
