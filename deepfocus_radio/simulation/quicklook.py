"""Quick-look PNG of a simulated cube: moment-0 maps of the dirty, clean and sky cubes."""

import os
import pathlib

import numpy as np
from astropy.io import fits

from deepfocus_radio.exceptions import InputDataError

__all__ = ["save_quicklook"]


def _moment0(path):
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data, dtype=float)
        width_kms = abs(hdul[0].header["CDELT3"]) / hdul[0].header["CRVAL3"] * 299792.458
        unit = hdul[0].header.get("BUNIT", "")
    return data.sum(axis=0) * width_kms, unit


def save_quicklook(directory, cube_id, path, *, title=None):
    """Save moment-0 maps (sum over channels times the channel width) side by side.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``dirty_cube_<ID>.fits``, ``clean_cube_<ID>.fits`` and
        ``sky_cube_<ID>.fits``.
    cube_id : int or str
        The cube's ID.
    path : str or path-like
        Output PNG (written atomically).
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputDataError
        When one of the three cubes is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory, path = pathlib.Path(directory), pathlib.Path(path)
    panels = []
    for name in ("dirty", "clean", "sky"):
        fits_path = directory / f"{name}_cube_{cube_id}.fits"
        if not fits_path.exists():
            raise InputDataError(f"quick-look: {fits_path} not found")
        panels.append((name, *_moment0(fits_path)))
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.2), constrained_layout=True)
    for axis, (name, image, unit) in zip(axes, panels):
        shown = axis.imshow(image, origin="lower", cmap="inferno")
        axis.set_title(f"{name} moment 0")
        axis.set_xlabel("x (pixel; east to the left)")
        axis.set_ylabel("y (pixel; north up)")
        figure.colorbar(shown, ax=axis, shrink=0.8, label=f"{unit} km/s")
    figure.suptitle(title or f"cube {cube_id}")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.png")
    try:
        figure.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        if tmp.exists():
            tmp.unlink()
    return path
