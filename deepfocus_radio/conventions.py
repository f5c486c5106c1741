"""Conventions shared by every stage: position angles, beam areas, velocity widths.

Position angles (PA) are east of north, from +Dec towards +RA, in degrees. On an image
with the usual ``CDELT1 < 0`` (east to the left), north is +y and east is -x, so a
direction at PA ``theta`` points along ``(dx, dy) = (-sin theta, cos theta)`` in pixels.
Angles counted counter-clockwise from +x (photutils' ``orientation``, regions' ``angle``)
are called *pixel angles* here.
"""

import numpy as np
from astropy import constants
from astropy import units as u

__all__ = [
    "pa_to_pixel_angle",
    "pixel_angle_to_pa",
    "east_is_left",
    "beam_area_pixels",
    "jyperbeam_to_jy",
    "channel_width_kms",
    "FWHM_TO_SIGMA",
    "HI_REST_FREQUENCY",
    "is_hi_cube",
]

#: Multiply a FWHM by this to get the Gaussian sigma.
FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))

#: Rest frequency of the HI 21 cm line, Hz.
HI_REST_FREQUENCY = 1420405751.768


def is_hi_cube(wcs, nchan):
    """Whether a cube holds the HI 21 cm line.

    True when its rest frequency (``RESTFRQ``) is HI's (to 0.1%), or, without one, when
    its spectral axis is in frequency and lies at or below HI's rest frequency (the HI
    band: no other common radio line is observed there).

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        The cube's WCS (with a spectral axis; a 2D image gives False).
    nchan : int
        Number of channels.
    """
    wcs = wcs.deepcopy()
    wcs.wcs.set()  # has_spectral reads the axis types that set() parses
    if not wcs.has_spectral:
        return False
    rest = float(wcs.wcs.restfrq or 0.0)
    if rest > 0:
        return abs(rest / HI_REST_FREQUENCY - 1.0) < 1e-3
    spectral = wcs.spectral
    if not u.Unit(spectral.world_axis_units[0]).is_equivalent(u.Hz):
        return False
    ends = u.Quantity(spectral.pixel_to_world_values([0, nchan - 1]),
                      spectral.world_axis_units[0]).to_value(u.Hz)
    return bool(np.all(ends <= HI_REST_FREQUENCY * 1.001))


def east_is_left(wcs):
    """Whether east (+RA) points towards -x on the image.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        WCS whose celestial part is inspected.

    Returns
    -------
    bool
        True for the usual orientation (``CDELT1 < 0``, determinant of the celestial
        pixel-scale matrix negative).
    """
    matrix = wcs.celestial.pixel_scale_matrix
    return bool(np.linalg.det(matrix) < 0)


def pa_to_pixel_angle(pa, *, east_left=True):
    """Convert a PA east of north to an angle counter-clockwise from +x.

    Parameters
    ----------
    pa : float or array-like
        Position angle east of north, deg.
    east_left : bool, optional
        True when east points to -x (``CDELT1 < 0``).

    Returns
    -------
    float or ndarray
        Pixel angle from +x towards +y, deg, in [0, 180).
    """
    pa = np.asarray(pa, dtype=float)
    angle = pa + 90.0 if east_left else 90.0 - pa
    return np.mod(angle, 180.0)


def pixel_angle_to_pa(angle, *, east_left=True):
    """Convert an angle counter-clockwise from +x to a PA east of north.

    Parameters
    ----------
    angle : float or array-like
        Angle from +x towards +y, deg.
    east_left : bool, optional
        True when east points to -x (``CDELT1 < 0``).

    Returns
    -------
    float or ndarray
        Position angle east of north, deg, in [0, 180).
    """
    angle = np.asarray(angle, dtype=float)
    pa = angle - 90.0 if east_left else 90.0 - angle
    return np.mod(pa, 180.0)


def beam_area_pixels(beam, pixel_scale):
    """Area of a beam in pixels, from radio-beam.

    Parameters
    ----------
    beam : `radio_beam.Beam`
        The beam.
    pixel_scale : `~astropy.units.Quantity`
        Pixel side length (angle).

    Returns
    -------
    float
        Beam solid angle divided by the pixel solid angle.
    """
    pixel_area = (pixel_scale**2).to(u.sr)
    return float((beam.sr / pixel_area).decompose().value)


def jyperbeam_to_jy(values, beam, pixel_scale):
    """Sum of pixel brightnesses in Jy/beam, converted to a flux density in Jy.

    Parameters
    ----------
    values : `~astropy.units.Quantity` or array-like
        Brightness in Jy/beam (a bare array is taken to be Jy/beam).
    beam : `radio_beam.Beam`
        Beam the brightness refers to.
    pixel_scale : `~astropy.units.Quantity`
        Pixel side length.

    Returns
    -------
    `~astropy.units.Quantity`
        ``sum(values) / beam_area_pixels`` in Jy.
    """
    values = u.Quantity(values, u.Jy / u.beam)
    total = np.nansum(values.to_value(u.Jy / u.beam))
    return total / beam_area_pixels(beam, pixel_scale) * u.Jy


def channel_width_kms(channel_width, observed_frequency):
    """Velocity width of a channel at the observed frequency (radio convention).

    ``dv = c * dnu / nu_obs``: valid for redshifted lines, unlike a conversion
    through RESTFRQ, which is off by (1 + z).

    Parameters
    ----------
    channel_width : `~astropy.units.Quantity`
        Channel width in frequency units.
    observed_frequency : `~astropy.units.Quantity`
        Observed frequency of the line.

    Returns
    -------
    `~astropy.units.Quantity`
        Width in km/s (positive).
    """
    dv = constants.c * np.abs(channel_width) / observed_frequency
    return dv.to(u.km / u.s)
