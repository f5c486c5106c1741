"""Checkpoints written during training, in safe formats only.

A run directory holds:

* ``best.safetensors`` and ``last.safetensors``: model weights and configuration, written
  by :func:`deepfocus_radio.models.save_model`; the metadata add ``training`` (JSON of
  the training configuration, the epoch, the validation loss, the normalization, the
  target scaling or class names), so :func:`deepfocus_radio.models.load_model` and
  :func:`~deepfocus_radio.training.evaluate` can use them;
* ``last_state.pt``: optimizer, schedule, gradient-scaler and RNG states, history and
  early-stopping counters, as tensors and plain containers only, read back with
  ``torch.load(weights_only=True)``.
"""

import json
from pathlib import Path

import torch

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import CheckpointError, ModelMismatchError

__all__ = [
    "BEST_NAME",
    "LAST_NAME",
    "STATE_NAME",
    "save_weights",
    "training_metadata",
    "save_state",
    "load_state",
    "check_same_architecture",
]

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"
STATE_NAME = "last_state.pt"


def save_weights(model, path, *, training):
    """Save a model with its training metadata, atomically.

    Parameters
    ----------
    model : `torch.nn.Module`
        Model built by :func:`deepfocus_radio.models.build_model` (has ``.config``).
    path : str or `~pathlib.Path`
        Destination ``.safetensors`` file.
    training : Mapping
        Plain values stored as JSON under the metadata key ``training``.
    """
    from deepfocus_radio.models import save_model

    plain = json.loads(json.dumps(training, default=str))
    save_model(model, Path(path), metadata={"training": plain})


def training_metadata(metadata):
    """The ``training`` entry of a checkpoint's metadata, decoded.

    Parameters
    ----------
    metadata : Mapping or None
        ``model.metadata`` of a model read by :func:`deepfocus_radio.models.load_model`.

    Returns
    -------
    dict
        Empty when the checkpoint was not written by training.
    """
    if not metadata or "training" not in metadata:
        return {}
    return dict(metadata["training"])


def save_state(path, state):
    """Write the training state (tensors and plain containers), atomically.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Destination file.
    state : Mapping
        Only tensors, numbers, strings, lists and dicts (``torch.load(weights_only=True)``
        must read it back).
    """
    atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_state(path):
    """Read a training state written by :func:`save_state`, safely.

    Parameters
    ----------
    path : str or `~pathlib.Path`

    Returns
    -------
    dict

    Raises
    ------
    CheckpointError
        Missing, unreadable, or holding objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {str(path)!r} does not exist; resume needs a "
                              "run directory written by train")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"cannot read training state {str(path)!r} safely: {exc}") from exc


def check_same_architecture(expected, found, *, source):
    """Raise when a checkpoint's model configuration differs from the requested one.

    Parameters
    ----------
    expected : Mapping
        Model configuration of the run.
    found : Mapping
        Model configuration stored in the checkpoint.
    source : str
        Name of the checkpoint, for the message.

    Raises
    ------
    ModelMismatchError
        Names the first key whose value differs once defaults are filled in.
    """
    from deepfocus_radio.models.config import resolve_config

    expected, found = resolve_config(expected), resolve_config(found)
    for key in sorted(set(expected) | set(found)):
        if _norm(expected.get(key)) != _norm(found.get(key)):
            raise ModelMismatchError(
                f"checkpoint {source} was trained with model.{key} = {found.get(key)!r}, but "
                f"the configuration asks for {expected.get(key)!r}; use a matching checkpoint or "
                "change the model section")


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value
