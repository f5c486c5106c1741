"""Safe model files: safetensors weights with the configuration in the header.

:func:`save_model` writes a ``.safetensors`` file (no pickle) whose metadata header holds
the model configuration, user metadata and a digest of the tensors; :func:`load_model`
rebuilds the network from a file, from a ``.pt``/``.pth`` checkpoint dict (read with
``torch.load(weights_only=True)``), or from the name of a shipped model, whose file is
checked against the sha256 of its card (:class:`PretrainedInfo`).
"""

import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from deepfocus_radio import __version__
from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import CheckpointError, ConfigError, OutputExistsError
from deepfocus_radio.models.builder import build_model
from deepfocus_radio.models.config import resolve_config
from deepfocus_radio.models.pretrained import (
    PretrainedInfo,
    default_weights_dir,
    file_sha256,
    get_pretrained_info,
    list_pretrained,
)

__all__ = ["PretrainedInfo", "list_pretrained", "load_model", "model_provenance",
           "save_model", "save_pretrained", "tensors_digest"]

_CONFIG_KEY = "deepfocus_config"
_METADATA_KEY = "deepfocus_metadata"
_DIGEST_KEY = "deepfocus_tensors_sha256"
_TORCH_SUFFIXES = (".pt", ".pth")


def tensors_digest(state_dict):
    """sha256 over the names, dtypes, shapes and bytes of tensors, in sorted name order.

    Parameters
    ----------
    state_dict : Mapping of str to torch.Tensor

    Returns
    -------
    str
        Hexadecimal digest; equal for equal tensors whatever the device or file layout.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _model_config(model):
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise CheckpointError(f"{type(model).__name__} has no 'config' dict: only models "
                              f"made by build_model or create_model can be saved")
    return config


def save_model(model, path, *, metadata=None, overwrite=True):
    """Write a model's weights, configuration and metadata to a ``.safetensors`` file.

    The file is written to a temporary name in the same folder and renamed, so a reader
    never sees a partial file.

    Parameters
    ----------
    model : torch.nn.Module
        A network made by ``build_model``/``create_model`` (it has a ``config`` dict).
    path : str or os.PathLike
        Output file; must end in ``.safetensors``.
    metadata : Mapping, optional
        JSON-serializable information stored in the header (e.g. training settings,
        scores); returned as ``model.metadata`` by :func:`load_model`.
    overwrite : bool, optional
        Replace an existing file (default); ``False`` raises instead.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    CheckpointError
        If the model has no configuration, the path does not end in ``.safetensors``, or
        ``metadata`` is not JSON-serializable.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"save_model writes safetensors files: {str(path)!r} must end "
                              f"in '.safetensors'")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    config = _model_config(model)
    try:
        metadata_json = json.dumps(dict(metadata or {}), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"metadata must be JSON-serializable: {exc}") from exc
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in
               model.state_dict().items()}
    header = {_CONFIG_KEY: json.dumps(config, sort_keys=True), _METADATA_KEY: metadata_json,
              _DIGEST_KEY: tensors_digest(tensors), "deepfocus_version": __version__,
              "format": "pt"}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
    return path


def _read_safetensors(path):
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc} (the file is truncated, "
                              f"corrupted or not a safetensors file)") from exc
    if _CONFIG_KEY not in header:
        raise CheckpointError(f"{str(path)!r} has no model configuration in its header: it "
                              f"was not written by deepfocus_radio's save_model")
    if header.get(_DIGEST_KEY) != tensors_digest(tensors):
        raise CheckpointError(f"the weights in {str(path)!r} do not match the digest in its "
                              f"header: the file was modified or corrupted after saving")
    try:
        config = json.loads(header[_CONFIG_KEY])
        metadata = json.loads(header.get(_METADATA_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"the header of {str(path)!r} is not valid JSON: {exc}") from exc
    return tensors, config, metadata


def _read_torch(path):
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message suggests weights_only=False: keep only the reason.
        reason = re.search(r"Unsupported (global|operand): \S+( \S+)?", str(exc))
        raise CheckpointError(
            f"refused to load {str(path)!r}: it holds Python objects other than tensors and "
            f"plain containers ({reason.group(0) if reason else 'not a weights-only file'}), "
            f"which torch.load(weights_only=True) will not run; save the model with "
            f"save_model, or a dict of state_dict and config only") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc} (the file is truncated, "
                              f"corrupted or not a torch checkpoint)") from exc
    if not isinstance(checkpoint, dict) or not {"state_dict", "config"} <= set(checkpoint):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{str(path)!r} is not a deepfocus checkpoint: expected a dict with "
                              f"keys 'state_dict' and 'config', found {found}")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"the 'state_dict' of {str(path)!r} must map parameter names to "
                              f"tensors (model.state_dict())")
    metadata = checkpoint.get("metadata") or {}
    return dict(state), checkpoint["config"], metadata


def _short(names):
    names = sorted(names)
    return f"{names[:4]}{' ...' if len(names) > 4 else ''}"


def _strip_wrapper_prefix(tensors):
    """Drop the key prefix that DataParallel (``module.``) or torch.compile (``_orig_mod.``)
    add, when every key has it."""
    for prefix in ("module.", "_orig_mod."):
        if tensors and all(key.startswith(prefix) for key in tensors):
            tensors = {key[len(prefix):]: value for key, value in tensors.items()}
    return tensors


def _build_and_fill(config, tensors, source):
    tensors = _strip_wrapper_prefix(tensors)
    try:
        model = build_model(config)
    except ConfigError as exc:
        raise CheckpointError(f"the configuration stored in {source} is invalid: {exc}") from exc
    expected = model.state_dict()
    missing = set(expected) - set(tensors)
    unexpected = set(tensors) - set(expected)
    reshaped = {k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape}
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"the weights in {source} do not fit its configuration (arch "
            f"{model.config['arch']!r}): {len(missing)} missing {_short(missing)}, "
            f"{len(unexpected)} unexpected {_short(unexpected)}, {len(reshaped)} of another "
            f"shape {_short(reshaped)}; were they saved from another architecture?")
    model.load_state_dict(tensors, strict=True)
    return model


def _resolve_device(device):
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', "
                          f"'cuda:1'): {exc}") from exc


def _load_file(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        tensors, config, metadata = _read_safetensors(path)
    elif path.suffix in _TORCH_SUFFIXES:
        tensors, config, metadata = _read_torch(path)
    else:
        raise CheckpointError(f"unsupported model file {str(path)!r}: use a '.safetensors' file "
                              f"written by save_model, or a '.pt'/'.pth' checkpoint dict")
    model = _build_and_fill(config, tensors, repr(str(path)))
    model.metadata = metadata
    return model


def _load_shipped(name, weights_dir):
    card = get_pretrained_info(name, weights_dir=weights_dir)
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if Path(card.file).name != card.file or not card.file.endswith(".safetensors"):
        raise CheckpointError(f"the card of shipped model {name!r} names the file "
                              f"{card.file!r}: it must be a '.safetensors' file name in the "
                              f"weights folder, without a directory")
    path = folder / card.file
    if not path.is_file():
        raise CheckpointError(f"the weights of shipped model {name!r} ({str(path)!r}) are "
                              f"missing; reinstall deepfocus_radio")
    digest = file_sha256(path)
    if digest != card.sha256:
        raise CheckpointError(f"sha256 of {str(path)!r} is {digest} but its card says "
                              f"{card.sha256}: the file is corrupted or was modified; reinstall")
    model = _load_file(path)
    if not _same_config(model.config, card.config):
        raise CheckpointError(f"the configuration in {str(path)!r} differs from the one in the "
                              f"card {name}.json")
    return model, card, digest


def _same_config(first, second):
    """Whether two configurations describe the same network (after filling defaults)."""
    try:
        return resolve_config(first) == resolve_config(second)
    except ConfigError:
        return False


def load_model(model, *, device=None, weights_dir=None):
    """Return a network from a module, a model file or the name of a shipped model.

    Parameters
    ----------
    model : torch.nn.Module, str or os.PathLike
        An ``nn.Module`` (returned as is, moved to ``device`` if one is given); a path to
        a ``.safetensors`` file written by :func:`save_model` or to a ``.pt``/``.pth``
        dict ``{"state_dict", "config", ...}`` (read with ``torch.load(weights_only=True)``,
        which never runs pickled code); or the name of a shipped model (``"alma"``,
        ``"ska"``; see :func:`list_pretrained`).
    device : str or torch.device, optional
        Where to put the network; default CUDA when available, else CPU.
    weights_dir : str or os.PathLike, optional
        Folder of the shipped models (default: the package's ``models/weights``).

    Returns
    -------
    torch.nn.Module
        A loaded network is in eval mode and carries ``config`` (dict), ``card``
        (:class:`PretrainedInfo` or None), ``name`` (shipped name or file path),
        ``sha256`` (of the weights file) and ``metadata`` (dict saved with it).

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    CheckpointError
        If a file is truncated, tampered with, unsafe to unpickle, not a deepfocus
        checkpoint, or holds weights that do not fit its configuration.
    ConfigError
        If a name is not a shipped model (the message lists them), or ``device`` is invalid.
    """
    if isinstance(model, torch.nn.Module):
        return model if device is None else model.to(_resolve_device(device))
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"model must be an nn.Module, a path or a shipped name; got "
                          f"{type(model).__name__}")
    target = _resolve_device(device)
    text = os.fspath(model)
    is_name = (isinstance(model, str) and "/" not in text and os.sep not in text
               and Path(text).suffix not in (".safetensors",) + _TORCH_SUFFIXES)
    if is_name:
        loaded, card, digest = _load_shipped(text, weights_dir)
        loaded.name = text
    else:
        loaded, card, digest = _load_file(text), None, file_sha256(text)
        loaded.name = text
    loaded.card = card
    loaded.sha256 = digest
    return loaded.eval().to(target)


def model_provenance(model):
    """Provenance of a network for output headers and catalogue metadata.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    dict
        ``name``, ``sha256``, ``config`` and ``card`` (card as a dict), each None when the
        model does not carry it (e.g. a module built in memory and never saved).
    """
    card = getattr(model, "card", None)
    return {"name": getattr(model, "name", None), "sha256": getattr(model, "sha256", None),
            "config": getattr(model, "config", None),
            "card": card.to_dict() if card is not None else None}


def save_pretrained(model, name, *, weights_dir=None, normalization="channel_noise",
                    training_ranges=None, scores=None, licence="BSD-3-Clause", description="",
                    metadata=None, tiling=None, overwrite=False):
    """Write a model as a shipped model: ``<name>.safetensors`` plus its card ``<name>.json``.

    Parameters
    ----------
    model : torch.nn.Module
        Network made by ``build_model``/``create_model``.
    name : str
        Shipped name (letters, digits, ``_`` and ``-``), e.g. ``"alma"``.
    weights_dir : str or os.PathLike, optional
        Destination folder (default: the package's ``models/weights``).
    normalization : str, optional
        How inputs must be normalized (``"channel_noise"``: divided by the MAD noise of
        each channel).
    training_ranges : Mapping of str to [min, max], optional
        Ranges of the training data, with the unit in the key (``"beam_fwhm_pix"``).
    scores : Mapping, optional
        Test scores (e.g. ``{"f1": 0.91}``).
    licence, description : str, optional
        Licence of the weights and a one-line description.
    metadata : Mapping, optional
        Extra JSON-serializable information stored in the weights header.
    tiling : Mapping, optional
        Default ``tile`` and ``halo`` (chan, y, x voxels) for tiled inference.
    overwrite : bool, optional
        Replace an existing shipped model of that name.

    Returns
    -------
    PretrainedInfo
        The card written.

    Raises
    ------
    ConfigError
        If ``name`` is not a plain identifier.
    OutputExistsError
        If the files exist and ``overwrite`` is false.
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ConfigError(f"shipped model name {name!r} must use only letters, digits, '_' "
                          f"and '-'")
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    card_path = folder / f"{name}.json"
    if card_path.exists() and not overwrite:
        raise OutputExistsError(f"shipped model {str(card_path)!r} exists; pass overwrite=True")
    weights = save_model(model, folder / f"{name}.safetensors", metadata=metadata)
    card = PretrainedInfo(name=name, file=weights.name, sha256=file_sha256(weights),
                          config=dict(_model_config(model)), normalization=normalization,
                          training_ranges=dict(training_ranges or {}), scores=dict(scores or {}),
                          licence=licence, description=description, tiling=dict(tiling or {}))
    card.write(card_path)
    return card
