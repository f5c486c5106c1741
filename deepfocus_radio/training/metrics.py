"""Evaluation metrics of deconvolvers, regressors and classifiers."""

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["image_metrics", "regression_metrics", "classification_metrics", "ANGULAR_COLUMNS"]

#: Columns compared modulo 180 deg (position angles).
ANGULAR_COLUMNS = ("pa",)


def _ssim(prediction, target, data_range):
    window = min(7, *target.shape)
    window -= 1 - window % 2
    if window < 3:
        return float("nan")
    return float(structural_similarity(target, prediction, data_range=data_range,
                                       win_size=window, gaussian_weights=False))


def image_metrics(prediction, target, *, noise=None):
    """Compare a predicted image or cube with its target.

    Parameters
    ----------
    prediction, target : ndarray
        Same shape, same unit (Jy/beam for clean cubes).
    noise : ndarray, shape (nchan,), optional
        Per-channel noise of the input (same unit): the flux-recovery mask is
        ``target > 3 * noise``; without it, ``target > 0.1 * max(target)``.

    Returns
    -------
    dict
        ``l1`` (mean absolute error), ``mse``, ``ssim`` (window 7 or the smallest axis,
        range of the target), ``psnr`` (dB, peak = range of the target) and
        ``flux_recovery`` (sum of the prediction over the mask / sum of the target there;
        1 is perfect, NaN when the mask is empty).
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from target shape "
                         f"{target.shape}")
    finite = np.isfinite(prediction) & np.isfinite(target)
    prediction, target = np.where(finite, prediction, 0.0), np.where(finite, target, 0.0)
    error = prediction - target
    mse = float(np.mean(error**2))
    data_range = float(target.max() - target.min()) or 1.0
    psnr = float(10 * np.log10(data_range**2 / mse)) if mse > 0 else float("inf")
    if noise is not None and target.ndim == 3:
        mask = target > 3.0 * np.asarray(noise, dtype=np.float64)[:, None, None]
    else:
        mask = target > 0.1 * target.max()
    total = target[mask].sum()
    recovery = float(prediction[mask].sum() / total) if mask.any() and total != 0 else float("nan")
    return {"l1": float(np.mean(np.abs(error))), "mse": mse,
            "ssim": _ssim(prediction, target, data_range), "psnr": psnr,
            "flux_recovery": recovery}


def regression_metrics(true, predicted, columns):
    """Per-parameter error statistics of a regressor.

    Parameters
    ----------
    true, predicted : array-like, shape (n_sources, n_columns)
        True and predicted values, in the units of the params CSV.
    columns : sequence of str
        Column names; ``pa`` errors are wrapped to [-90, 90) deg and their relative error
        is taken relative to 180 deg.

    Returns
    -------
    dict of str to dict
        For each column: ``bias`` (mean of predicted - true), ``scatter`` (standard
        deviation of predicted - true), ``median_relative_error`` (median of
        ``|predicted - true| / |true|``), ``fraction_within_10pct`` (share of sources
        with a relative error below 0.1), ``rmse``, ``rmse_of_mean`` (rmse of always
        predicting the mean of ``true``: a skill reference) and ``n``.
    """
    true = np.asarray(true, dtype=np.float64).reshape(-1, len(columns))
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, len(columns))
    out = {}
    for j, column in enumerate(columns):
        t, p = true[:, j], predicted[:, j]
        error = p - t
        if column in ANGULAR_COLUMNS:
            error = np.mod(error + 90.0, 180.0) - 90.0
            relative = np.abs(error) / 180.0
            reference = np.mod(t - np.mean(t) + 90.0, 180.0) - 90.0
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = np.abs(error) / np.abs(t)
            reference = t - np.mean(t)
        out[column] = {
            "bias": float(np.mean(error)), "scatter": float(np.std(error)),
            "median_relative_error": float(np.median(relative)),
            "fraction_within_10pct": float(np.mean(relative < 0.1)),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "rmse_of_mean": float(np.sqrt(np.mean(reference**2))),
            "n": int(len(t)),
        }
    return out


def classification_metrics(true, predicted, classes):
    """Accuracy, per-class precision and recall, and the confusion matrix.

    Parameters
    ----------
    true, predicted : array-like of int
        Class indices.
    classes : sequence of str
        Class names, by index.

    Returns
    -------
    dict
        ``accuracy``; ``precision`` and ``recall`` (dicts by class name, NaN for a class
        never predicted / never present); ``confusion_matrix`` (list of lists, rows =
        true class, columns = predicted class); ``classes``; ``n``.
    """
    true = np.asarray(true, dtype=int)
    predicted = np.asarray(predicted, dtype=int)
    n = len(classes)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (true, predicted), 1)
    diagonal = np.diag(matrix).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = diagonal / matrix.sum(axis=0)
        recall = diagonal / matrix.sum(axis=1)
    return {
        "accuracy": float(diagonal.sum() / max(1, matrix.sum())),
        "precision": {c: float(v) for c, v in zip(classes, precision)},
        "recall": {c: float(v) for c, v in zip(classes, recall)},
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
        "n": int(len(true)),
    }
