"""Inclined, rotating HI discs with double-horned profiles (SKA SDC2-like galaxies).

A galaxy is an infinitely thin disc with an exponential surface density (scale length a
third of the HI radius, cut at the HI radius ``hi_size / 2``), a rotation curve
``v(R) = v_flat (1 - exp(-R / r_t))`` with ``r_t = 0.15 R_HI``, and a Gaussian velocity
dispersion. Seen at inclination ``i``, a point of the disc at radius ``R`` and azimuth
``phi`` (from the receding major axis) has line-of-sight velocity
``v(R) sin(i) cos(phi)``. The kinematic position angle (SDC2 ``pa``) is that of the
receding half of the major axis, east of north, in [0, 360).
"""

from dataclasses import dataclass

import numpy as np
from scipy import special

from deepfocus_radio.conventions import FWHM_TO_SIGMA

__all__ = ["HIDisc", "render_disc", "profile_width", "moment_sizes", "SPEED_OF_LIGHT_KMS"]

SPEED_OF_LIGHT_KMS = 299792.458


@dataclass
class HIDisc:
    """Geometry and kinematics of one HI disc.

    Attributes
    ----------
    x, y : float
        Centre, pixels.
    central_frequency : float
        Observed frequency of the systemic velocity, Hz.
    hi_size : float
        HI diameter, pixels.
    inclination : float
        Inclination, deg (0 face-on).
    pa : float
        Kinematic position angle of the receding side, deg east of north, [0, 360).
    v_flat : float
        Flat rotation velocity, km/s.
    dispersion : float
        Velocity dispersion, km/s.
    """

    x: float
    y: float
    central_frequency: float
    hi_size: float
    inclination: float
    pa: float
    v_flat: float
    dispersion: float


def _disc_samples(disc, oversample):
    """Sub-pixel sample offsets, surface density and line-of-sight velocity."""
    radius = disc.hi_size / 2.0
    half = int(np.ceil(radius)) + 2
    y0, x0 = int(np.floor(disc.y)) - half, int(np.floor(disc.x)) - half
    size = 2 * half + 1
    sub = (np.arange(size * oversample) + 0.5) / oversample - 0.5
    north = (y0 + sub)[:, None] - disc.y
    east = -((x0 + sub)[None, :] - disc.x)  # east to the left
    theta, incl = np.deg2rad(disc.pa), np.deg2rad(disc.inclination)
    along = east * np.sin(theta) + north * np.cos(theta)  # towards the receding side
    across = (east * np.cos(theta) - north * np.sin(theta)) / np.cos(incl)
    r = np.hypot(along, across)
    density = np.where(r <= radius, np.exp(-3.0 * r / radius), 0.0)
    rotation = disc.v_flat * (1.0 - np.exp(-r / (0.15 * radius)))
    cos_phi = np.divide(along, r, out=np.zeros_like(r), where=r > 0)
    return (y0, x0, size), density, rotation * np.sin(incl) * cos_phi


def render_disc(disc, frequencies, *, oversample=3):
    """Cube cutout of a disc, normalized to a total of 1 over all voxels.

    Parameters
    ----------
    disc : HIDisc
        The galaxy (sizes in pixels).
    frequencies : ndarray
        Channel centre frequencies, Hz (evenly spaced).
    oversample : int, optional
        Sub-pixels per pixel side.

    Returns
    -------
    z0, y0, x0 : int
        Cube position of the cutout's first voxel.
    cutout : ndarray, shape (nz, ny, nx)
        Fraction of the line flux in each voxel; each channel integrates the line over
        its width.
    """
    (y0, x0, size), density, velocity = _disc_samples(disc, oversample)
    inside = density > 0
    width = frequencies[1] - frequencies[0] if len(frequencies) > 1 else 1.0
    reach = (disc.v_flat + 5 * disc.dispersion) * disc.central_frequency / SPEED_OF_LIGHT_KMS / abs(width)
    centre = (disc.central_frequency - frequencies[0]) / width
    z0 = max(int(np.floor(centre - reach)) - 1, 0)
    z1 = min(int(np.ceil(centre + reach)) + 2, len(frequencies))
    edges = frequencies[0] + (np.arange(z0, z1 + 1) - 0.5) * width
    edge_velocity = SPEED_OF_LIGHT_KMS * (1.0 - edges / disc.central_frequency)  # radio convention
    scaled = (edge_velocity[:, None] - velocity[inside][None, :]) / (np.sqrt(2.0) * disc.dispersion)
    fraction = np.abs(np.diff(special.erf(scaled), axis=0)) / 2.0
    fine = np.zeros((z1 - z0, *density.shape))
    fine[:, inside] = fraction * density[inside]
    cutout = fine.reshape(z1 - z0, size, oversample, size, oversample).sum(axis=(2, 4))
    return z0, y0, x0, cutout / cutout.sum()


def profile_width(spectrum, level):
    """Width of a line profile at ``level`` times its peak, channels.

    Measured between the outermost crossings of the level, with linear interpolation
    between channels.

    Parameters
    ----------
    spectrum : ndarray
        Line profile (non-negative).
    level : float
        Fraction of the peak (0.2 for W20, 0.5 for W50).

    Returns
    -------
    float
        Width, channels.
    """
    threshold = level * spectrum.max()
    above = np.nonzero(spectrum >= threshold)[0]
    first, last = above[0], above[-1]
    left = first - (spectrum[first] - threshold) / (spectrum[first] - spectrum[first - 1]) if first > 0 else first
    right = (last + (spectrum[last] - threshold) / (spectrum[last] - spectrum[last + 1])
             if last < spectrum.size - 1 else last)
    return float(right - left)


def moment_sizes(image):
    """FWHM major and minor axes (pixels) of the Gaussian with the image's second moments.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Non-negative brightness.

    Returns
    -------
    (float, float)
        ``2 sqrt(2 ln 2)`` times the square roots of the eigenvalues of the second-moment
        matrix, largest first.
    """
    yy, xx = np.indices(image.shape)
    weight = image / image.sum()
    cx, cy = (weight * xx).sum(), (weight * yy).sum()
    cov = np.cov(np.vstack([xx.ravel() - cx, yy.ravel() - cy]), aweights=weight.ravel(), bias=True)
    variances = np.linalg.eigvalsh(cov)
    return float(np.sqrt(variances[1]) / FWHM_TO_SIGMA), float(np.sqrt(variances[0]) / FWHM_TO_SIGMA)
