"""The simulated cube: data products, FITS headers, writing, truth catalogue."""

import os
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.conventions import channel_width_kms
from deepfocus_radio.exceptions import ConfigError, InputDataError, OutputExistsError

__all__ = ["SimulatedCube", "cube_header", "PRODUCTS", "CATALOG_UNITS", "empty_catalog", "write_fits_atomic"]

#: Data products and the file name prefix of each.
PRODUCTS = {"dirty": "dirty_cube", "clean": "clean_cube", "psf": "psf_cube", "sky": "sky_cube", "pb": "pb_cube"}

_BEAM_KEYS = ("BMAJ", "BMIN", "BPA")

#: Columns of the truth catalogue (DESIGN.md schema) and their units.
CATALOG_UNITS = {
    "id": None, "x": u.pix, "y": u.pix, "z": u.pix, "ra": u.deg, "dec": u.deg, "freq": u.Hz,
    "peak": u.Jy / u.beam, "flux": u.Jy * u.km / u.s, "fwhm_major": u.arcsec, "fwhm_minor": u.arcsec,
    "pa": u.deg, "line_fwhm": u.km / u.s, "snr": None,
}


def empty_catalog():
    """A truth catalogue with no rows (the columns and units of :data:`CATALOG_UNITS`)."""
    table = QTable()
    for name, unit in CATALOG_UNITS.items():
        values = np.zeros(0, dtype=int if name == "id" else float)
        table[name] = values if unit is None else values * unit
    return table


def cube_header(*, shape, pixel_scale, ra, dec, start_frequency, channel_width, rest_frequency,
                beam, telescope, cards=()):
    """FITS header of a (chan, y, x) cube: RA---SIN/DEC--SIN, FREQ, beam, Jy/beam.

    Parameters
    ----------
    shape : (int, int, int)
        Cube shape (nchan, ny, nx).
    pixel_scale : float
        Pixel size, arcsec (``CDELT1 = -pixel_scale``: east to the left).
    ra, dec : float
        Phase centre (ICRS), deg, at pixel ``(ny // 2, nx // 2)``.
    start_frequency, channel_width : float
        Frequency of channel 0 and channel width, Hz.
    rest_frequency : float
        RESTFRQ, Hz.
    beam : `radio_beam.Beam`
        Restoring beam (BMAJ/BMIN/BPA).
    telescope : str
        TELESCOP value.
    cards : iterable of (str, value, str)
        Extra (keyword, value, comment) cards.

    Returns
    -------
    `~astropy.io.fits.Header`
    """
    nchan, ny, nx = shape
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ"]
    wcs.wcs.cunit = ["deg", "deg", "Hz"]
    wcs.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0, channel_width]
    wcs.wcs.crpix = [nx // 2 + 1, ny // 2 + 1, 1]
    wcs.wcs.crval = [ra, dec, start_frequency]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    wcs.wcs.specsys = "LSRK"
    wcs.wcs.restfrq = rest_frequency
    header = fits.Header()
    header["BUNIT"] = ("Jy/beam", "Brightness unit")
    header.update(wcs.to_header())
    header.update(beam.to_header_keywords())
    header["TELESCOP"] = telescope
    header["ORIGIN"] = "deepfocus_radio simulate"
    for keyword, value, comment in cards:
        header[keyword] = (value, comment)
    return header


def write_fits_atomic(path, data, header, *, overwrite=False):
    """Write a primary-HDU FITS file through a temporary file and ``os.replace``.

    Raises
    ------
    OutputExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    atomic_write(path, fits.PrimaryHDU(data=data, header=header).writeto)


@dataclass
class SimulatedCube:
    """A simulated observation and its truth.

    Attributes
    ----------
    dirty : ndarray, float32, shape (nchan, ny, nx)
        Sky convolved with each channel's PSF plus correlated noise, Jy/beam.
    clean : ndarray, float32
        Sky convolved with the common restoring beam (peak 1), no noise, Jy/beam.
    sky : ndarray, float32
        Sky model, Jy/pixel (primary-beam attenuated when ``pb`` is given).
    psf : ndarray, float32, shape (nchan, ny, nx)
        Per-channel PSF, peak 1 at ``(ny // 2, nx // 2)``.
    beam : `radio_beam.Beam`
        Common restoring beam (Gaussian fit to the main lobe of the lowest-frequency PSF).
    header : `~astropy.io.fits.Header`
        Header of the dirty cube.
    noise_rms : ndarray, shape (nchan,)
        Noise rms of each channel of ``dirty``, Jy/beam (the noise is scaled to it exactly).
    sources : `~astropy.table.Table`
        One row per source: ``x y z flux peak fwhm_major fwhm_minor pa fwhm_z snr ra dec
        freq`` (units as the ``*_params.csv`` of DESIGN.md: pixels, channels, Jy km/s,
        Jy/beam, deg, Hz) and extra columns.
    pb : ndarray or None
        Primary-beam gain (chan, y, x), when the primary beam was applied.
    psf_full : ndarray or None
        With ``full_psf=True``: the PSF over twice the image, shape (nchan, 2 ny, 2 nx),
        peak 1 at ``(ny, nx)``; it holds the sidelobes that ``dirty`` has beyond half
        the image, which ``psf`` (like CASA's ``.psf``) lacks.
    """

    dirty: np.ndarray
    clean: np.ndarray
    sky: np.ndarray
    psf: np.ndarray
    beam: object
    header: fits.Header
    noise_rms: np.ndarray
    sources: Table
    pb: np.ndarray = None
    meta: dict = field(default_factory=dict)
    psf_full: np.ndarray = None

    @property
    def wcs(self):
        """The cube's `~astropy.wcs.WCS`."""
        return WCS(self.header)

    @property
    def pixel_scale(self):
        """Pixel size as a Quantity (arcsec)."""
        return abs(self.header["CDELT2"]) * u.deg.to(u.arcsec) * u.arcsec

    def product_header(self, which):
        """Header for one product: ``dirty``/``clean`` (Jy/beam, beam), ``sky`` (Jy/pixel),
        ``psf`` and ``pb`` (dimensionless)."""
        self._check_product(which)
        header = self.header.copy()
        if which in ("dirty", "clean"):
            return header
        for key in _BEAM_KEYS:
            header.remove(key, ignore_missing=True)
        header["BUNIT"] = "Jy/pixel" if which == "sky" else ""
        return header

    def _check_product(self, which):
        if which not in PRODUCTS or (which == "pb" and self.pb is None):
            available = [name for name in PRODUCTS if name != "pb" or self.pb is not None]
            raise ConfigError(f"which must be one of {', '.join(available)}, got {which!r}")

    def write(self, directory, cube_id, *, overwrite=False):
        """Write the products as ``<prefix>_<cube_id>.fits`` (see :data:`PRODUCTS`).

        Each file is written to a temporary name and renamed, so no half-written file is
        left behind. Existing files are checked before anything is written.

        Parameters
        ----------
        directory : str or path-like
            Output directory (created if needed).
        cube_id : int or str
            Identifier appended to the file names.
        overwrite : bool, optional
            Replace existing files.

        Returns
        -------
        dict
            Product name -> written path.

        Raises
        ------
        OutputExistsError
            When a file exists and ``overwrite`` is False.
        """
        os.makedirs(directory, exist_ok=True)
        names = [name for name in PRODUCTS if name != "pb" or self.pb is not None]
        paths = {name: os.path.join(os.fspath(directory), f"{PRODUCTS[name]}_{cube_id}.fits") for name in names}
        existing = [path for path in paths.values() if os.path.exists(path)]
        if existing and not overwrite:
            raise OutputExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite) to replace it")
        for name, path in paths.items():
            write_fits_atomic(path, getattr(self, name), self.product_header(name), overwrite=True)
        return paths

    def to_spectral_cube(self, which="dirty"):
        """One product as a `~spectral_cube.SpectralCube` (with the beam for dirty/clean).

        Parameters
        ----------
        which : {"dirty", "clean", "sky", "psf", "pb"}
            Product.
        """
        from spectral_cube import SpectralCube

        header = self.product_header(which)
        unit = u.Unit(header["BUNIT"]) if header["BUNIT"] else u.dimensionless_unscaled
        beam = self.beam if which in ("dirty", "clean") else None
        return SpectralCube(data=getattr(self, which) * unit, wcs=WCS(header), header=header, beam=beam)

    def truth_catalog(self):
        """The sources in the catalogue schema of DESIGN.md (QTable with units).

        Sizes are converted to arcsec and line widths to km/s at each line's observed
        frequency; ``id`` is 1-based.
        """
        rows = self.sources
        scale = self.pixel_scale.to_value(u.arcsec)
        width = abs(self.header["CDELT3"]) * u.Hz
        column = {name: np.asarray(rows[name], dtype=float) for name in ("x", "y", "z", "ra", "dec", "freq", "peak",
                                                                         "flux", "pa", "snr")}
        column["id"] = np.arange(1, len(rows) + 1)
        column["fwhm_major"] = np.asarray(rows["fwhm_major"], dtype=float) * scale
        column["fwhm_minor"] = np.asarray(rows["fwhm_minor"], dtype=float) * scale
        kms = channel_width_kms(width, column["freq"] * u.Hz).to_value(u.km / u.s)
        column["line_fwhm"] = np.asarray(rows["fwhm_z"], dtype=float) * kms
        table = QTable()
        for name, unit in CATALOG_UNITS.items():
            table[name] = column[name] if unit is None else column[name] * unit
        table.meta.update({"beam_major": self.beam.major.to(u.arcsec), "beam_minor": self.beam.minor.to(u.arcsec),
                           "beam_pa": self.beam.pa.to(u.deg), "origin": "deepfocus_radio simulate"})
        return table

    def sdc2_catalog(self):
        """The SKA SDC2 truth table (``id ra dec hi_size line_flux_integral central_freq pa
        i w20``; deg, deg, arcsec, Jy Hz, Hz, deg, deg, km/s) of an SKA HI cube.

        Raises
        ------
        InputDataError
            For a cube that was not made by ``simulate_ska_cube``.
        """
        if "pa_kinematic" not in self.sources.colnames:
            raise InputDataError("sdc2_catalog needs an SKA HI cube (made by simulate_ska_cube)")
        from deepfocus_radio.simulation.ska import sdc2_table

        return sdc2_table(self.sources)
