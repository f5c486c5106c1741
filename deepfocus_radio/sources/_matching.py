"""One-to-one greedy matching of a found catalogue to a truth catalogue.

See :mod:`deepfocus_radio.sources.scoring` for the criteria. Candidate pairs come from a
KD-tree, so large catalogues (SKA SDC2: 1e5 sources) are matched without an N x M matrix.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from astropy import constants
from astropy import units as u
from scipy.spatial import cKDTree

from deepfocus_radio.exceptions import ConfigError, DeepFocusWarning, InputDataError

__all__ = ["MatchGeometry", "resolve_geometry", "greedy_match"]

C_KMS = constants.c.to_value(u.km / u.s)
#: Pairs of sources closer than this on the sky, in beams, compare the two pixel grids...
GRID_PAIR_REACH = 3.0
#: ...which are the same when their distances agree within this many beams, and their
#: frequency differences within this many channels (medians).
GRID_TOLERANCE = 0.25


@dataclass
class MatchGeometry:
    """Scales needed for matching: beam FWHM, pixel scale, channel width.

    Attributes
    ----------
    mode : str
        ``'pixel'`` (x, y, z) or ``'sky'`` (ra, dec, freq).
    beam_arcsec, beam_pix : float or None
        Beam FWHM (major axis).
    pixel_scale_arcsec : float or None
        Pixel side.
    channel_hz, channel_kms : float or None
        Channel width in frequency or velocity (one is enough).
    spectral : bool
        Whether both catalogues have a spectral coordinate.
    """

    mode: str
    beam_arcsec: float | None
    beam_pix: float | None
    pixel_scale_arcsec: float | None
    channel_hz: float | None
    channel_kms: float | None
    spectral: bool

    @property
    def beam(self):
        """Beam FWHM in the matching coordinates (pixels or arcsec)."""
        return self.beam_pix if self.mode == "pixel" else self.beam_arcsec


def _column(table, name, unit=None):
    if name not in table.colnames:
        return np.full(len(table), np.nan)
    values = table[name]
    if unit is not None and getattr(values, "unit", None) is not None:
        return u.Quantity(values).to_value(unit)
    return np.asarray(values, dtype=float)


def _finite(tables, names):
    return all(len(t) == 0 or np.all(np.isfinite(_column(t, n))) for t in tables for n in names)


def _meta(tables, key):
    """A scale from the tables' meta: ``key`` (bare number in the unit its name ends with),
    or the same name without the unit suffix holding a Quantity (``beam_major``)."""
    base, _, unit = key.rpartition("_")
    for table in tables:
        value = table.meta.get(key)
        if value is not None:
            return float(value)
        quantity = table.meta.get(base)
        if isinstance(quantity, u.Quantity):
            return float(quantity.to_value(_META_UNITS[unit],
                                           equivalencies=u.spectral()))
    return None


_META_UNITS = {"arcsec": u.arcsec, "hz": u.Hz, "kms": u.km / u.s}


def resolve_geometry(found, truth, *, beam=None, pixel_scale=None, channel_width=None):
    """Work out the matching coordinates and scales from the arguments or the tables' meta.

    Parameters
    ----------
    found, truth : `~astropy.table.QTable`
        Catalogues.
    beam : `radio_beam.Beam`, angular Quantity or float, optional
        Beam (float: FWHM in pixels). Default: ``meta['beam_major_arcsec']``.
    pixel_scale : angular Quantity, optional
        Default: ``meta['pixel_scale_arcsec']``.
    channel_width : Quantity (frequency or velocity), optional
        Default: ``meta['channel_width_hz']``.

    Returns
    -------
    MatchGeometry

    Raises
    ------
    ConfigError
        When the beam (or a channel width needed for line widths) is unknown, or
        ``channel_width`` has the wrong unit.
    InputDataError
        When the catalogues share neither pixel nor sky coordinates.
    """
    tables = (truth, found)
    beam_arcsec, beam_pix = _beam(beam, tables)
    scale = (u.Quantity(pixel_scale).to_value(u.arcsec) if pixel_scale is not None
             else _meta(tables, "pixel_scale_arcsec"))
    channel_hz, channel_kms = _channel(channel_width, tables)
    on_sky, in_pixels = _finite(tables, ("ra", "dec")), _finite(tables, ("x", "y"))
    same_grid = True
    if on_sky and in_pixels and scale and (beam_arcsec or beam_pix):  # all known, non-zero
        beam_sky = beam_arcsec if beam_arcsec is not None else beam_pix * scale
        off_beams, off_channels = _grid_mismatch(truth, found, scale, beam_sky, channel_hz)
        same_grid = off_beams <= GRID_TOLERANCE and off_channels <= GRID_TOLERANCE
        if not same_grid:
            warnings.warn(
                f"the catalogues' pixel coordinates are on different grids: distances between "
                f"the same sources differ by {off_beams:.1f} beams and {off_channels:.1f} channels "
                f"in pixels and on the sky (a cut-out or a regridded cube?); matching on the "
                f"sky (ra, dec, freq) instead", DeepFocusWarning, stacklevel=4)
    if in_pixels and (scale is not None or beam_pix is not None) and same_grid:
        mode = "pixel"
        if beam_pix is None:
            beam_pix = beam_arcsec / scale if beam_arcsec is not None else None
        spectral = _finite(tables, ("z",))
    elif on_sky:
        mode = "sky"
        if beam_arcsec is None and beam_pix is not None and scale is not None:
            beam_arcsec = beam_pix * scale
        spectral = _finite(tables, ("freq",))
    else:
        raise InputDataError(
            "the catalogues share neither pixel coordinates (x, y with a known pixel scale) "
            "nor sky coordinates (ra, dec); pass pixel_scale= or add ra/dec columns"
        )
    geometry = MatchGeometry(mode, beam_arcsec, beam_pix, scale, channel_hz, channel_kms,
                             spectral and (len(truth) == 0 or
                                           np.any(np.isfinite(_column(truth, "z" if mode ==
                                                                      "pixel" else "freq")))))
    if geometry.beam is None:
        raise ConfigError(
            "score_catalog needs the beam: pass beam= (a radio_beam.Beam, an angle, or the "
            "FWHM in pixels) or score catalogues whose meta has 'beam_major_arcsec'"
        )
    return geometry


def _grid_mismatch(truth, found, scale, beam_arcsec, channel_hz=None):
    """How differently the two catalogues' pixel grids place the sky, in beams (and, with
    ``channel_hz`` and frequencies, in channels): for each found source and its nearest true
    source on the sky (within ``GRID_PAIR_REACH`` beams), the difference between their
    distance on the sky and their distance in pixels times ``scale`` (arcsec), and between
    their frequency difference and their channel difference times ``channel_hz``; the
    medians over those pairs, or 0 without any."""
    if len(truth) == 0 or len(found) == 0:
        return 0.0, 0.0

    chord, nearest = cKDTree(_unit_vectors(truth)).query(_unit_vectors(found))
    on_sky = _chord_arcsec(chord)
    in_pixels = scale * np.hypot(_column(found, "x") - _column(truth, "x")[nearest],
                                 _column(found, "y") - _column(truth, "y")[nearest])
    close = on_sky <= GRID_PAIR_REACH * beam_arcsec
    if not np.any(close):
        return 0.0, 0.0
    spatial = float(np.median(np.abs(on_sky - in_pixels)[close]) / beam_arcsec)
    spectral = 0.0
    if channel_hz and _finite((truth, found), ("z", "freq")):
        in_hz = np.abs(_column(found, "freq", u.Hz) - _column(truth, "freq", u.Hz)[nearest])
        in_channels = np.abs(_column(found, "z") - _column(truth, "z")[nearest])
        spectral = float(np.median(np.abs(in_hz / channel_hz - in_channels)[close]))
    return spatial, spectral


def _beam(beam, tables):
    if beam is None:
        return _meta(tables, "beam_major_arcsec"), None
    if hasattr(beam, "major"):
        return float(beam.major.to_value(u.arcsec)), None
    if isinstance(beam, u.Quantity):
        return float(beam.to_value(u.arcsec)), None
    return None, float(beam)


def _channel(channel_width, tables):
    if channel_width is None:
        return _meta(tables, "channel_width_hz"), _meta(tables, "channel_width_kms")
    width = u.Quantity(channel_width)
    if width.unit.is_equivalent(u.Hz):
        return abs(float(width.to_value(u.Hz))), None
    if width.unit.is_equivalent(u.km / u.s):
        return None, abs(float(width.to_value(u.km / u.s)))
    raise ConfigError(f"channel_width={channel_width} must be a frequency or a velocity")


def _spatial(table, geometry):
    if geometry.mode == "pixel":
        return np.column_stack([_column(table, "x", u.pix), _column(table, "y", u.pix)])
    return _unit_vectors(table)


def _unit_vectors(table):
    """Unit vectors of the rows' (ra, dec): chords between them are matched by a KD-tree."""
    ra = np.radians(_column(table, "ra", u.deg))
    dec = np.radians(_column(table, "dec", u.deg))
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _chord_arcsec(chord):
    """The angle (arcsec) of a chord of the unit sphere."""
    return np.degrees(2 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))) * 3600.0


def _spatial_limits(truth, geometry):
    """Largest allowed separation per truth source, in matching units (pix or arcsec)."""
    size = _column(truth, "fwhm_major", u.arcsec)
    if geometry.mode == "pixel":
        size = size / geometry.pixel_scale_arcsec if geometry.pixel_scale_arcsec else size * 0
    return np.fmax(np.nan_to_num(size, nan=0.0), geometry.beam)


def _search_radii(truth, geometry):
    """Per-truth matching radius in the units of :func:`_spatial` (pixels, or chord length
    on the unit sphere)."""
    limits = _spatial_limits(truth, geometry)
    return limits if geometry.mode == "pixel" else 2 * np.sin(np.radians(limits / 3600) / 2)


def _spectral_terms(found, truth, geometry):
    """Spectral offsets (channels) of all pairs, as a function, and limits per truth."""
    line = _column(truth, "line_fwhm", u.km / u.s)
    freq = _column(truth, "freq", u.Hz)
    dv = np.full(len(truth), np.nan)
    if geometry.channel_hz is not None:
        dv = C_KMS * geometry.channel_hz / freq
    if geometry.channel_kms is not None:
        dv = np.where(np.isfinite(dv), dv, geometry.channel_kms)
    needs = np.isfinite(line) & ~np.isfinite(dv)
    if np.any(needs):
        raise ConfigError(
            "matching in frequency needs the channel width to turn true line widths into "
            "channels: pass channel_width= (Hz or km/s) or catalogues whose meta has "
            "'channel_width_hz'"
        )
    limits = np.fmax(2.0, np.nan_to_num(line / dv, nan=0.0))
    if geometry.mode == "pixel":
        tz, fz = _column(truth, "z", u.pix), _column(found, "z", u.pix)
        return (lambda i, j: np.abs(fz[j] - tz[i])), limits
    tf, ff = freq, _column(found, "freq", u.Hz)
    channel_hz = (np.full(len(truth), geometry.channel_hz) if geometry.channel_hz is not None
                  else dv * tf / C_KMS)
    return (lambda i, j: np.abs(ff[j] - tf[i]) / channel_hz[i]), limits


def blended_truth(truth, geometry):
    """Flag true sources that a brighter true source hides (confused blends).

    A true source is blended when a brighter one (higher ``snr``; the earlier row on a
    tie) lies within its matching limits on the sky and in frequency (those of
    :func:`greedy_match`): a single detection at the brighter one would match either, so
    no catalogue can hold both without deblending below the resolution.

    Returns
    -------
    ndarray of bool, shape (len(truth),)
    """
    n = len(truth)
    if n < 2:
        return np.zeros(n, dtype=bool)
    xy = _spatial(truth, geometry)
    offset, z_limits = (_spectral_terms(truth, truth, geometry) if geometry.spectral
                        else (None, None))
    snr = np.nan_to_num(np.asarray(_column(truth, "snr"), dtype=float), nan=-np.inf)
    # a tree, as in greedy_match: truth catalogues of survey cubes hold 1e5 sources
    near = cKDTree(xy).query_ball_point(xy, _search_radii(truth, geometry) * (1 + 1e-9))
    blended = np.zeros(n, dtype=bool)
    for i, others in enumerate(near):
        others = np.array(others, dtype=int)
        close = (snr[others] > snr[i]) | ((snr[others] == snr[i]) & (others < i))
        if offset is not None:
            close &= offset(i, others) <= z_limits[i]
        blended[i] = np.any(close)
    return blended


def greedy_match(found, truth, geometry):
    """Match one-to-one, from the highest truth SNR down.

    Parameters
    ----------
    found, truth : `~astropy.table.QTable`
        Catalogues.
    geometry : MatchGeometry
        From :func:`resolve_geometry`.

    Returns
    -------
    tuple of ndarray
        ``truth_index``, ``found_index`` (0-based rows), ``separation`` (in beams) and
        ``channel_offset`` (channels; NaN without spectral coordinates).
    """
    pairs = ([], [], [], [])
    if len(truth) == 0 or len(found) == 0:
        return tuple(np.array(p) for p in pairs)
    t_xy, f_xy = _spatial(truth, geometry), _spatial(found, geometry)
    radius = _search_radii(truth, geometry)
    offset, z_limits = (_spectral_terms(found, truth, geometry) if geometry.spectral
                        else (None, None))
    tree = cKDTree(f_xy)
    taken = np.zeros(len(found), dtype=bool)
    order = np.argsort(-np.nan_to_num(_column(truth, "snr"), nan=-np.inf), kind="stable")
    for i in order:
        cand = np.array(tree.query_ball_point(t_xy[i], radius[i] * (1 + 1e-9)), dtype=int)
        cand = cand[~taken[cand]]
        if cand.size == 0:
            continue
        sep = np.linalg.norm(f_xy[cand] - t_xy[i], axis=1) / radius[i]
        dz = offset(i, cand) if offset is not None else np.zeros(cand.size)
        zlim = z_limits[i] if offset is not None else 1.0
        ok = dz <= zlim
        if not np.any(ok):
            continue
        score = np.hypot(sep, dz / zlim)[ok]
        best = cand[ok][np.argmin(score)]
        taken[best] = True
        chord = np.linalg.norm(f_xy[best] - t_xy[i])
        sep_units = chord if geometry.mode == "pixel" else float(_chord_arcsec(chord))
        pairs[0].append(i)
        pairs[1].append(best)
        pairs[2].append(sep_units / geometry.beam)
        pairs[3].append(float(offset(i, np.array([best]))[0]) if offset is not None else np.nan)
    return tuple(np.array(p) for p in pairs)
