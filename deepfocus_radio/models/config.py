"""Validation of model configurations: every key checked, every default filled in.

A configuration is a plain mapping (see DESIGN.md, "Model configuration"). :func:`resolve_config`
checks it against the keys of its architecture and returns a new plain ``dict`` holding every
key with its default filled in, JSON-serializable, so that a checkpoint can rebuild the model.
Any problem raises :class:`~deepfocus_radio.exceptions.ConfigError` naming the key and the
allowed values.
"""

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models.blocks import FINAL_ACTIVATIONS
from deepfocus_radio.models.layers import ACTIVATIONS

__all__ = ["ARCHITECTURES", "DMODES", "ArchSpec", "read_config_file", "resolve_config",
           "supported_combinations"]

DMODES = ("deconvolver", "regressor", "classifier")


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture supports; the first value of each tuple is the default."""

    dmodes: tuple
    blocks: tuple
    skip_connections: tuple
    norms: tuple
    keys: tuple


_DECONVOLVER_KEYS = ("block", "block_sizes", "depths", "skip_connections", "kernel_size",
                     "activation", "norm", "final_activation", "dropout", "pool_channels",
                     "pad_mode")
_HEAD_KEYS = ("skip_connections", "kernel_size", "activation", "norm", "final_activation",
              "dropout")

#: Architectures and what each supports (first value = default).
ARCHITECTURES = {
    "cae": ArchSpec(("deconvolver",), ("basic", "bottleneck"), (False, True), ("none", "batch"),
                    _DECONVOLVER_KEYS),
    "unet": ArchSpec(("deconvolver",), ("basic", "bottleneck"), (True, False), ("none", "batch"),
                     _DECONVOLVER_KEYS),
    "resnet": ArchSpec(("regressor", "classifier"), ("basic", "bottleneck"), (True, False),
                       ("batch", "instance", "none"),
                       ("block", "depths", "block_sizes", "init_features", "stem") + _HEAD_KEYS),
    "densenet": ArchSpec(("regressor", "classifier"), ("bottleneck", "basic"), (True,),
                         ("batch", "instance", "none"),
                         ("block", "depths", "growth_rate", "bn_size", "compression",
                          "init_features", "stem") + _HEAD_KEYS),
    "vgg": ArchSpec(("regressor", "classifier"), ("basic",), (False,),
                    ("none", "batch", "instance"),
                    ("block", "depths", "block_sizes") + _HEAD_KEYS
                    + ("head_features", "pool_size")),
}

_COMMON_KEYS = ("arch", "dmode", "spatial_dims", "in_channels", "out_channels")


def supported_combinations():
    """Return the supported ``(arch, dmode)`` pairs, in table order."""
    return [(arch, dmode) for arch, spec in ARCHITECTURES.items() for dmode in spec.dmodes]


def _type_name(value):
    return type(value).__name__


def _choice(key, value, allowed, where=""):
    if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
        raise ConfigError(f"config key {key!r} = {value!r} is not allowed{where}; "
                          f"allowed values: {list(allowed)}")
    return value


def _integer(key, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"config key {key!r} must be an integer >= {minimum}; "
                          f"got {value!r} ({_type_name(value)})")
    return int(value)


def _int_list(key, value, *, allow_empty=False):
    ok = isinstance(value, (list, tuple)) and (allow_empty or len(value) > 0) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        what = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(f"config key {key!r} must be {what} of integers >= 1, e.g. [2, 2]; "
                          f"got {value!r} ({_type_name(value)})")
    return [int(v) for v in value]


def _number(key, value, low, high, *, low_open=False, high_open=True):
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        raise ConfigError(f"config key {key!r} must be a number in {interval}; "
                          f"got {value!r} ({_type_name(value)})")
    return float(value)


def _boolean(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"config key {key!r} must be true or false; "
                          f"got {value!r} ({_type_name(value)})")
    return value


def _kernel(key, value, spatial_dims):
    def odd(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1 and v % 2 == 1

    if odd(value):
        return int(value)
    if isinstance(value, (list, tuple)) and len(value) == spatial_dims and all(map(odd, value)):
        return [int(v) for v in value]
    raise ConfigError(f"config key {key!r} must be an odd integer >= 1 or a list of "
                      f"{spatial_dims} odd integers (one per axis, e.g. [1, 3, 3]); got {value!r}")


def _geometric(start, count, cap=None):
    sizes = [start * 2**i for i in range(count)]
    return [min(s, cap) for s in sizes] if cap else sizes


def _default(key, arch, spec, cfg):
    """Default of ``key`` for ``arch``, given the keys resolved so far (``cfg``)."""
    stage_count = len(cfg.get("depths") or cfg.get("block_sizes") or [0] * 4)
    defaults = {
        "dmode": spec.dmodes[0],
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 2 if cfg.get("dmode") == "classifier" else 1,
        "block": spec.blocks[0],
        "skip_connections": spec.skip_connections[0],
        "norm": spec.norms[0],
        "kernel_size": 3,
        "activation": "relu",
        "final_activation": "none",
        "dropout": 0.5 if arch == "vgg" else 0.0,
        "pool_channels": True,
        "pad_mode": "reflect",
        "init_features": 2 * cfg.get("growth_rate", 32) if arch == "densenet" else 64,
        "stem": "imagenet",
        "growth_rate": 32,
        "bn_size": 4,
        "compression": 0.5,
        "head_features": [4096, 4096],
        "pool_size": 7 if cfg.get("spatial_dims") == 2 else 1,
    }
    if key == "block_sizes":
        if arch in ("cae", "unet"):
            return [8, 16, 32, 64]
        return _geometric(64, stage_count, cap=512 if arch == "vgg" else None)
    if key == "depths":
        if arch in ("cae", "unet"):
            return [1] * len(cfg["block_sizes"])
        return {"resnet": [2, 2, 2, 2], "densenet": [6, 12, 24, 16],
                "vgg": [1, 1, 2, 2, 2]}[arch]
    return defaults[key]


def _check_value(key, value, arch, spec, cfg):
    where = f" for arch {arch!r}"
    simple_choices = {
        "dmode": spec.dmodes, "block": spec.blocks, "skip_connections": spec.skip_connections,
        "activation": ACTIVATIONS, "pad_mode": ("reflect", "replicate", "constant"),
        "stem": ("imagenet", "small"),
    }
    if key == "norm":
        note = (" (deconvolvers use no per-sample normalization, so that tiled output "
                "equals whole-cube output)" if spec.dmodes == ("deconvolver",) else "")
        return _choice(key, value, spec.norms, where + note)
    if key in simple_choices:
        return _choice(key, value, simple_choices[key], where)
    if key == "spatial_dims":
        return _choice(key, value, (2, 3))
    if key == "final_activation":
        if cfg["dmode"] == "classifier":
            return _choice(key, value, ("none",), " for dmode 'classifier' (outputs are logits; "
                           "use predict_proba for probabilities)")
        return _choice(key, value, FINAL_ACTIVATIONS)
    if key in ("in_channels", "out_channels", "growth_rate", "bn_size", "init_features",
               "pool_size"):
        minimum = 2 if key == "out_channels" and cfg["dmode"] == "classifier" else 1
        return _integer(key, value, minimum)
    if key in ("depths", "block_sizes", "head_features"):
        return _int_list(key, value, allow_empty=key == "head_features")
    if key == "dropout":
        return _number(key, value, 0.0, 1.0)
    if key == "compression":
        return _number(key, value, 0.0, 1.0, low_open=True, high_open=False)
    if key == "kernel_size":
        return _kernel(key, value, cfg["spatial_dims"])
    if key == "pool_channels":
        value = _boolean(key, value)
        if not value and cfg["spatial_dims"] != 3:
            raise ConfigError("config key 'pool_channels' = False needs spatial_dims = 3 "
                              "(it keeps the channel axis of a cube unpooled)")
        return value
    raise AssertionError(f"no check for key {key!r}")  # pragma: no cover - table is complete


def _check_keys(config, arch, spec):
    allowed = _COMMON_KEYS + spec.keys
    for key in config:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r} for arch {arch!r}{hint}; "
                              f"allowed keys: {sorted(allowed)}")


def _check_arch(config):
    if not hasattr(config, "keys") or not hasattr(config, "__getitem__"):
        raise ConfigError(f"a model configuration must be a mapping (dict); "
                          f"got {_type_name(config)}")
    if "arch" not in config:
        raise ConfigError(f"config key 'arch' is required; allowed values: {list(ARCHITECTURES)}")
    arch = config["arch"]
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ConfigError(f"config key 'arch' = {arch!r} is not allowed; "
                          f"allowed values: {list(ARCHITECTURES)}")
    dmode = config.get("dmode", ARCHITECTURES[arch].dmodes[0])
    if dmode not in DMODES:
        raise ConfigError(f"config key 'dmode' = {dmode!r} is not allowed; "
                          f"allowed values: {list(DMODES)}")
    if dmode not in ARCHITECTURES[arch].dmodes:
        combos = ", ".join(f"{a}/{d}" for a, d in supported_combinations())
        raise ConfigError(f"arch {arch!r} does not support dmode {dmode!r}; supported "
                          f"(arch/dmode) combinations: {combos}")
    return arch, ARCHITECTURES[arch]


def resolve_config(config):
    """Validate a model configuration and fill in every default.

    Parameters
    ----------
    config : Mapping
        Keys of DESIGN.md "Model configuration": ``arch`` (required), ``dmode``,
        ``spatial_dims``, ``in_channels``, ``out_channels`` and the keys of the
        architecture (see the table in :mod:`deepfocus_radio.models`).

    Returns
    -------
    dict
        A new plain dict with every key of the architecture, JSON-serializable
        (lists, not tuples). The input is not modified.

    Raises
    ------
    ConfigError
        For a missing ``arch``, an unknown key, an ill-typed or disallowed value, an
        unsupported (arch, dmode) pair, or ``depths`` and ``block_sizes`` of different
        lengths; the message names the key and the allowed values.
    """
    arch, spec = _check_arch(config)
    _check_keys(config, arch, spec)
    cfg = {"arch": arch}
    for key in _COMMON_KEYS[1:] + spec.keys:
        value = config[key] if key in config else _default(key, arch, spec, cfg)
        cfg[key] = _check_value(key, value, arch, spec, cfg)
    if "block_sizes" in cfg and len(cfg["block_sizes"]) != len(cfg["depths"]):
        raise ConfigError(f"config keys 'depths' and 'block_sizes' must have the same length "
                          f"(one entry per stage); got depths={cfg['depths']} and "
                          f"block_sizes={cfg['block_sizes']}")
    json.dumps(cfg)  # guaranteed by the checks above; fail loudly here if not
    return cfg


def read_config_file(path):
    """Read a model configuration from a JSON, YAML or TOML file.

    Parameters
    ----------
    path : str or os.PathLike
        File ending in ``.json``, ``.yaml``/``.yml`` or ``.toml``.

    Returns
    -------
    dict
        The mapping read (not yet validated; pass it to ``build_model``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        For another extension, a parse error, or a file that does not hold a mapping.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".toml"):
        raise ConfigError(f"model configuration file {str(path)!r} must end in .json, .yaml, "
                          f".yml or .toml")
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # each parser has its own error class
        raise ConfigError(f"cannot parse model configuration {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"model configuration {str(path)!r} must hold a mapping of keys; "
                          f"got {_type_name(data)}")
    return data
