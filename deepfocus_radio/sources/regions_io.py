"""Catalogues as region files (DS9, CRTF) through astropy-regions.

Each source is an ellipse of its intrinsic FWHM axes at its PA, labelled with its id.
astropy-regions measures a sky ellipse's ``angle`` from the longitude (RA) axis
counter-clockwise, towards north, so ``angle = PA + 90 deg`` for a PA east of north.
Unresolved sources (size 0 or NaN) are drawn with the beam stored in the catalogue's
``meta`` (``beam_major_arcsec``...), or as points when it is absent. Catalogues without
sky coordinates give pixel regions (0-based pixels, as astropy-regions uses).
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from deepfocus_radio.conventions import pa_to_pixel_angle
from deepfocus_radio.exceptions import ConfigError

__all__ = ["catalog_to_regions", "write_regions"]


def catalog_to_regions(table):
    """One region per catalogue row.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A source catalogue.

    Returns
    -------
    `regions.Regions`
    """
    from regions import Regions

    beam = _beam_from_meta(table.meta)
    sky = np.all(np.isfinite(_values(table, "ra", u.deg))) and len(table) > 0
    shapes = []
    for row in table:
        major, minor, pa = (_scalar(row, "fwhm_major", u.arcsec),
                            _scalar(row, "fwhm_minor", u.arcsec), _scalar(row, "pa", u.deg))
        if not (major > 0 and np.isfinite(pa)):
            major, minor, pa = beam if beam else (np.nan, np.nan, np.nan)
        minor = minor if np.isfinite(minor) and minor > 0 else major
        make = _sky_region if sky else _pixel_region
        shapes.append(make(row, major, minor, pa, table.meta))
    return Regions(shapes)


def write_regions(table, path, *, format="ds9"):
    """Write a catalogue as a DS9 or CRTF region file.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A source catalogue.
    path : str or path-like
        Output file (overwritten; :func:`write_catalog` adds atomicity).
    format : {'ds9', 'crtf'}
        Region file format.

    Raises
    ------
    ConfigError
        For another format.
    """
    if format not in ("ds9", "crtf"):
        raise ConfigError(f"format={format!r}: region files are 'ds9' or 'crtf'")
    options = {"precision": 10} if format == "ds9" else {"coordsys": "icrs", "fmt": ".10f"}
    catalog_to_regions(table).write(str(path), format=format, overwrite=True, **options)


def _values(table, name, unit):
    if name not in table.colnames:
        return np.full(len(table), np.nan)
    return u.Quantity(table[name]).to_value(unit)


def _scalar(row, name, unit):
    if name not in row.colnames:
        return np.nan
    return float(u.Quantity(row[name]).to_value(unit))


def _beam_from_meta(meta):
    try:
        return (float(meta["beam_major_arcsec"]), float(meta["beam_minor_arcsec"]),
                float(meta["beam_pa_deg"]))
    except (KeyError, TypeError, ValueError):
        return None


def _sky_region(row, major, minor, pa, meta):
    from regions import EllipseSkyRegion, PointSkyRegion, RegionMeta

    center = SkyCoord(_scalar(row, "ra", u.deg) * u.deg, _scalar(row, "dec", u.deg) * u.deg,
                      frame="icrs")
    label = RegionMeta({"text": str(int(row["id"]))})
    if not np.isfinite(major):
        return PointSkyRegion(center, meta=label)
    return EllipseSkyRegion(center, width=major * u.arcsec, height=minor * u.arcsec,
                            angle=(pa + 90.0) * u.deg, meta=label)


def _pixel_region(row, major, minor, pa, meta):
    from regions import EllipsePixelRegion, PixCoord, PointPixelRegion, RegionMeta

    center = PixCoord(_scalar(row, "x", u.pix), _scalar(row, "y", u.pix))
    label = RegionMeta({"text": str(int(row["id"]))})
    scale = meta.get("pixel_scale_arcsec")
    if not np.isfinite(major) or not scale:
        return PointPixelRegion(center, meta=label)
    angle = float(pa_to_pixel_angle(pa, east_left=bool(meta.get("east_left", True))))
    return EllipsePixelRegion(center, width=major / scale, height=minor / scale,
                              angle=angle * u.deg, meta=label)
