"""Training configuration: schema, defaults, validation, YAML/TOML loading, overrides.

A training configuration is a nested mapping with the sections below. Every key not listed
here is an error that names it (:class:`~deepfocus_radio.exceptions.ConfigError`). The
``model`` section is passed to :func:`deepfocus_radio.models.build_model` as it is
(``dmode``, ``arch``, ``spatial_dims``, ``in_channels``, ``out_channels``, ``depths``...),
which validates its own keys.

``data``
    ``root`` (directory holding ``Train/``, ``Validation/``, ``Test/``), ``crop_size``
    (deconvolver crops, ``[chan, y, x]`` in 3D or ``[y, x]`` in 2D), ``samples_per_cube``
    (random crops drawn per cube and epoch), ``normalization`` (``channel_noise``: divide
    dirty and clean by the per-channel robust noise of the dirty cube; ``cube_noise``: by
    one median noise per cube; ``fixed``: by ``scale`` Jy/beam; ``none``), ``targets``
    (params-CSV columns a regressor predicts), ``target_scaling`` (per column: ``log``,
    ``linear`` or ``none``), ``class_column`` (classifier label column), ``cutout_size``
    (regressor/classifier cutouts, ``[y, x]`` or ``[chan, y, x]``), ``line_width`` (channels
    integrated on each side of ``z`` for 2D stamps, or ``auto`` to use ``fwhm_z``),
    ``input`` (``dirty`` or ``clean`` cube as network input of a regressor/classifier),
    ``augment`` (flips and 90-degree rotations), ``flip_spectral``, ``num_workers``.
``optim``
    ``name`` (``adam``, ``adamw``, ``sgd``), ``lr``, ``weight_decay``, ``momentum``,
    ``betas``, ``scheduler`` (``cosine``, ``plateau``, ``none``), ``warmup_epochs``,
    ``min_lr``, ``plateau_factor``, ``plateau_patience``, ``grad_clip``.
``loss``
    ``terms`` (mapping of loss name to weight: ``l1``, ``mse``, ``huber``, ``ssim``,
    ``ce``), ``huber_delta``, ``ssim_window``.
``train``
    ``epochs``, ``batch_size``, ``seed``, ``device`` (``auto``: CUDA when present),
    ``amp`` (``auto``: mixed precision on CUDA only), ``early_stopping`` (patience in
    epochs, or null), ``resume``, ``init_from`` (checkpoint to start from), ``progress``.
``output``
    ``dir`` (run directory), ``overwrite``.
``sweep``
    Only read by :func:`~deepfocus_radio.training.sweep`: ``n_trials``, ``study_name``,
    ``storage``, ``timeout``, ``seed``, ``pruner``, ``space``.
"""

import copy
import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path

import yaml

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import ConfigError

__all__ = [
    "DEFAULTS",
    "default_config",
    "load_config",
    "parse_override",
    "apply_overrides",
    "resolve_config",
    "dump_config",
    "COLUMN_ALIASES",
]

#: Default value of every known key, per section. ``model`` is free-form (see module doc).
DEFAULTS = {
    "model": {},
    "data": {
        "root": None,
        "crop_size": [32, 64, 64],
        "samples_per_cube": 4,
        "normalization": "channel_noise",
        "scale": 1.0,
        "targets": [],
        "target_scaling": {},
        "class_column": "class",
        "cutout_size": [32, 32],
        "line_width": "auto",
        "input": "dirty",
        "augment": True,
        "flip_spectral": False,
        "num_workers": 0,
    },
    "optim": {
        "name": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "betas": [0.9, 0.999],
        "scheduler": "cosine",
        "warmup_epochs": 0,
        "min_lr": 0.0,
        "plateau_factor": 0.5,
        "plateau_patience": 3,
        "grad_clip": None,
    },
    "loss": {"terms": None, "huber_delta": 1.0, "ssim_window": 7},
    "train": {
        "epochs": 10,
        "batch_size": 4,
        "seed": 0,
        "device": "auto",
        "amp": "auto",
        "early_stopping": None,
        "resume": False,
        "init_from": None,
        "progress": True,
    },
    "output": {"dir": "runs/deepfocus", "overwrite": False},
    "sweep": {
        "n_trials": 10,
        "study_name": "deepfocus",
        "storage": None,
        "timeout": None,
        "seed": 0,
        "pruner": {"n_startup_trials": 2, "n_warmup_steps": 1},
        "space": {},
    },
}

_CHOICES = {
    ("data", "normalization"): ("channel_noise", "cube_noise", "fixed", "none"),
    ("data", "input"): ("dirty", "clean"),
    ("optim", "name"): ("adam", "adamw", "sgd"),
    ("optim", "scheduler"): ("cosine", "plateau", "none"),
    ("train", "amp"): ("auto", True, False),
}
_SCALINGS = ("log", "linear", "none")
_LOSS_TERMS = ("l1", "mse", "huber", "ssim", "ce")
_DEFAULT_LOSS = {"deconvolver": {"l1": 1.0}, "regressor": {"mse": 1.0}, "classifier": {"ce": 1.0}}
_DMODES = ("deconvolver", "regressor", "classifier")


def default_config():
    """A deep copy of :data:`DEFAULTS`.

    Returns
    -------
    dict
        Every section with its default values.
    """
    return copy.deepcopy(DEFAULTS)


def load_config(source, *, overrides=()):
    """Read a configuration from a YAML/TOML file or a mapping, then apply overrides.

    Parameters
    ----------
    source : str, `~pathlib.Path` or Mapping
        A ``.yaml``/``.yml``/``.toml``/``.json`` file, or a nested mapping (not modified).
    overrides : sequence of str, optional
        ``"section.key=value"`` strings; values are parsed as YAML (``1e-3`` as a float).

    Returns
    -------
    dict
        The merged, validated configuration with defaults filled in
        (see :func:`resolve_config`).

    Raises
    ------
    ConfigError
        Unreadable file, unknown key or invalid value; the message names the key.
    FileNotFoundError
        ``source`` is a path that does not exist.
    """
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        raw = _read_file(Path(source))
    apply_overrides(raw, [parse_override(text) for text in overrides])
    return resolve_config(raw)


def _read_file(path):
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse configuration file {str(path)!r}: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"configuration file {str(path)!r} must hold a mapping of sections")
    return dict(raw)


def parse_override(text):
    """Split ``"section.key=value"`` into a dotted key and a typed value.

    Parameters
    ----------
    text : str
        Override as typed after ``--set``. The value is parsed as YAML, and numbers in
        exponent notation without a dot (``1e-3``) become floats.

    Returns
    -------
    tuple of (str, object)
        Dotted key and value.

    Raises
    ------
    ConfigError
        No ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like 'section.key=value'")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value of override {text!r}: {exc}") from exc
    if isinstance(parsed, str):
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip(), parsed


def apply_overrides(config, overrides):
    """Set dotted keys in a nested mapping, in place.

    Parameters
    ----------
    config : dict
        Nested configuration (modified).
    overrides : iterable of (str, object) or Mapping
        Dotted keys (``"optim.lr"``) and values. Intermediate mappings are created.

    Returns
    -------
    dict
        ``config`` itself.

    Raises
    ------
    ConfigError
        A dotted key crosses a value that is not a mapping.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for dotted, value in items:
        parts = dotted.split(".")
        node = config
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return config


def resolve_config(raw):
    """Merge a configuration with the defaults and validate every value.

    Parameters
    ----------
    raw : Mapping
        Nested configuration (not modified).

    Returns
    -------
    dict
        Complete configuration. ``loss.terms`` defaults to ``{l1: 1}`` for a deconvolver,
        ``{mse: 1}`` for a regressor and ``{ce: 1}`` for a classifier.

    Raises
    ------
    ConfigError
        Unknown section or key, wrong type or value; the message names the key.
    """
    config = default_config()
    for section, values in dict(raw).items():
        if section not in DEFAULTS:
            raise ConfigError(
                f"unknown configuration section {section!r}; known sections: "
                f"{', '.join(DEFAULTS)}"
            )
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"configuration section {section!r} must be a mapping")
        if section == "model":
            config["model"] = copy.deepcopy(dict(values))
            continue
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(
                    f"unknown configuration key '{section}.{key}'; known keys of "
                    f"{section!r}: {', '.join(DEFAULTS[section])}"
                )
            config[section][key] = copy.deepcopy(value)
    _validate(config)
    return config


def _fail(key, message):
    raise ConfigError(f"configuration key '{key}' {message}")


def _validate(config):
    model = config["model"]
    dmode = model.get("dmode")
    if dmode not in _DMODES:
        _fail("model.dmode", f"must be one of {', '.join(_DMODES)}, got {dmode!r}")
    for (section, key), choices in _CHOICES.items():
        if config[section][key] not in choices:
            _fail(f"{section}.{key}", f"must be one of {choices}, got {config[section][key]!r}")
    _validate_numbers(config)
    _validate_data(config["data"], dmode, model)
    if config["loss"]["terms"] is None:
        config["loss"]["terms"] = dict(_DEFAULT_LOSS[dmode])
    _validate_loss(config["loss"], dmode)


def _validate_numbers(config):
    positive_int = [("train", "epochs"), ("train", "batch_size"), ("data", "samples_per_cube")]
    for section, key in positive_int:
        value = config[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(f"{section}.{key}", f"must be a positive integer, got {value!r}")
    non_negative = [("optim", "lr"), ("optim", "weight_decay"), ("optim", "min_lr"),
                    ("optim", "warmup_epochs"), ("optim", "momentum"), ("data", "num_workers")]
    for section, key in non_negative:
        value = config[section][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            _fail(f"{section}.{key}", f"must be a non-negative number, got {value!r}")
    if config["optim"]["lr"] <= 0:
        _fail("optim.lr", f"must be positive, got {config['optim']['lr']!r}")
    patience = config["train"]["early_stopping"]
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        _fail("train.early_stopping", f"must be null or a positive integer, got {patience!r}")
    seed = config["train"]["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail("train.seed", f"must be a non-negative integer, got {seed!r}")
    if not isinstance(config["output"]["dir"], (str, Path)):
        _fail("output.dir", "must be a directory path")
    if not 0 < config["optim"]["plateau_factor"] < 1:
        _fail("optim.plateau_factor", "must lie in (0, 1)")


def _int_list(key, value, lengths):
    if (not isinstance(value, (list, tuple)) or len(value) not in lengths
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        _fail(key, f"must be a list of {' or '.join(map(str, lengths))} positive integers, "
                   f"got {value!r}")
    return [int(v) for v in value]


def _validate_data(data, dmode, model):
    if data["root"] is None:
        _fail("data.root", "is required: the directory holding Train/, Validation/ and Test/")
    spatial_dims = model.get("spatial_dims", 3)
    if dmode == "deconvolver":
        data["crop_size"] = _int_list("data.crop_size", data["crop_size"], (spatial_dims,))
    else:
        data["cutout_size"] = _int_list("data.cutout_size", data["cutout_size"], (spatial_dims,))
    if dmode == "regressor":
        targets = data["targets"]
        if isinstance(targets, str):
            targets = [targets]
        if not targets or not all(isinstance(t, str) for t in targets):
            _fail("data.targets", "must list the params-CSV columns a regressor predicts")
        data["targets"] = [_canonical_column(t) for t in targets]
        n_out = model.get("out_channels")
        if n_out is not None and n_out != len(data["targets"]):
            _fail("model.out_channels", f"is {n_out} but data.targets lists "
                                        f"{len(data['targets'])} columns; make them agree")
    scaling = data["target_scaling"]
    if not isinstance(scaling, Mapping):
        _fail("data.target_scaling", "must map column names to log, linear or none")
    data["target_scaling"] = {_canonical_column(k): v for k, v in scaling.items()}
    for column, kind in data["target_scaling"].items():
        if kind not in _SCALINGS:
            _fail(f"data.target_scaling.{column}", f"must be one of {_SCALINGS}, got {kind!r}")
        if column not in data["targets"]:
            _fail(f"data.target_scaling.{column}", "names a column that is not in data.targets")
    width = data["line_width"]
    if width != "auto" and (isinstance(width, bool) or not isinstance(width, int) or width < 0):
        _fail("data.line_width", f"must be 'auto' or a non-negative integer, got {width!r}")
    if data["normalization"] == "fixed" and not (isinstance(data["scale"], (int, float))
                                                 and data["scale"] > 0):
        _fail("data.scale", "must be a positive number (Jy/beam) with normalization 'fixed'")


def _validate_loss(loss, dmode):
    terms = loss["terms"]
    if not isinstance(terms, Mapping) or not terms:
        _fail("loss.terms", f"must map loss names ({', '.join(_LOSS_TERMS)}) to weights")
    for name, weight in terms.items():
        if name not in _LOSS_TERMS:
            _fail(f"loss.terms.{name}", f"is not a known loss; known: {', '.join(_LOSS_TERMS)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            _fail(f"loss.terms.{name}", f"weight must be a non-negative number, got {weight!r}")
    if dmode == "classifier" and set(terms) != {"ce"}:
        _fail("loss.terms", "of a classifier must be {ce: weight} (cross-entropy)")
    if dmode != "classifier" and "ce" in terms:
        _fail("loss.terms.ce", f"(cross-entropy) needs dmode classifier, not {dmode}")
    if dmode == "regressor" and "ssim" in terms:
        _fail("loss.terms.ssim", "applies to images; a regressor predicts numbers")
    if not math.fsum(terms.values()) > 0:
        _fail("loss.terms", "needs at least one positive weight")


#: Original Deep Focus column names read as aliases of the DESIGN.md ones.
COLUMN_ALIASES = {"fwhm_x": "fwhm_major", "fwhm_y": "fwhm_minor"}


def _canonical_column(name):
    return COLUMN_ALIASES.get(name, name)


def dump_config(config, path):
    """Write a configuration as YAML, atomically.

    Parameters
    ----------
    config : Mapping
        Configuration (plain values only).
    path : str or `~pathlib.Path`
        Destination file; written to a temporary name first, then renamed.
    """
    text = yaml.safe_dump(_plain(config), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
