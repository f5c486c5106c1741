"""Cards of shipped models: :class:`PretrainedInfo`, read from ``weights/<name>.json``.

A shipped model is a pair of files in the weights folder: ``<name>.safetensors`` (written by
:func:`~deepfocus_radio.models.checkpoint.save_model`) and the card ``<name>.json`` saying
what the weights are, how inputs must be normalized, the range of data they were trained
on, their scores and licence, and the sha256 of the weights file.
"""

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import CheckpointError, ConfigError, OutOfTrainingRangeWarning

__all__ = ["PretrainedInfo", "default_weights_dir", "file_sha256",
           "get_pretrained_info", "list_pretrained"]


def default_weights_dir():
    """Folder of the shipped models: ``deepfocus_radio/models/weights``."""
    return Path(__file__).resolve().parent / "weights"


def file_sha256(path):
    """Hexadecimal sha256 of a file's bytes, read in 1 MiB blocks.

    Parameters
    ----------
    path : str or os.PathLike
        File to hash.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class PretrainedInfo:
    """Card of a shipped model.

    Attributes
    ----------
    name : str
        Shipped name, e.g. ``"alma"``.
    file : str
        Weights file name, relative to the weights folder.
    sha256 : str
        Hexadecimal sha256 of the weights file.
    config : dict
        Model configuration (as in ``model.config``).
    normalization : str
        How inputs are normalized before the network (``"channel_noise"``: each channel
        divided by its MAD noise).
    training_ranges : dict
        ``{quantity: [min, max]}`` of the training data, unit in the key (e.g.
        ``"beam_fwhm_pix"``, ``"channel_width_kms"``, ``"noise_jy_beam"``).
    scores : dict
        Test scores (e.g. F1, completeness).
    licence : str
        Licence of the weights.
    description : str
        One line on what the model was trained for.
    tiling : dict
        Default ``tile`` and ``halo`` (chan, y, x voxels) for tiled inference with this
        model (``predict_tiled`` uses them when none are given).
    calibration : dict
        Error terms measured on simulated calibration cubes (not the test set), e.g.
        ``flux_fractional_error``: the deconvolution's own flux error as a fraction of the
        flux, added in quadrature to the noise term of ``flux_err`` by ``find_sources``.
    """

    name: str
    file: str
    sha256: str
    config: dict
    normalization: str = "channel_noise"
    training_ranges: dict = dataclasses.field(default_factory=dict)
    scores: dict = dataclasses.field(default_factory=dict)
    licence: str = ""
    description: str = ""
    tiling: dict = dataclasses.field(default_factory=dict)
    calibration: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        """Return the card as a plain JSON-serializable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, *, source="card"):
        """Build a card from a dict; unknown or missing fields raise CheckpointError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        missing_value = dataclasses.MISSING
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is missing_value and f.default_factory is missing_value}
        if not isinstance(data, dict):
            raise CheckpointError(f"{source} must hold a JSON object; got {type(data).__name__}")
        unknown, missing = set(data) - fields, required - set(data)
        if unknown or missing:
            raise CheckpointError(f"{source} is not a valid model card: unknown fields "
                                  f"{sorted(unknown)}, missing fields {sorted(missing)}; "
                                  f"allowed fields: {sorted(fields)}")
        return cls(**data)

    @classmethod
    def read(cls, path):
        """Read a card from a JSON file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"model card {str(path)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, source=f"model card {str(path)!r}")

    def write(self, path):
        """Write the card as JSON, atomically."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def check_ranges(self, *, warn=True, **values):
        """Compare properties of the input data with the training ranges.

        Parameters
        ----------
        warn : bool, optional
            Issue an :class:`~deepfocus_radio.exceptions.OutOfTrainingRangeWarning` for
            each value outside its range.
        **values : float
            Keys of :attr:`training_ranges` (e.g. ``beam_fwhm_pix=3.5``); keys without a
            recorded range are ignored.

        Returns
        -------
        list of str
            One message per value outside its training range (empty when all are inside).
        """
        problems = []
        for key, value in values.items():
            if key not in self.training_ranges:
                continue
            low, high = self.training_ranges[key]
            if not low <= value <= high:
                problems.append(f"{key} = {value} is outside the range [{low}, {high}] that "
                                f"model {self.name!r} was trained on; results may be unreliable")
        if warn:
            for message in problems:
                warnings.warn(message, OutOfTrainingRangeWarning, stacklevel=2)
        return problems


def _folder(weights_dir):
    return Path(weights_dir) if weights_dir is not None else default_weights_dir()


def list_pretrained(*, weights_dir=None):
    """Return the cards of the shipped models, sorted by name.

    Parameters
    ----------
    weights_dir : str or os.PathLike, optional
        Folder of the shipped models (default: the package's ``models/weights``).

    Returns
    -------
    list of PretrainedInfo
        Empty when no model is shipped.
    """
    folder = _folder(weights_dir)
    if not folder.is_dir():
        return []
    return [PretrainedInfo.read(path) for path in sorted(folder.glob("*.json"))]


def get_pretrained_info(name, *, weights_dir=None):
    """Return the card of the shipped model ``name``.

    Parameters
    ----------
    name : str
        Shipped name, e.g. ``"alma"``.
    weights_dir : str or os.PathLike, optional
        Folder of the shipped models (default: the package's ``models/weights``).

    Returns
    -------
    PretrainedInfo

    Raises
    ------
    ConfigError
        If there is no such shipped model; the message lists the shipped names and says
        that a path is also accepted.
    CheckpointError
        If the card is not valid JSON, has unknown or missing fields, or names another
        model.
    """
    path = _folder(weights_dir) / f"{name}.json"
    if not path.is_file():
        names = [card.name for card in list_pretrained(weights_dir=weights_dir)]
        raise ConfigError(f"unknown model {name!r}: shipped models are {names}; a path to a "
                          f"'.safetensors' or '.pt' model file, or an nn.Module, is also "
                          f"accepted")
    card = PretrainedInfo.read(path)
    if card.name != name:
        raise CheckpointError(f"model card {str(path)!r} is for model {card.name!r}, not {name!r}")
    return card
