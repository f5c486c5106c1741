"""Sky models: elliptical Gaussian sources with Gaussian lines, continuum, cube assembly.

A sky cube is a sum of *components*, each a spatial profile that sums to 1 (a cutout
placed in the image) times a spectrum in Jy per channel, so the total flux density of a
component in a channel is exactly its spectrum value. Sky cubes are in Jy/pixel.
"""

from dataclasses import dataclass

import numpy as np
from scipy import special

from deepfocus_radio.conventions import FWHM_TO_SIGMA, pa_to_pixel_angle

__all__ = [
    "Component",
    "gaussian_profile",
    "gaussian_line",
    "render_sky",
    "beam_peak_per_jy",
]

#: Smallest Gaussian sigma rendered, pixels: a "point" source lands in the pixel holding it.
_MIN_SIGMA = 0.1


@dataclass
class Component:
    """One emission component of a sky cube.

    Attributes
    ----------
    y0, x0 : int
        Image position of ``profile[0, 0]``.
    profile : ndarray, shape (h, w)
        Spatial profile, summing to 1 before any clipping at the image edge.
    spectrum : ndarray, shape (nchan,)
        Flux density per channel, Jy.
    """

    y0: int
    x0: int
    profile: np.ndarray
    spectrum: np.ndarray


def _covariance(fwhm_major, fwhm_minor, angle_deg):
    theta = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    sigmas = np.maximum(np.array([fwhm_major, fwhm_minor]) * FWHM_TO_SIGMA, _MIN_SIGMA)
    return rotation @ np.diag(sigmas**2) @ rotation.T


def gaussian_profile(x, y, fwhm_major, fwhm_minor, pa, *, oversample=5):
    """Pixel-integrated elliptical Gaussian, normalized to a sum of 1.

    Parameters
    ----------
    x, y : float
        Centre, pixels (0-based).
    fwhm_major, fwhm_minor : float
        Intrinsic FWHM, pixels (0 for a point source).
    pa : float
        Position angle of the major axis, deg east of north (east to the left).
    oversample : int, optional
        Sub-pixels per pixel side used to integrate over each pixel.

    Returns
    -------
    y0, x0 : int
        Image position of the cutout's first pixel.
    profile : ndarray
        The cutout, summing to 1.
    """
    half = int(np.ceil(3.0 * max(fwhm_major, 1.0))) + 2
    y0, x0 = int(np.floor(y)) - half, int(np.floor(x)) - half
    size = 2 * half + 1
    sub = (np.arange(size * oversample) + 0.5) / oversample - 0.5
    dy = (y0 + sub)[:, None] - y
    dx = (x0 + sub)[None, :] - x
    inverse = np.linalg.inv(_covariance(fwhm_major, fwhm_minor, pa_to_pixel_angle(pa)))
    exponent = inverse[0, 0] * dx * dx + 2 * inverse[0, 1] * dx * dy + inverse[1, 1] * dy * dy
    fine = np.exp(-0.5 * exponent)
    profile = fine.reshape(size, oversample, size, oversample).sum(axis=(1, 3))
    return y0, x0, profile / profile.sum()


def gaussian_line(nchan, centre, fwhm):
    """Gaussian line integrated over each channel, peak value of the continuous line 1.

    Parameters
    ----------
    nchan : int
        Number of channels.
    centre : float
        Line centre, channels (0-based).
    fwhm : float
        Line FWHM, channels.

    Returns
    -------
    ndarray, shape (nchan,)
        Mean of ``exp(-(z - centre)**2 / (2 sigma**2))`` over each channel.
    """
    sigma = fwhm * FWHM_TO_SIGMA
    edges = (np.arange(nchan + 1) - 0.5 - centre) / (np.sqrt(2.0) * sigma)
    return np.sqrt(np.pi / 2.0) * sigma * np.diff(special.erf(edges))


def beam_peak_per_jy(fwhm_major, fwhm_minor, pa, beam_fwhm_pixels):
    """Peak brightness (Jy/beam) of a 1 Jy Gaussian source seen through a peak-1 beam.

    Parameters
    ----------
    fwhm_major, fwhm_minor, pa : float
        Source FWHM (pixels) and PA (deg east of north).
    beam_fwhm_pixels : (float, float, float)
        Beam major and minor FWHM (pixels) and pixel angle (deg from +x).

    Returns
    -------
    float
        ``sqrt(det C_beam / det(C_source + C_beam))``.
    """
    beam = _covariance(*beam_fwhm_pixels)
    source = _covariance(fwhm_major, fwhm_minor, pa_to_pixel_angle(pa))
    return float(np.sqrt(np.linalg.det(beam) / np.linalg.det(beam + source)))


def render_sky(components, shape, nchan):
    """Sum components into a sky cube.

    Parameters
    ----------
    components : list of Component
        The emission.
    shape : (int, int)
        Image shape (ny, nx).
    nchan : int
        Number of channels.

    Returns
    -------
    ndarray, shape (nchan, ny, nx)
        Sky brightness, Jy/pixel (float32; ``components`` keep the exact float64 values).
    """
    ny, nx = shape
    if not components:
        return np.zeros((nchan, ny, nx), dtype=np.float32)
    images = np.zeros((len(components), ny, nx), dtype=np.float32)
    for k, comp in enumerate(components):
        h, w = comp.profile.shape
        ys, xs = max(comp.y0, 0), max(comp.x0, 0)
        ye, xe = min(comp.y0 + h, ny), min(comp.x0 + w, nx)
        if ye > ys and xe > xs:
            images[k, ys:ye, xs:xe] = comp.profile[ys - comp.y0 : ye - comp.y0, xs - comp.x0 : xe - comp.x0]
    spectra = np.stack([comp.spectrum for comp in components], axis=1).astype(np.float32)
    return (spectra @ images.reshape(len(components), -1)).reshape(nchan, ny, nx)
