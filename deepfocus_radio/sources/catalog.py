"""The source catalogue: schema, empty catalogue, writers and readers.

A catalogue is an `~astropy.table.QTable` with the columns of DESIGN.md ("Source
catalogue"), in this order and these units, followed by ``<column>_err`` uncertainties
and the detection ``reliability``. Writers go through astropy's I/O registry (ECSV,
VOTable, CSV), astropy-regions (DS9, CRTF; :mod:`.regions_io`) and a plain-text SKA SDC2
submission writer (:func:`write_sdc2`). Every file is written to a temporary file in the
same folder and moved into place, so a crash never leaves half a catalogue.
"""

import datetime
import json
from pathlib import Path

import numpy as np
from astropy import constants
from astropy import units as u
from astropy.table import QTable

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import ConfigError, InputDataError, OutputExistsError

__all__ = [
    "CATALOG_COLUMNS",
    "ERROR_COLUMNS",
    "CATALOG_FORMATS",
    "empty_catalog",
    "catalog_from_rows",
    "write_catalog",
    "read_catalog",
    "write_sdc2",
    "check_output",
    "provenance",
]

#: Catalogue columns: name -> (unit or None, description). DESIGN.md's schema.
CATALOG_COLUMNS = {
    "id": (None, "source number, 1-based"),
    "x": (u.pix, "centroid x, 0-based pixel"),
    "y": (u.pix, "centroid y, 0-based pixel"),
    "z": (u.pix, "centroid channel, 0-based"),
    "ra": (u.deg, "right ascension of the centroid (the cube's frame)"),
    "dec": (u.deg, "declination of the centroid"),
    "freq": (u.Hz, "observed line centre frequency"),
    "peak": (u.Jy / u.beam, "peak brightness in the searched cube"),
    "flux": (u.Jy * u.km / u.s, "integrated line flux"),
    "fwhm_major": (u.arcsec, "intrinsic (beam-deconvolved) major axis FWHM"),
    "fwhm_minor": (u.arcsec, "intrinsic minor axis FWHM"),
    "pa": (u.deg, "position angle of the major axis, east of north, [0, 180)"),
    "line_fwhm": (u.km / u.s, "line FWHM"),
    "snr": (None, "peak / noise rms of the dirty cube at the peak"),
}

#: Uncertainty columns (1 sigma, same unit as the column they refer to).
ERROR_COLUMNS = ["x_err", "y_err", "peak_err", "flux_err", "fwhm_major_err",
                 "fwhm_minor_err", "pa_err", "line_fwhm_err"]

#: Extra column: reliability from the negative detections (NaN where not estimated).
EXTRA_COLUMNS = {
    "reliability": (None, "reliability in [0, 1] (NaN: not estimated)"),
    "psf_snr": (None, "flux / its error from a PSF-convolved fit to the dirty cube's "
                      "line-weighted image, neighbours subtracted (NaN: no PSF refinement)"),
}

#: Format names accepted by :func:`write_catalog`, and the file suffixes that imply them.
CATALOG_FORMATS = {
    "ecsv": (".ecsv",),
    "votable": (".xml", ".vot", ".votable"),
    "csv": (".csv",),
    "ds9": (".reg",),
    "crtf": (".crtf",),
    "sdc2": (".sdc2", ".txt"),
}


def _column_unit(name):
    if name in CATALOG_COLUMNS:
        return CATALOG_COLUMNS[name][0]
    if name in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[name][0]
    if name.endswith("_err") and name[:-4] in CATALOG_COLUMNS:
        return CATALOG_COLUMNS[name[:-4]][0]
    return None


def _all_columns():
    return list(CATALOG_COLUMNS) + ERROR_COLUMNS + list(EXTRA_COLUMNS)


def provenance(extra=None):
    """Provenance metadata: date and versions of the software used.

    Parameters
    ----------
    extra : dict, optional
        More entries (e.g. ``model``, ``model_sha256``).

    Returns
    -------
    dict
    """
    import astropy
    import radio_beam
    import scipy

    from deepfocus_radio import __version__

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software": f"deepfocus_radio {__version__}",
        "versions": {"deepfocus_radio": __version__, "numpy": np.__version__,
                     "astropy": astropy.__version__, "scipy": scipy.__version__,
                     "radio_beam": radio_beam.__version__},
    }
    meta.update(extra or {})
    return meta


def empty_catalog(*, meta=None, units=None):
    """A catalogue with every column and no rows.

    Parameters
    ----------
    meta : dict, optional
        Metadata to store (provenance is added).
    units : dict, optional
        Unit overrides by column name (e.g. ``{"flux": u.Jy}`` for 2D images).

    Returns
    -------
    `~astropy.table.QTable`
    """
    return catalog_from_rows([], meta=meta, units=units)


def catalog_from_rows(rows, *, meta=None, units=None):
    """Build a catalogue from per-source dictionaries of bare values in schema units.

    Parameters
    ----------
    rows : list of dict
        One dict per source; missing entries become NaN (or 0 for ``id``).
    meta : dict, optional
        Metadata (provenance is added).
    units : dict, optional
        Unit overrides by column name.

    Returns
    -------
    `~astropy.table.QTable`
    """
    units = units or {}
    table = QTable(meta=provenance(meta))
    for name in _all_columns():
        if name == "id":
            table[name] = np.array([int(r.get("id", 0)) for r in rows], dtype=np.int64)
            continue
        values = np.array([float(r.get(name, np.nan)) for r in rows], dtype=float)
        unit = units.get(name, units.get(name[:-4]) if name.endswith("_err") else None)
        unit = unit if unit is not None else _column_unit(name)
        table[name] = values * unit if unit is not None else values
    for name in table.colnames:
        table[name].info.description = _describe(name)
    return table


def _describe(name):
    if name in CATALOG_COLUMNS:
        return CATALOG_COLUMNS[name][1]
    if name in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[name][1]
    return f"1-sigma uncertainty of {name[:-4]}"


def _resolve_format(path, fmt):
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in CATALOG_FORMATS:
            raise ConfigError(
                f"format={fmt!r} is not a catalogue format; use one of {sorted(CATALOG_FORMATS)}"
            )
        return fmt
    suffix = Path(path).suffix.lower()
    for name, suffixes in CATALOG_FORMATS.items():
        if suffix in suffixes:
            return name
    raise ConfigError(
        f"cannot tell the catalogue format from the suffix {suffix!r} of {path}; pass "
        f"format= (one of {sorted(CATALOG_FORMATS)})"
    )


def write_catalog(table, path, *, format=None, overwrite=False):
    """Write a catalogue atomically.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A catalogue (:func:`deepfocus_radio.find_sources`, :func:`characterize_sources`).
    path : str or path-like
        Output file.
    format : {'ecsv', 'votable', 'csv', 'ds9', 'crtf', 'sdc2'}, optional
        Default: from the suffix (``.ecsv``, ``.xml``/``.vot``, ``.csv``, ``.reg``,
        ``.crtf``, ``.sdc2``/``.txt``). ECSV and VOTable keep units and metadata; CSV keeps
        the values (units are restored by :func:`read_catalog` from the schema).
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    ConfigError
        For an unknown format.
    """
    from deepfocus_radio.sources import regions_io

    path = Path(path)
    fmt = _resolve_format(path, format)
    check_output(path, overwrite=overwrite)

    def writer(tmp):
        if fmt in ("ds9", "crtf"):
            regions_io.write_regions(table, tmp, format=fmt)
        elif fmt == "sdc2":
            write_sdc2(table, tmp)
        elif fmt == "votable":
            _write_votable(_plain_table(table, fmt), tmp, table.meta)
        else:
            _plain_table(table, fmt).write(tmp, format=_ASTROPY_FORMATS[fmt])

    return atomic_write(path, writer)


_ASTROPY_FORMATS = {"ecsv": "ascii.ecsv", "votable": "votable", "csv": "ascii.csv"}


def _plain_table(table, fmt):
    """Copy suitable for astropy writers (mixin columns and nested meta handled)."""
    out = QTable(table, copy=True)
    for name in out.colnames:
        if not hasattr(out[name], "unit") and hasattr(out[name], "ra"):
            del out[name]  # SkyCoord columns are rebuilt from ra/dec on reading
    if fmt != "ecsv":
        out.meta = {}
    return out


def _write_votable(table, path, meta):
    """VOTable with the metadata as INFO elements (JSON-encoded values)."""
    from astropy.io.votable import from_table, writeto
    from astropy.io.votable.tree import Info

    votable = from_table(table)
    infos = votable.get_first_table().infos
    for key, value in meta.items():
        infos.append(Info(name=str(key), value=json.dumps(value, default=str)))
    writeto(votable, str(path))


def _votable_meta(path):
    from astropy.io.votable import parse

    meta = {}
    for info in parse(str(path)).get_first_table().infos:
        try:
            meta[info.name] = json.loads(info.value)
        except (TypeError, ValueError):
            meta[info.name] = info.value
    return meta


def check_output(path, *, overwrite):
    """Raise OutputExistsError if ``path`` exists and ``overwrite`` is False."""
    if Path(path).exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")


def read_catalog(path, *, format=None):
    """Read a catalogue written by :func:`write_catalog` (ECSV, VOTable or CSV).

    Columns of the schema that come back without a unit (CSV) get their schema unit.

    Parameters
    ----------
    path : str or path-like
        Catalogue file.
    format : {'ecsv', 'votable', 'csv'}, optional
        Default: from the suffix.

    Returns
    -------
    `~astropy.table.QTable`

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        For region or SDC2 files (write-only) or an unknown format.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    fmt = _resolve_format(path, format)
    if fmt not in _ASTROPY_FORMATS:
        raise ConfigError(
            f"{path} is a {fmt} file, which read_catalog cannot read back; read the ECSV, "
            "VOTable or CSV catalogue instead"
        )
    table = QTable.read(path, format=_ASTROPY_FORMATS[fmt])
    if fmt == "votable":
        table.meta.update(_votable_meta(path))
    for name in table.colnames:
        unit = _column_unit(name)
        if unit is not None and getattr(table[name], "unit", None) is None:
            table[name] = np.asarray(table[name], dtype=float) * unit
    return table


def write_sdc2(table, path):
    """Write the SKA SDC2 submission format (space-separated text with a header line).

    Columns: ``id ra dec hi_size line_flux_integral central_freq pa i w20`` in deg, deg,
    arcsec, Jy Hz, Hz, deg, deg, km/s. Approximations, documented: ``hi_size`` is the
    intrinsic ``fwhm_major``; ``line_flux_integral = flux * freq / c``; ``pa`` is the
    morphological PA (SDC2's kinematic PA is ambiguous by 180 deg from an image);
    ``i = arccos(fwhm_minor / fwhm_major)`` (thin disc); ``w20 = line_fwhm *
    sqrt(ln 5 / ln 2)`` (the 20% width of a Gaussian).

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Catalogue with ra, dec, freq, flux, fwhm_major, fwhm_minor, pa, line_fwhm.
    path : str or path-like
        Output file (written directly; :func:`write_catalog` adds atomicity).

    Raises
    ------
    InputDataError
        If the catalogue lacks sky coordinates or frequencies (all NaN).
    """
    ra, dec = table["ra"].to_value(u.deg), table["dec"].to_value(u.deg)
    freq = u.Quantity(table["freq"]).to(u.Hz)
    if len(table) and (np.all(np.isnan(ra)) or np.all(np.isnan(freq.value))):
        raise InputDataError(
            "the SDC2 format needs ra, dec and freq; characterize the sources with a WCS "
            "that has celestial and spectral axes"
        )
    flux_hz = (u.Quantity(table["flux"]) * freq / constants.c).to_value(u.Jy * u.Hz)
    major = table["fwhm_major"].to_value(u.arcsec)
    ratio = np.divide(table["fwhm_minor"].to_value(u.arcsec), major,
                      out=np.ones_like(major), where=major > 0)
    incl = np.degrees(np.arccos(np.clip(ratio, 0.0, 1.0)))
    w20 = table["line_fwhm"].to_value(u.km / u.s) * np.sqrt(np.log(5.0) / np.log(2.0))
    pa = np.nan_to_num(table["pa"].to_value(u.deg), nan=0.0)
    with open(path, "w") as handle:
        handle.write("id ra dec hi_size line_flux_integral central_freq pa i w20\n")
        for row in zip(table["id"], ra, dec, major, flux_hz, freq.value, pa, incl, w20):
            handle.write("{:d} {:.8f} {:.8f} {:.4f} {:.6g} {:.6f} {:.3f} {:.3f} {:.4f}\n"
                         .format(int(row[0]), *row[1:]))
