"""Entry points: ``fits_to_zarr`` (FITS/CASA image -> zarr store) and ``open_cube``."""

import warnings
from pathlib import Path

import numpy as np
from astropy.wcs import FITSFixedWarning

from deepfocus_radio.exceptions import InputDataError
from deepfocus_radio.io._compute import atomic_directory
from deepfocus_radio.io.fits import FitsImage, LazyArray, is_fits, quiet_wcs_fixes
from deepfocus_radio.io.zarr_store import (
    check_destination,
    cube_beam,
    create_store,
    cube_to_zarr,
    default_chunks,
    is_cube_store,
    open_zarr_cube,
    write_dask_to_store,
)

__all__ = ["detect_format", "fits_to_zarr", "open_cube"]


def detect_format(path):
    """Format of a cube on disk: ``"fits"``, ``"casa"`` or ``"zarr"``.

    Parameters
    ----------
    path : str or os.PathLike
        File or directory.

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    InputDataError
        If it is neither FITS, a CASA image nor a deepfocus_radio zarr store.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if is_fits(path):
        return "fits"
    if path.is_dir() and (path / "table.info").is_file() and (path / "table.dat").is_file():
        return "casa"
    if is_cube_store(path):
        return "zarr"
    raise InputDataError(
        f"{path} is not a FITS file, a CASA image or a deepfocus_radio zarr store; "
        "give a .fits cube, a CASA .image directory, or a store made by fits_to_zarr"
    )


def fits_to_zarr(src, dst, *, chunks=None, overwrite=False, progress=True, client=None):
    """Stream a FITS cube or CASA image into a compressed zarr v3 store.

    The data never sit in memory whole: a FITS file is memory-mapped and copied chunk
    by chunk (in parallel, through dask), values unchanged (bit for bit, NaNs kept). A
    degenerate Stokes axis is dropped (Stokes I is kept when there are several). Cubes
    with one beam per channel (CASA's BEAMS table) and CASA images go through
    spectral-cube, convolved to their common beam.

    Parameters
    ----------
    src : str or os.PathLike
        FITS file (2D, 3D or 4D) or CASA image directory.
    dst : str or os.PathLike
        Store directory to create (written under a temporary name, renamed when done).
    chunks : tuple of int, optional
        Chunk shape in (chan, y, x) order ((y, x) for images); default ~4 MiB bricks,
        (16, 256, 256) clipped to the cube.
    overwrite : bool, optional
        Replace an existing ``dst``.
    progress : bool, optional
        Show a progress bar.
    client : `distributed.Client`, optional
        Cluster to write with (default: the active one, else local threads).

    Returns
    -------
    pathlib.Path
        ``dst``; open it with :func:`open_cube` or ``xarray.open_zarr``.

    Raises
    ------
    InputDataError
        If ``src`` is neither FITS nor a CASA image, or ``chunks`` is malformed.
    OutputExistsError
        If ``dst`` exists and ``overwrite`` is False.
    """
    src, dst = Path(src), Path(dst)
    kind = detect_format(src)
    if kind == "zarr":
        raise InputDataError(f"{src} is already a zarr store; open it with open_cube")
    check_destination(dst, overwrite)
    if kind == "casa":
        cube = _read_with_spectral_cube(src, "casa_image")
        return cube_to_zarr(cube, dst, chunks=chunks, overwrite=overwrite, progress=progress,
                            client=client)
    with FitsImage(src) as image:
        if image.beams is not None:
            cube = _read_with_spectral_cube(src, "fits")
            return cube_to_zarr(cube, dst, chunks=chunks, overwrite=overwrite,
                                progress=progress, client=client)
        _stream_fits(image, dst, chunks, overwrite, progress, client)
    return dst


def _stream_fits(image, dst, chunks, overwrite, progress, client):
    import dask.array as da

    chunks = default_chunks(image.shape, chunks)
    native = image.dtype
    data = da.from_array(LazyArray(image.data, native), chunks=chunks, asarray=True, name=False)
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        array = create_store(
            tmp,
            shape=image.shape,
            dtype=native,
            chunks=chunks,
            header=image.header,
            unit=image.unit,
            beam=image.beam,
            attrs={"source": str(image.path.name)},
        )
        write_dask_to_store(data, array, client=client, progress=progress)


def _read_with_spectral_cube(path, fmt):
    from spectral_cube import SpectralCube
    from spectral_cube.utils import StokesWarning

    with warnings.catch_warnings():
        # A single (degenerate) Stokes plane: spectral-cube warns that it returns I.
        warnings.simplefilter("ignore", StokesWarning)
        # astropy reports the WCS keywords it completes (e.g. OBSGEO-L/B/H from X/Y/Z).
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            return SpectralCube.read(str(path), format=fmt, use_dask=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise InputDataError(f"spectral-cube could not read {path} as {fmt}: {exc}") from exc


def open_cube(path, *, use_dask=None):
    """Open a FITS cube, CASA image or deepfocus_radio zarr store as a SpectralCube.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file (3D, or 4D with a Stokes axis: Stokes I is kept), CASA image
        directory, or zarr store made by :func:`fits_to_zarr`.
    use_dask : bool, optional
        Return a `~spectral_cube.DaskSpectralCube`. Default: True for zarr stores and
        CASA images, False for FITS (memory-mapped `~spectral_cube.SpectralCube`).

    Returns
    -------
    `~spectral_cube.SpectralCube`
        With the file's WCS (spectral and celestial axes), beam (a
        ``VaryingResolutionSpectralCube`` for one beam per channel) and unit.

    Raises
    ------
    InputDataError
        If ``path`` is not FITS/CASA/zarr, or holds an image without spectral axis.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "zarr":
        cube = open_zarr_cube(path)
    elif kind == "casa":
        cube = _read_with_spectral_cube(path, "casa_image")
    else:
        image = FitsImage(path)
        if image.beams is not None:
            image.close()
            cube = _read_with_spectral_cube(path, "fits")
        elif len(image.shape) != 3:
            image.close()
            raise InputDataError(
                f"{path} is a 2D image with no spectral axis; open_cube returns spectral "
                "cubes. Read it with deepfocus_radio.io.read_fits"
            )
        else:
            try:
                return _fits_cube(image, bool(use_dask))
            finally:
                image.close()  # a memory map outlives its file handle; sections were read
    return cube if use_dask in (None, True) else _to_numpy_cube(cube)


def _fits_cube(image, use_dask):
    """Build the cube from our reader so Stokes/degenerate axes are handled one way."""
    from spectral_cube import DaskSpectralCube, SpectralCube
    from spectral_cube.masks import LazyMask

    # A memory map stays valid after the file is closed; a (scaled) section is read now.
    data = image.data if isinstance(image.data, np.ndarray) else image.read()
    if use_dask:
        import dask.array as da

        data = da.from_array(LazyArray(data, image.dtype), chunks=default_chunks(image.shape),
                             asarray=True, name=False)
    mask = LazyMask(np.isfinite, data=data, wcs=image.wcs)
    meta = {"BUNIT": image.header.get("BUNIT", "")}
    cls = DaskSpectralCube if use_dask else SpectralCube
    with quiet_wcs_fixes():
        return cls(data, image.wcs, mask=mask, meta=meta, header=image.header, beam=image.beam)


def _to_numpy_cube(cube):
    from spectral_cube import SpectralCube, VaryingResolutionSpectralCube

    data = np.asarray(cube._get_filled_data(fill=np.nan))
    kwargs = {"meta": cube.meta, "header": cube.header}
    with quiet_wcs_fixes():
        if hasattr(cube, "beams"):
            return VaryingResolutionSpectralCube(data, cube.wcs, beams=cube.beams, **kwargs)
        return SpectralCube(data, cube.wcs, beam=cube_beam(cube), **kwargs)
