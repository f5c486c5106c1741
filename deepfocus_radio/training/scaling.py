"""Scaling of regression targets (e.g. log for fluxes), inverted at prediction time."""

import numpy as np

from deepfocus_radio.exceptions import InputDataError

__all__ = ["TargetScaler"]


class TargetScaler:
    """Per-column transform ``log10`` (or identity), then standardization.

    Parameters
    ----------
    columns : sequence of str
        Target names, in network output order.
    kinds : sequence of {'log', 'linear', 'none'}
        ``log``: log10 then standardize; ``linear``: standardize; ``none``: unchanged.
    mean, std : sequence of float
        Standardization constants (of the transformed values).
    """

    def __init__(self, columns, kinds, mean, std):
        self.columns = list(columns)
        self.kinds = list(kinds)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, values, columns, scaling):
        """Fit the constants on training values.

        Parameters
        ----------
        values : array-like, shape (n_samples, n_columns)
            Raw target values.
        columns : sequence of str
            Column names.
        scaling : Mapping of str to str
            Kind per column; missing columns are ``linear``.

        Returns
        -------
        TargetScaler

        Raises
        ------
        InputDataError
            A ``log`` column holds values <= 0.
        """
        values = np.asarray(values, dtype=np.float64).reshape(-1, len(columns))
        kinds = [scaling.get(c, "linear") for c in columns]
        for j, (column, kind) in enumerate(zip(columns, kinds)):
            if kind == "log" and not np.all(values[:, j] > 0):
                raise InputDataError(f"target {column!r} has values <= 0 and cannot be scaled "
                                     f"with 'log'; set data.target_scaling.{column} to linear")
        scaler = cls(columns, kinds, np.zeros(len(columns)), np.ones(len(columns)))
        logged = scaler._forward_kind(values)
        mean, std = logged.mean(axis=0), logged.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        none = np.array([k == "none" for k in kinds])
        scaler.mean = np.where(none, 0.0, mean)
        scaler.std = np.where(none, 1.0, std)
        return scaler

    def _forward_kind(self, values):
        out = np.array(values, dtype=np.float64)
        for j, kind in enumerate(self.kinds):
            if kind == "log":
                out[..., j] = np.log10(out[..., j])
        return out

    def transform(self, values):
        """Raw values (..., n_columns) to network units."""
        return (self._forward_kind(values) - self.mean) / self.std

    def inverse(self, scaled):
        """Network outputs (..., n_columns) back to raw values."""
        out = np.asarray(scaled, dtype=np.float64) * self.std + self.mean
        for j, kind in enumerate(self.kinds):
            if kind == "log":
                out[..., j] = 10.0 ** out[..., j]
        return out

    def to_dict(self):
        """Plain-value description (for checkpoints)."""
        return {"columns": self.columns, "kinds": self.kinds,
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, state):
        """Inverse of :meth:`to_dict`."""
        return cls(state["columns"], state["kinds"], state["mean"], state["std"])
