"""Training, evaluation and hyper-parameter sweeps of deepfocus_radio networks.

* :func:`train` — train a network from a configuration (YAML/TOML file or mapping);
* :func:`evaluate` — run a checkpoint on the Test split, write predictions, a report
  and plots (the ``deepfocus test`` command);
* :func:`sweep` — architecture and hyper-parameter search with optuna.

The configuration format is documented in :mod:`deepfocus_radio.training.config`.
"""

from deepfocus_radio.training.config import load_config
from deepfocus_radio.training.evaluate import EvaluationResult, evaluate
from deepfocus_radio.training.loop import TrainResult, train
from deepfocus_radio.training.sweep import SweepResult, sweep

__all__ = [
    "load_config",
    "train",
    "TrainResult",
    "evaluate",
    "EvaluationResult",
    "sweep",
    "SweepResult",
]
