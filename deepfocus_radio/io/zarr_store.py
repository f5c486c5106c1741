"""Chunked zarr v3 cube stores: layout, streaming writers and the lazy reader.

A store is a zarr v3 group holding one array, ``intensity``, with dimension names
``(chan, y, x)`` (``(y, x)`` for an image), so ``xarray.open_zarr(path)`` opens it as a
Dataset. The group's attributes hold the normalized FITS header (``fits_header``, the
cards as text), ``BUNIT`` and ``beam`` (radio-beam's header keywords BMAJ/BMIN/BPA in
deg), plus ``deepfocus_radio`` (format version and provenance). NaN blanking is kept.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from deepfocus_radio.exceptions import InputDataError, OutputExistsError
from deepfocus_radio.io._compute import atomic_directory, compute

__all__ = [
    "VARIABLE",
    "FORMAT_VERSION",
    "StoreInfo",
    "default_chunks",
    "is_cube_store",
    "create_store",
    "read_store",
    "consolidate",
    "open_zarr_cube",
    "write_dask_to_store",
    "cube_to_zarr",
    "cube_beam",
    "to_common_beam",
]

#: Name of the data array inside a store.
VARIABLE = "intensity"
#: Version of the store layout written here.
FORMAT_VERSION = 1
_DIMS = {3: ["chan", "y", "x"], 2: ["y", "x"]}
_DEFAULT_CHUNKS = (16, 256, 256)


def default_chunks(shape, chunks=None):
    """Chunk shape for a store: ``chunks`` checked, else ~4 MiB float32 bricks.

    Parameters
    ----------
    shape : tuple of int
        Array shape, (chan, y, x) or (y, x).
    chunks : sequence of int, optional
        Requested chunk shape (same length as ``shape``); -1 means the whole axis.

    Returns
    -------
    tuple of int

    Raises
    ------
    InputDataError
        If ``chunks`` has the wrong length or a non-positive entry.
    """
    if chunks is None:
        return tuple(min(n, c) for n, c in zip(shape, _DEFAULT_CHUNKS[-len(shape) :]))
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != len(shape) or any(c == 0 or c < -1 for c in chunks):
        raise InputDataError(
            f"chunks={chunks} must give {len(shape)} positive sizes (or -1 for a whole axis) "
            f"for data of shape {tuple(shape)}"
        )
    return tuple(n if c == -1 else min(n, c) for n, c in zip(shape, chunks))


@dataclass
class StoreInfo:
    """What a cube store holds: the zarr array and the metadata to rebuild a cube."""

    array: object
    header: fits.Header
    unit: u.UnitBase
    beam: object
    attrs: dict = field(default_factory=dict)


def is_cube_store(path):
    """Whether ``path`` is a zarr store written by deepfocus_radio."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        return False
    import zarr

    try:
        group = zarr.open_group(path, mode="r")
    except Exception:  # noqa: BLE001 - any unreadable store is simply "not ours"
        return False
    return "deepfocus_radio" in group.attrs and VARIABLE in group


def _compressors():
    from zarr.codecs import BloscCodec

    # lz4 + byte shuffle: a few GB/s per core, so compression never limits the stream.
    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


def create_store(path, *, shape, dtype, chunks, header, unit, beam, attrs=None):
    """Create an empty cube store at ``path`` (which must not exist) and return its array.

    Parameters
    ----------
    path : pathlib.Path
        Store directory.
    shape, chunks : tuple of int
        Array and chunk shapes, (chan, y, x) or (y, x).
    dtype : numpy dtype
        Element type (float32 or float64).
    header : `~astropy.io.fits.Header`
        Normalized header (WCS of the stored axes).
    unit : `~astropy.units.UnitBase`
        Brightness unit.
    beam : `radio_beam.Beam` or None
        The (common) beam.
    attrs : dict, optional
        Extra entries for the ``deepfocus_radio`` attribute (provenance).

    Returns
    -------
    zarr.Array
    """
    import zarr

    group = zarr.open_group(path, mode="w-", zarr_format=3)
    header = header.copy()
    header["BUNIT"] = _bunit(unit)
    if beam is not None:
        header.update(beam.to_header_keywords())
    group.attrs.update(
        {
            "deepfocus_radio": {"format_version": FORMAT_VERSION, **(attrs or {})},
            "fits_header": header.tostring(sep="\n", endcard=False, padding=False),
            "BUNIT": header["BUNIT"],
            "beam": None if beam is None else _beam_keywords(beam),
        }
    )
    array = group.create_array(
        VARIABLE,
        shape=tuple(shape),
        dtype=np.dtype(dtype),
        chunks=tuple(chunks),
        fill_value=np.nan,
        compressors=_compressors(),
        dimension_names=_DIMS[len(shape)],
        attributes={"units": header["BUNIT"]},
    )
    consolidate(path)
    return array


def consolidate(path):
    """Write consolidated metadata, so ``xarray.open_zarr`` opens the store directly."""
    import warnings

    import zarr
    from zarr.errors import ZarrUserWarning

    with warnings.catch_warnings():
        # zarr notes that consolidated metadata is not yet in the v3 spec; xarray uses it.
        warnings.simplefilter("ignore", ZarrUserWarning)
        zarr.consolidate_metadata(path)


def _bunit(unit):
    """BUNIT text: "Jy/beam" as CASA writes it, else the FITS standard string."""
    if unit == u.dimensionless_unscaled:
        return ""
    return "Jy/beam" if unit == u.Jy / u.beam else unit.to_string("fits")


def _beam_keywords(beam):
    return {key: float(value) for key, value in beam.to_header_keywords().items()}


def read_store(path):
    """Open a cube store (read-only) and decode its metadata.

    Parameters
    ----------
    path : str or os.PathLike
        Store directory.

    Returns
    -------
    StoreInfo

    Raises
    ------
    InputDataError
        If ``path`` is not a store written by deepfocus_radio.
    """
    import radio_beam
    import zarr

    path = Path(path)
    if not is_cube_store(path):
        raise InputDataError(
            f"{path} is not a deepfocus_radio zarr store (no 'deepfocus_radio' attributes "
            f"or '{VARIABLE}' array); create one with deepfocus_radio.io.fits_to_zarr"
        )
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    header = fits.Header.fromstring(attrs["fits_header"], sep="\n")
    unit = u.Unit(attrs["BUNIT"]) if attrs.get("BUNIT") else u.dimensionless_unscaled
    beam = None
    if attrs.get("beam"):
        beam = radio_beam.Beam.from_fits_header(fits.Header(attrs["beam"]))
    return StoreInfo(group[VARIABLE], header, unit, beam, attrs["deepfocus_radio"])


def open_zarr_cube(path):
    """Open a cube store as a lazy `~spectral_cube.DaskSpectralCube`.

    Parameters
    ----------
    path : str or os.PathLike
        Store directory with a (chan, y, x) array.

    Returns
    -------
    `~spectral_cube.DaskSpectralCube`
        Dask-backed, chunked like the store; same WCS, beam and unit as written.

    Raises
    ------
    InputDataError
        If the store is not ours or holds a 2D image (no spectral axis).
    """
    import dask.array as da
    from spectral_cube import DaskSpectralCube
    from spectral_cube.masks import LazyMask

    from deepfocus_radio.io.fits import _quiet_wcs, quiet_wcs_fixes

    info = read_store(path)
    if info.array.ndim != 3:
        raise InputDataError(
            f"{path} holds a 2D image (dims {_DIMS[info.array.ndim]}), not a spectral cube; "
            "read it with deepfocus_radio.io.read_store"
        )
    data = da.from_zarr(info.array)
    wcs = _quiet_wcs(info.header)
    mask = LazyMask(np.isfinite, data=data, wcs=wcs)
    meta = {"BUNIT": info.header["BUNIT"]}
    with quiet_wcs_fixes():
        return DaskSpectralCube(data, wcs, mask=mask, meta=meta, header=info.header,
                                beam=info.beam)


def write_dask_to_store(data, zarr_array, *, client=None, progress=True, desc="write zarr"):
    """Stream a dask array into a zarr array, chunk by chunk (aligned, lock-free)."""
    import dask.array as da

    data = data.rechunk(zarr_array.chunks)
    delayed = da.store(data, zarr_array, lock=False, compute=False)
    compute(delayed, client=client, desc=desc, progress=progress)


def cube_to_zarr(cube, dst, *, chunks=None, overwrite=False, progress=True, client=None):
    """Write a SpectralCube to a cube store, streaming (masked voxels become NaN).

    Cubes with one beam per channel are first convolved to their common beam.

    Parameters
    ----------
    cube : `~spectral_cube.SpectralCube`
        Any spectral-cube cube (in memory, memory-mapped or dask-backed).
    dst : str or os.PathLike
        Store directory to create.
    chunks : tuple of int, optional
        Chunk shape (chan, y, x); default ~4 MiB bricks.
    overwrite : bool, optional
        Replace an existing ``dst``.
    progress : bool, optional
        Show a progress bar.
    client : `distributed.Client`, optional
        Cluster to write with (default: the active one, else local threads).

    Returns
    -------
    pathlib.Path
        ``dst``.

    Raises
    ------
    OutputExistsError
        If ``dst`` exists and ``overwrite`` is False.
    """
    import dask.array as da

    dst = check_destination(dst, overwrite)
    cube = to_common_beam(cube)
    data = cube._get_filled_data(fill=np.nan)
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=default_chunks(data.shape, chunks))
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        array = create_store(
            tmp,
            shape=data.shape,
            dtype=data.dtype.newbyteorder("="),
            chunks=default_chunks(data.shape, chunks),
            header=cube.header,
            unit=cube.unit,
            beam=cube_beam(cube),
            attrs={"source": "SpectralCube"},
        )
        write_dask_to_store(data.astype(array.dtype), array, client=client, progress=progress)
    return dst


def to_common_beam(cube):
    """A single-beam cube: ``cube`` itself, or it convolved to its beams' common beam."""
    from spectral_cube import VaryingResolutionSpectralCube

    if isinstance(cube, VaryingResolutionSpectralCube):
        return cube.convolve_to(cube.beams.common_beam())
    return cube


def cube_beam(cube):
    """The beam of a single-beam cube, or None when it has none."""
    from spectral_cube.utils import NoBeamError

    try:
        return cube.beam
    except (AttributeError, NoBeamError):
        return None


def check_destination(dst, overwrite):
    """``dst`` as a Path; raises OutputExistsError if it exists and overwrite is False."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst} exists; pass overwrite=True (--overwrite) to replace it")
    return dst
