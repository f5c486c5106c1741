"""Turn a validated configuration into data sets, checking the data before any training."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.training.data import (
    DeconvolverDataset,
    NoiseCache,
    SourceDataset,
    find_cubes,
    read_params,
)
from deepfocus_radio.training.scaling import TargetScaler

__all__ = ["DataBundle", "split_dir", "build_datasets", "model_config_for"]

_PARAM_SPLITS = {"Train": "train", "Validation": "valid", "Test": "test"}


@dataclass
class DataBundle:
    """Data sets of some splits, with what is needed to read predictions back.

    Attributes
    ----------
    datasets : dict of str to `torch.utils.data.Dataset`
        By split name (``Train``, ``Validation``, ``Test``).
    scaler : TargetScaler or None
        Regressor target scaling, fitted on the training split.
    classes : list of str or None
        Classifier labels, in output order.
    """

    datasets: dict = field(default_factory=dict)
    scaler: TargetScaler | None = None
    classes: list | None = None


def split_dir(config, split):
    """Folder of a split, checked to exist.

    Parameters
    ----------
    config : Mapping
        Resolved configuration (``data.root``).
    split : str
        ``Train``, ``Validation`` or ``Test``.

    Returns
    -------
    `~pathlib.Path`

    Raises
    ------
    ConfigError
        ``data.root`` or the split folder does not exist.
    """
    root = Path(config["data"]["root"]).expanduser()
    if not root.is_dir():
        raise ConfigError(f"configuration key 'data.root' names {str(root)!r}, which is not a "
                          "directory; point it at the folder holding Train/, Validation/, Test/")
    folder = root / split
    if not folder.is_dir():
        raise ConfigError(f"data.root {str(root)!r} has no {split}/ folder (expected the "
                          "DESIGN.md layout Train/, Validation/, Test/)")
    return folder


def _records(config, split):
    folder = split_dir(config, split)
    records = find_cubes(folder)
    if not records:
        raise ConfigError(f"split {split} in data.root is empty: {folder} holds no "
                          "dirty_cube_<ID>.fits / clean_cube_<ID>.fits pair")
    return records


def _noise(config):
    data = config["data"]
    return NoiseCache(data["normalization"], scale=data["scale"])


def build_datasets(config, *, splits=("Train", "Validation"), scaler=None, classes=None,
                   augment=True):
    """Data sets for some splits, after checking folders, files and columns.

    Parameters
    ----------
    config : Mapping
        Resolved configuration (:func:`~deepfocus_radio.training.config.resolve_config`).
    splits : sequence of str, optional
        Splits to open.
    augment : bool, optional
        Apply ``data.augment`` to the ``Train`` split (other splits are never augmented).
    scaler : TargetScaler, optional
        Regressor scaling to use instead of fitting one on ``Train`` (evaluation).
    classes : sequence of str, optional
        Classifier labels to use instead of those found in ``Train``.

    Returns
    -------
    DataBundle

    Raises
    ------
    ConfigError
        Missing folder, empty split, crop larger than a cube.
    InputDataError
        Params CSV missing or lacking a requested column.
    """
    data, dmode = config["data"], config["model"]["dmode"]
    seed = config["train"]["seed"]
    bundle = DataBundle(scaler=scaler, classes=None if classes is None else list(classes))
    for offset, split in enumerate(splits):
        records = _records(config, split)
        options = dict(noise=_noise(config), augment=augment and data["augment"] and split == "Train",
                       flip_spectral=data["flip_spectral"], seed=seed + offset * 7919)
        if dmode == "deconvolver":
            bundle.datasets[split] = DeconvolverDataset(
                records, crop_size=data["crop_size"],
                samples_per_cube=data["samples_per_cube"], **options)
            continue
        bundle.datasets[split] = _source_dataset(config, split, records, bundle, options)
    return bundle


def _source_dataset(config, split, records, bundle, options):
    data, dmode = config["data"], config["model"]["dmode"]
    required = list(data["targets"]) if dmode == "regressor" else [data["class_column"]]
    try:
        table = read_params(split_dir(config, split), required=required)
    except InputDataError as exc:
        raise InputDataError(f"{exc}; it is requested by "
                             f"{'data.targets' if dmode == 'regressor' else 'data.class_column'}"
                             ) from exc
    if dmode == "classifier" and bundle.classes is None:
        bundle.classes = sorted({str(v) for v in table[data["class_column"]]})
    dataset = SourceDataset(
        records, table, cutout_size=data["cutout_size"],
        targets=data["targets"] if dmode == "regressor" else (),
        class_column=data["class_column"],
        classes=bundle.classes if dmode == "classifier" else None,
        line_width=data["line_width"], input_kind=data["input"], **options)
    if dmode == "regressor":
        if bundle.scaler is None:
            raw = [[dataset.raw_parameters(i)[c] for c in data["targets"]]
                   for i in range(len(dataset))]
            bundle.scaler = TargetScaler.fit(np.array(raw), data["targets"], data["target_scaling"])
        dataset.target_transform = bundle.scaler.transform
    return dataset


def model_config_for(config, bundle):
    """The model section completed with the output size the data imply.

    Parameters
    ----------
    config : Mapping
        Resolved configuration.
    bundle : DataBundle
        Opened data (classes of a classifier).

    Returns
    -------
    dict
        Copy of ``config['model']`` with ``out_channels`` set for regressors (number of
        targets) and classifiers (number of classes), ``in_channels`` defaulting to 1.

    Raises
    ------
    ConfigError
        ``model.out_channels`` disagrees with the number of classes.
    """
    model = dict(config["model"])
    model.setdefault("in_channels", 1)
    dmode = model["dmode"]
    if dmode == "regressor":
        model.setdefault("out_channels", len(config["data"]["targets"]))
    elif dmode == "classifier":
        n_classes = len(bundle.classes)
        if model.setdefault("out_channels", n_classes) != n_classes:
            raise ConfigError(f"configuration key 'model.out_channels' is "
                              f"{model['out_channels']} but the training split has {n_classes} "
                              f"classes in column {config['data']['class_column']!r}")
    return model
