"""Exceptions and warnings raised by deepfocus_radio.

Every error derives from :class:`DeepFocusError`; most also derive from the builtin
exception a user would expect (``ValueError``, ``FileNotFoundError``...), so both
``except DeepFocusError`` and ``except ValueError`` work.
"""

__all__ = [
    "DeepFocusError",
    "ConfigError",
    "InputDataError",
    "ModelMismatchError",
    "CheckpointError",
    "OutputExistsError",
    "DeepFocusWarning",
    "OutOfTrainingRangeWarning",
    "TileShrunkWarning",
    "NoSourcesFoundWarning",
]


class DeepFocusError(Exception):
    """Base class of all errors raised by deepfocus_radio."""


class ConfigError(DeepFocusError, ValueError):
    """A setting or configuration key is invalid; the message names the key."""


class InputDataError(DeepFocusError, ValueError):
    """Input data (file, array, header) cannot be used as given."""


class ModelMismatchError(DeepFocusError, ValueError):
    """A model does not fit the data (channels, dimensions) or the checkpoint."""


class CheckpointError(DeepFocusError, ValueError):
    """A model file is unreadable, tampered with, or not a deepfocus checkpoint."""


class OutputExistsError(DeepFocusError, FileExistsError):
    """An output path exists and overwriting was not requested."""


class DeepFocusWarning(UserWarning):
    """Base class of all warnings issued by deepfocus_radio."""


class OutOfTrainingRangeWarning(DeepFocusWarning):
    """The input lies outside the range a shipped model was trained on."""


class TileShrunkWarning(DeepFocusWarning):
    """A requested tile was larger than the data and has been shrunk."""


class NoSourcesFoundWarning(DeepFocusWarning):
    """Detection found nothing; the result is an empty catalogue."""
