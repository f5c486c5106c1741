"""PNG plots of training and evaluation (matplotlib's object API, no global state)."""

import numpy as np

from deepfocus_radio._atomic import atomic_write

__all__ = [
    "save_figure",
    "plot_learning_curves",
    "plot_cube_panels",
    "plot_spectra",
    "plot_scatter",
    "plot_error_histograms",
    "plot_confusion_matrix",
]


def _figure(ncols=1, nrows=1, size=(4.0, 3.5)):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def save_figure(figure, path):
    """Save a figure as PNG atomically; returns the path."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def plot_learning_curves(history, path):
    """Training and validation loss (and learning rate) per epoch.

    Parameters
    ----------
    history : list of dict
        Epoch records with ``epoch``, ``train_loss``, ``val_loss``, ``lr``.
    path : str or `~pathlib.Path`
        PNG file to write.

    Returns
    -------
    `~pathlib.Path`
    """
    figure, axes = _figure(2, 1)
    epochs = [r["epoch"] + 1 for r in history]
    loss_axis, lr_axis = axes[0]
    loss_axis.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    loss_axis.plot(epochs, [r["val_loss"] for r in history], "s-", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Learning curves")
    loss_axis.legend()
    lr_axis.plot(epochs, [r["lr"] for r in history], "o-")
    lr_axis.set(xlabel="epoch", ylabel="learning rate (end of epoch)")
    return save_figure(figure, path)


def _moment0(cube):
    return np.nansum(np.asarray(cube, dtype=np.float64), axis=0)


def plot_cube_panels(panels, path, *, title=""):
    """Moment-0 images (sum over channels) of several cubes side by side.

    Parameters
    ----------
    panels : Mapping of str to ndarray
        Titles and (chan, y, x) cubes, e.g. dirty, target, prediction, residual; all
        panels but residuals share one colour scale.
    path : str or `~pathlib.Path`
        PNG file to write.
    title : str, optional
        Figure title.

    Returns
    -------
    `~pathlib.Path`
    """
    figure, axes = _figure(len(panels), 1, size=(3.2, 3.0))
    images = {name: _moment0(cube) for name, cube in panels.items()}
    shared = [im for name, im in images.items() if "residual" not in name]
    vmin = min(float(np.min(im)) for im in shared)
    vmax = max(float(np.max(im)) for im in shared)
    for axis, (name, image) in zip(axes[0], images.items()):
        if "residual" in name:
            extent = float(np.max(np.abs(image))) or 1.0
            style = {"cmap": "RdBu_r", "vmin": -extent, "vmax": extent}
        else:
            style = {"cmap": "inferno", "vmin": vmin, "vmax": vmax}
        shown = axis.imshow(image, origin="lower", **style)
        axis.set(title=name, xlabel="x (pix)", ylabel="y (pix)")
        figure.colorbar(shown, ax=axis, shrink=0.8, label="sum over channels (Jy/beam)")
    figure.suptitle(title)
    return save_figure(figure, path)


def plot_spectra(spectra, path, *, title=""):
    """Spectra through one pixel of several cubes.

    Parameters
    ----------
    spectra : Mapping of str to ndarray
        Label and spectrum (one value per channel, Jy/beam).
    path : str or `~pathlib.Path`
        PNG file to write.
    title : str, optional
        Axis title (e.g. the pixel).

    Returns
    -------
    `~pathlib.Path`
    """
    figure, axes = _figure(size=(6.0, 3.5))
    axis = axes[0, 0]
    for label, spectrum in spectra.items():
        axis.step(np.arange(len(spectrum)), spectrum, where="mid", label=label)
    axis.set(xlabel="channel", ylabel="brightness (Jy/beam)", title=title)
    axis.legend()
    return save_figure(figure, path)


def plot_scatter(true, predicted, columns, path):
    """Predicted against true value, one panel per parameter, with the 1:1 line."""
    true, predicted = np.atleast_2d(true), np.atleast_2d(predicted)
    figure, axes = _figure(len(columns), 1)
    for j, (axis, column) in enumerate(zip(axes[0], columns)):
        axis.scatter(true[:, j], predicted[:, j], s=12)
        low = float(min(true[:, j].min(), predicted[:, j].min()))
        high = float(max(true[:, j].max(), predicted[:, j].max()))
        axis.plot([low, high], [low, high], "k--", lw=1)
        axis.set(xlabel=f"true {column}", ylabel=f"predicted {column}")
    return save_figure(figure, path)


def plot_error_histograms(errors, path):
    """Histogram of the errors (predicted - true) of each parameter.

    Parameters
    ----------
    errors : Mapping of str to ndarray
        Column name and its errors.
    path : str or `~pathlib.Path`

    Returns
    -------
    `~pathlib.Path`
    """
    figure, axes = _figure(len(errors), 1)
    for axis, (column, values) in zip(axes[0], errors.items()):
        axis.hist(values, bins=min(30, max(5, len(values) // 2)))
        axis.axvline(0.0, color="k", lw=1)
        axis.set(xlabel=f"predicted - true {column}", ylabel="sources")
    return save_figure(figure, path)


def plot_confusion_matrix(matrix, classes, path):
    """Confusion matrix (rows: true class, columns: predicted class) with counts."""
    matrix = np.asarray(matrix)
    figure, axes = _figure(size=(1.2 * len(classes) + 2.5, 1.2 * len(classes) + 2))
    axis = axes[0, 0]
    shown = axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center")
    axis.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes,
             yticklabels=classes, xlabel="predicted", ylabel="true", title="Confusion matrix")
    figure.colorbar(shown, ax=axis, shrink=0.8)
    return save_figure(figure, path)
