"""FITS reading (lazy, memory-mapped, Stokes dropped) and atomic, streaming FITS writing.

A FITS cube is seen through :class:`FitsImage`: a lazy (chan, y, x) or (y, x) array, a
header normalized to the axes kept (a degenerate or Stokes axis removed, WCS rewritten by
astropy), the unit and the beam (one ``Beam``, or a ``Beams`` table for CASA's per-plane
beams). Nothing is loaded until sliced.
"""

import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import InputDataError, OutputExistsError

__all__ = [
    "FitsImage",
    "read_fits",
    "is_fits",
    "normalized_header",
    "write_fits",
    "quiet_wcs_fixes",
    "LazyArray",
]

_WCS_AXIS_KEY = re.compile(
    r"^(NAXIS|CTYPE|CRVAL|CDELT|CRPIX|CUNIT|CROTA|CNAME|CRDER|CSYER)\d+[A-Z]?$"
)
_WCS_MATRIX_KEY = re.compile(r"^(PC|CD|PV|PS)\d+_\d+[A-Z]?$")
_STOKES_I = 1.0


def is_fits(path):
    """Whether ``path`` is a readable FITS file (checked by its first card).

    Parameters
    ----------
    path : str or os.PathLike
        File to test.

    Returns
    -------
    bool
    """
    path = Path(path)
    if not path.is_file():
        return False
    if path.name.lower().endswith((".gz", ".fz", ".bz2")):
        return True  # astropy decides when opening
    with open(path, "rb") as handle:
        return handle.read(9) == b"SIMPLE  ="


class quiet_wcs_fixes(warnings.catch_warnings):
    """Context manager silencing astropy's notes on WCS keywords it completes (datfix,
    obsfix...): informational, and spectral-cube re-parses headers many times."""

    def __enter__(self):
        result = super().__enter__()
        warnings.simplefilter("ignore", FITSFixedWarning)
        return result


def _quiet_wcs(header):
    with quiet_wcs_fixes():
        return WCS(header)


def normalized_header(header, wcs):
    """Header whose WCS and ``NAXISn`` describe ``wcs``; other keywords are kept.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`
        Original header (not modified).
    wcs : `~astropy.wcs.WCS`
        WCS of the axes kept (e.g. after dropping Stokes).

    Returns
    -------
    `~astropy.io.fits.Header`
        A new header with the WCS keywords of ``wcs`` and ``NAXIS = wcs.naxis``.
    """
    out = header.copy(strip=True)
    for key in list(out.keys()):
        if _WCS_AXIS_KEY.match(key) or _WCS_MATRIX_KEY.match(key) or key == "WCSAXES":
            del out[key]
    out.update(wcs.to_header())
    _complete_observatory(out, wcs)
    return out


def _complete_observatory(header, wcs):
    """Add ``OBSGEO-L/B/H`` when only ``OBSGEO-X/Y/Z`` are given (CASA writes those), with
    the values astropy's obsfix computed for ``wcs``: every WCS later built from the header
    then has nothing to complete, and does not warn about it again."""
    if not all(f"OBSGEO-{k}" in header for k in "XYZ") or all(
            f"OBSGEO-{k}" in header for k in "LBH"):
        return
    lon, lat, height = np.asarray(wcs.wcs.obsgeo, dtype=float)[3:6]
    if np.all(np.isfinite([lon, lat, height])):
        header["OBSGEO-L"] = (lon, "[deg] observatory longitude, from OBSGEO-X/Y/Z")
        header["OBSGEO-B"] = (lat, "[deg] observatory latitude, from OBSGEO-X/Y/Z")
        header["OBSGEO-H"] = (height, "[m] observatory height, from OBSGEO-X/Y/Z")


class FitsImage:
    """A FITS image or cube opened lazily, with degenerate/Stokes axes removed.

    Use as a context manager, or call :meth:`close`. Attributes: ``data`` (numpy
    memory map or astropy section view, (chan, y, x) or (y, x), native byte order on
    slicing through :meth:`read`), ``header`` (normalized), ``wcs``, ``unit``,
    ``beam`` (`radio_beam.Beam` or None) and ``beams`` (`radio_beam.Beams` for cubes
    with one beam per channel, else None).
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            # memmap=None: memory-map when possible, without refusing scaled data
            self._hdulist = fits.open(self.path, memmap=None, mode="denywrite")
        except (OSError, ValueError, TypeError) as exc:
            raise InputDataError(f"{self.path} is not a readable FITS file: {exc}") from exc
        try:
            self._setup()
        except Exception:
            self._hdulist.close()
            raise

    def _setup(self):
        hdu = _image_hdu(self._hdulist, self.path)
        wcs = _quiet_wcs(hdu.header)
        raw = _lazy_data(hdu)
        raw, wcs, pol_index = _drop_extra_axes(raw, wcs, self.path)
        _check_axis_order(wcs, self.path)
        self.data = raw
        self.header = normalized_header(hdu.header, wcs)
        self.wcs = _quiet_wcs(self.header)  # the same WCS a store's header gives back
        self.unit = _read_unit(hdu.header)
        self.beam, self.beams = _read_beams(self._hdulist, hdu.header, pol_index)
        self.header.remove("CASAMBM", ignore_missing=True)
        if self.beam is not None:
            self.header.update(self.beam.to_header_keywords())

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return np.dtype(self.data.dtype).newbyteorder("=")

    def read(self, key=()):
        """Read ``data[key]`` into memory in native byte order (values unchanged)."""
        return np.asarray(self.data[key]).astype(self.dtype, copy=False)

    def close(self):
        self._hdulist.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_fits(path):
    """Open a FITS image or cube lazily; see :class:`FitsImage`.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file.

    Returns
    -------
    FitsImage

    Raises
    ------
    InputDataError
        If the file is not FITS, holds no 2D-4D image, or has axes in an unsupported
        order.
    """
    return FitsImage(path)


def _image_hdu(hdulist, path):
    for hdu in hdulist:
        if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
            return hdu
    raise InputDataError(f"{path} holds no image HDU with 2 to 4 axes")


def _lazy_data(hdu):
    """Memory map when the data are unscaled floats, astropy's lazy section otherwise."""
    header = hdu.header
    scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
    if not scaled and header["BITPIX"] < 0 and not isinstance(hdu, fits.CompImageHDU):
        return hdu.data
    return _Section(hdu)


class _Section:
    """Array-like over ``hdu.section`` (scaling applied per read, nothing loaded)."""

    def __init__(self, hdu):
        self._section = hdu.section
        self.shape = tuple(hdu.shape)
        bitpix = hdu.header["BITPIX"]
        self.dtype = np.dtype(np.float64 if bitpix in (-64, 32, 64) else np.float32)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        return np.asarray(self._section[key], dtype=self.dtype)


def _drop_extra_axes(data, wcs, path):
    """Remove the Stokes axis (keep I, or the only plane) and degenerate axes beyond 3."""
    pol_index = None
    for fits_axis in reversed(range(wcs.naxis)):
        ctype = wcs.wcs.ctype[fits_axis].upper()
        length = data.shape[data.ndim - 1 - fits_axis]
        is_stokes = ctype.startswith("STOKES")
        if not is_stokes and (length != 1 or wcs.naxis <= 3 or _is_spectral(ctype)):
            continue
        index = _stokes_i_index(wcs, fits_axis, length, path) if is_stokes else 0
        pol_index = index if is_stokes else pol_index
        key = [slice(None)] * data.ndim
        key[data.ndim - 1 - fits_axis] = index
        data = data[tuple(key)] if isinstance(data, np.ndarray) else _Take(data, tuple(key))
        wcs = wcs.dropaxis(fits_axis)
    if wcs.naxis not in (2, 3):
        raise InputDataError(f"{path} has {wcs.naxis} non-degenerate axes; expected 2 or 3")
    return data, wcs, pol_index


def _is_spectral(ctype):
    return ctype[:4] in ("FREQ", "VELO", "VRAD", "VOPT", "ZOPT", "WAVE", "AWAV", "FELO", "BETA")


def _stokes_i_index(wcs, fits_axis, length, path):
    if length == 1:
        return 0
    values = wcs.sub([fits_axis + 1]).wcs_pix2world(np.arange(length), 0)[0]
    matches = np.flatnonzero(np.isclose(values, _STOKES_I))
    if matches.size == 0:
        raise InputDataError(
            f"{path} has a Stokes axis with {length} planes and no Stokes I; "
            "extract the plane to use into its own file"
        )
    return int(matches[0])


class LazyArray:
    """Array-like view that dask slices lazily (``dask.array.from_array`` copies a numpy
    array or memory map whole, eagerly; this wrapper makes it read chunk by chunk).

    Parameters
    ----------
    data : array-like
        Anything with ``shape``, ``dtype`` and numpy-style slicing (a memory map...).
    dtype : numpy dtype, optional
        Type of the slices returned (default: ``data``'s, in native byte order).
    """

    def __init__(self, data, dtype=None):
        self._data = data
        self.shape = tuple(data.shape)
        self.dtype = np.dtype(dtype or np.dtype(data.dtype).newbyteorder("="))
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        return np.asarray(self._data[key]).astype(self.dtype, copy=False)


class _Take:
    """Lazy ``data[key]`` where ``key`` removes one axis with an integer index."""

    def __init__(self, data, key):
        self._data = data
        self._key = key
        self._axis = next(i for i, k in enumerate(key) if isinstance(k, (int, np.integer)))
        self.shape = tuple(n for i, n in enumerate(data.shape) if i != self._axis)
        self.dtype = data.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        full = list(key)
        full.insert(self._axis, self._key[self._axis])
        return self._data[tuple(full)]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[()], dtype=dtype)


def _check_axis_order(wcs, path):
    types = wcs.wcs.axis_types
    celestial = [(t // 1000) == 2 for t in types]
    if not (celestial[0] and celestial[1]) or (wcs.naxis == 3 and (types[2] // 1000) != 3):
        raise InputDataError(
            f"{path} has axes {list(wcs.wcs.ctype)}; expected (longitude, latitude[, spectral]) "
            "in FITS order. Reorder the cube (e.g. spectral-cube's SpectralCube.read + write)"
        )


def _read_unit(header):
    text = str(header.get("BUNIT", "")).strip()
    if not text:
        return u.dimensionless_unscaled
    try:
        return u.Unit(text.replace("JY", "Jy").replace("BEAM", "beam"), parse_strict="raise")
    except ValueError as exc:
        raise InputDataError(f"BUNIT = {text!r} is not a unit astropy understands") from exc


def _read_beams(hdulist, header, pol_index):
    import radio_beam

    for hdu in hdulist:
        if isinstance(hdu, fits.BinTableHDU) and hdu.header.get("EXTNAME") == "BEAMS":
            table = hdu.data
            if pol_index is not None and "POL" in table.columns.names:
                table = table[table["POL"] == pol_index]
            return None, radio_beam.Beams.from_fits_bintable(fits.BinTableHDU(table))
    if "BMAJ" in header:
        return radio_beam.Beam.from_fits_header(header), None
    return None, None


def _fits_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    return np.dtype(np.float32)


def write_fits(data, path, *, header=None, overwrite=False, progress=False):
    """Write a cube or image to FITS atomically, streaming channel slabs.

    The data go to a temporary file in the destination folder, renamed over ``path``
    only once complete, so a crash never leaves a truncated file behind.

    Parameters
    ----------
    data : `~spectral_cube.SpectralCube`, ndarray or dask array
        A cube (its header, beam and unit are written, masked voxels as NaN) or an
        array of shape (chan, y, x) or (y, x).
    path : str or os.PathLike
        Destination FITS file.
    header : `~astropy.io.fits.Header`, optional
        Header for an array (WCS, BUNIT, beam...); for a cube, extra keywords added to
        the cube's own header.
    overwrite : bool, optional
        Replace an existing ``path``.
    progress : bool, optional
        Show a progress bar over channel slabs.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    array, out_header = _array_and_header(data, header)
    out_header["BITPIX"] = {4: -32, 8: -64}[_fits_dtype(array.dtype).itemsize]
    return atomic_write(path, lambda tmp: _stream_to_fits(array, out_header, tmp, progress))


def _array_and_header(data, header):
    from spectral_cube.spectral_cube import BaseSpectralCube

    if isinstance(data, BaseSpectralCube):
        from deepfocus_radio.io.zarr_store import _bunit

        out = data.header.copy()
        out["BUNIT"] = _bunit(data.unit)  # "Jy/beam" as CASA writes it
        if header is not None:
            out.update(header)
        return data._get_filled_data(fill=np.nan), out
    out = fits.Header() if header is None else header.copy()
    array = data if hasattr(data, "dask") else np.asarray(data)
    if array.ndim not in (2, 3):
        raise InputDataError(f"data must have 2 or 3 axes, got shape {array.shape}")
    return array, out


def _stream_to_fits(array, header, filename, progress):
    from tqdm.auto import tqdm

    dtype = _fits_dtype(array.dtype)
    hdu_header = fits.PrimaryHDU(np.zeros((1,) * array.ndim, dtype=dtype)).header
    for axis, length in enumerate(reversed(array.shape), start=1):
        hdu_header[f"NAXIS{axis}"] = length
    for card in header.cards:
        if card.keyword in ("", "SIMPLE", "BITPIX", "EXTEND") or card.keyword.startswith("NAXIS"):
            continue
        hdu_header.append(card, end=True)
    stream = fits.StreamingHDU(filename, hdu_header)
    try:
        step = _slab_step(array)
        for start in tqdm(range(0, array.shape[0], step), disable=not progress,
                          desc="write FITS", unit="slab"):
            stream.write(np.ascontiguousarray(np.asarray(array[start : start + step]), dtype=dtype))
    finally:
        stream.close()


def _slab_step(array):
    chunks = getattr(array, "chunks", None)
    if chunks is not None and isinstance(chunks[0], tuple):
        return max(1, int(chunks[0][0]))
    plane_bytes = max(1, int(np.prod(array.shape[1:])) * 4)
    return max(1, (64 << 20) // plane_bytes)
