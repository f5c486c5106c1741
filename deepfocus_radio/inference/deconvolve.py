"""``deconvolve``: a dirty SpectralCube (or file) to a clean one, through a network, in tiles."""

import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from deepfocus_radio.exceptions import InputDataError, OutOfTrainingRangeWarning

__all__ = ["deconvolve", "training_range_checks", "model_identity"]

_JY_BEAM = u.Jy / u.beam


def model_identity(module):
    """``(name, sha256)`` of a network: its card/file name and weights digest."""
    from deepfocus_radio.inference.runner import _state_digest

    name = str(getattr(module, "name", None) or type(module).__name__)
    return name, getattr(module, "sha256", None) or _state_digest(module)


def _open_input(cube, model_dims):
    from deepfocus_radio.io import detect_format, open_cube, read_fits

    if not isinstance(cube, (str, Path)):
        return cube
    if detect_format(cube) == "fits":
        with read_fits(cube) as image:
            if len(image.shape) != 3:
                raise InputDataError(
                    f"{cube} has no spectral axis (shape {image.shape}); the model is "
                    f"{model_dims}D and deconvolve needs a (chan, y, x) cube. For a 2D image "
                    "use predict_tiled with a 2D model"
                )
    return open_cube(cube, use_dask=True)


def _cube_in_jy_per_beam(cube):
    from deepfocus_radio.io.zarr_store import cube_beam, to_common_beam

    if not hasattr(cube, "spectral_axis"):
        raise InputDataError(
            f"{type(cube).__name__} has no spectral axis; deconvolve needs a spectral cube"
        )
    cube = to_common_beam(cube)
    if cube_beam(cube) is None:
        raise InputDataError("the cube has no beam (BMAJ/BMIN/BPA); deconvolve restores to the "
                             "input's beam: add the beam to the header (e.g. cube.with_beam)")
    if cube.unit != _JY_BEAM:
        try:
            cube = cube.to(_JY_BEAM)
        except (u.UnitsError, ValueError) as exc:
            raise InputDataError(
                f"cube unit {cube.unit} cannot be converted to Jy/beam; deconvolve works on "
                "dirty cubes in Jy/beam (or convertible units)"
            ) from exc
    return cube


def _cube_values(cube):
    """The cube's values, lazily where they are, with blanked voxels as NaN.

    Cubes read from files are masked where their values are not finite, and tiled
    inference treats non-finite voxels as blanks anyway: their raw data are used as they
    are (no mask evaluated inside every dask task). Other masks are applied (NaN).
    """
    from spectral_cube.masks import LazyMask

    mask = cube._mask
    if (isinstance(mask, LazyMask) and mask._function is np.isfinite
            and mask._data is cube._data):
        return cube._data
    return cube._get_filled_data(fill=np.nan)


def _channel_width_kms(cube):
    from deepfocus_radio.conventions import channel_width_kms

    axis = cube.spectral_axis
    if axis.size < 2:
        return None
    step = np.abs(np.diff(axis)).mean()
    if axis.unit.is_equivalent(u.Hz):
        return channel_width_kms(step, np.abs(axis).mean()).value
    if axis.unit.is_equivalent(u.km / u.s):
        return step.to_value(u.km / u.s)
    return None


def training_range_checks(cube, card, noise):
    """Warn when a cube lies outside the ranges a model card says it was trained on.

    Parameters
    ----------
    cube : `~spectral_cube.SpectralCube`
        Single-beam cube in Jy/beam.
    card : object with ``training_ranges`` (dict ``{quantity: [min, max]}``) or None
        Keys understood: ``beam_fwhm_pix``, ``channel_width_kms``, ``noise_jy_beam``.
    noise : ndarray
        Per-channel noise of the cube, Jy/beam.

    Returns
    -------
    dict
        The measured value of each quantity checked.
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    ranges = dict(getattr(card, "training_ranges", None) or {})
    pixel = proj_plane_pixel_scales(cube.wcs.celestial).mean() * u.deg
    measured = {
        "beam_fwhm_pix": [(cube.beam.major / pixel).decompose().value,
                          (cube.beam.minor / pixel).decompose().value],
        "channel_width_kms": [_channel_width_kms(cube)],
        "noise_jy_beam": [float(np.nanmedian(noise))],
    }
    for key, (low, high) in ranges.items():
        values = [v for v in measured.get(key, []) if v is not None]
        outside = [v for v in values if not low <= v <= high]
        if outside:
            warnings.warn(
                f"input {key} = {', '.join(f'{v:.4g}' for v in outside)} is outside the model's "
                f"training range [{low:.4g}, {high:.4g}] ({key}); results may be unreliable",
                OutOfTrainingRangeWarning, stacklevel=3)
    return measured


def deconvolve(cube, model="alma", *, tile=None, halo=None, batch_size=None, blend=None,
               device=None, noise=None, out=None, overwrite=False, client=None, progress=True,
               threads=None, num_workers=None):
    """Deconvolve a dirty cube with a network, tile by tile, out of core.

    Parameters
    ----------
    cube : `~spectral_cube.SpectralCube`, str or os.PathLike
        Dirty cube (Jy/beam, or convertible), or a FITS / CASA / zarr path (opened lazily).
        Cubes with one beam per channel are first convolved to their common beam.
    model : str, os.PathLike or torch.nn.Module, optional
        Shipped name (default ``"alma"``), model file or network.
    tile, halo, batch_size, blend, device : optional
        Tiling settings in (chan, y, x) order; see :func:`predict_tiled`.
    noise : float or array-like, optional
        Per-channel noise rms of the input in Jy/beam, when already measured (saves a pass
        over the cube); default: :func:`deepfocus_radio.noise.channel_noise` of the input.
    out : str or os.PathLike, optional
        Write the result to a zarr store (``.zarr``) or FITS file (any other suffix),
        resumably (a killed run continues where it stopped).
    overwrite : bool, optional
        Replace an existing ``out``.
    client : `distributed.Client`, optional
        Cluster to run on (default: the active client, else local threads).
    progress : bool, optional
        Progress bar.
    threads, num_workers : int, optional
        torch threads per process; local scheduler threads.

    Returns
    -------
    `~spectral_cube.SpectralCube`
        Clean cube in Jy/beam with the input's WCS, shape and (common) beam; a lazy
        `~spectral_cube.DaskSpectralCube` for dask-backed inputs or when ``out`` is given.
        The header records the model (``DFMODEL``) and its weights' sha256 (``DFSHA256``).

    Raises
    ------
    InputDataError
        If the input has no spectral axis or beam, or a unit not convertible to Jy/beam.
    ModelMismatchError
        If the network does not fit the data.
    OutputExistsError
        If ``out`` exists and ``overwrite`` is False.

    Warns
    -----
    OutOfTrainingRangeWarning
        If the model card's training ranges (beam FWHM in pixels, channel width, noise)
        do not cover the input.
    """
    from deepfocus_radio.inference.graph import channel_sigma
    from deepfocus_radio.inference.predict import _check_model, predict_tiled
    from deepfocus_radio.models import load_model

    module = load_model(model)
    spatial_dims = _check_model(module, 3)
    cube = _cube_in_jy_per_beam(_open_input(cube, spatial_dims))
    data = _cube_values(cube)
    noise = channel_sigma(data, noise)
    training_range_checks(cube, getattr(module, "card", None), noise)
    name, sha256 = model_identity(module)
    header = cube.header.copy()
    header["DFMODEL"] = name[-68:]  # (no comment: the values fill the card)
    header["DFSHA256"] = sha256
    header["BUNIT"] = "Jy/beam"
    options = dict(tile=tile, halo=halo, batch_size=batch_size, blend=blend, device=device,
                   noise=noise, client=client, progress=progress, threads=threads,
                   num_workers=num_workers)
    if out is not None:
        return _deconvolve_to_file(data, module, Path(out), overwrite, header, cube,
                                   (name, sha256), options)
    result = predict_tiled(data, module, **options)
    return _result_cube(result, cube, header)


def _result_cube(data, cube, header):
    from spectral_cube import DaskSpectralCube, SpectralCube
    from spectral_cube.masks import LazyMask

    import dask.array as da

    from deepfocus_radio.io.fits import quiet_wcs_fixes

    mask = LazyMask(np.isfinite, data=data, wcs=cube.wcs)
    cls = DaskSpectralCube if isinstance(data, da.Array) else SpectralCube
    with quiet_wcs_fixes():
        return cls(data, cube.wcs, mask=mask, meta={"BUNIT": "Jy/beam"}, header=header,
                   beam=cube.beam)


def _deconvolve_to_file(data, module, out, overwrite, header, cube, identity, options):
    from deepfocus_radio.exceptions import OutputExistsError
    from deepfocus_radio.inference.predict import predict_tiled
    from deepfocus_radio.io import open_cube, write_fits
    from deepfocus_radio.io._compute import remove_path

    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    metadata = {"header": header, "unit": _JY_BEAM, "beam": cube.beam,
                "attrs": {"model": identity[0], "sha256": identity[1]}}
    as_zarr = out.suffix.lower() == ".zarr"
    store = out if as_zarr else out.with_name(out.name + ".zarr")
    predict_tiled(data, module, out=store, overwrite=True if not as_zarr else overwrite,
                  store_metadata=metadata, **options)
    if as_zarr:
        return open_cube(store)
    result = open_cube(store)
    write_fits(result, out, overwrite=overwrite, progress=options["progress"])
    remove_path(store)
    return open_cube(out)
