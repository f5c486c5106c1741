"""Synthesis imaging: weighted uv sampling, dirty beams, correlated noise, beam fitting.

The imager works on the image's own uv grid (cell ``1 / (N * pixel)``) with
nearest-cell gridding and no gridding convolution function, so the dirty image is the
exact Fourier inverse of the weighted sampled visibilities of the pixelized sky:

* the point-spread function (PSF, dirty beam) of a channel is the real part of the
  inverse FFT of the gridded weights, normalized to a peak of 1 at the centre;
* a dirty image is the sky convolved with that PSF, done on a grid padded to twice the
  image size so that no sidelobe wraps around the image edge;
* thermal noise is complex Gaussian noise on every visibility, gridded with the same
  weights (its variance in a cell is the sum of the squared weights there) and imaged the
  same way, so it is correlated on the scale of the beam as in real images.

The w-term and time/bandwidth smearing are neglected (small fields, short integrations).
"""

from dataclasses import dataclass

import numpy as np
import scipy.fft
from astropy import constants
from astropy import units as u
from radio_beam import Beam
from scipy import ndimage

from deepfocus_radio.conventions import FWHM_TO_SIGMA, pixel_angle_to_pa
from deepfocus_radio.exceptions import ConfigError

__all__ = [
    "UVSampling",
    "GaussianPSF",
    "fit_beam",
    "gaussian_kernel",
    "centred_crop",
]

_SPEED_OF_LIGHT = constants.c.to_value(u.m / u.s)
_BRIGGS_SCALE = 5.0


def _wrapped_offsets(size):
    """Pixel offsets of an FFT grid from its (0, 0) corner, in [-size/2, size/2)."""
    return (np.arange(size) + size // 2) % size - size // 2


def _mirror(grid):
    """``grid[-k mod M]``: the grid at the opposite uv cell (visibility conjugates)."""
    out = np.empty_like(grid)
    out[0, 0] = grid[0, 0]
    out[0, 1:] = grid[0, :0:-1]
    out[1:, 0] = grid[:0:-1, 0]
    out[1:, 1:] = grid[:0:-1, :0:-1]
    return out


def gaussian_kernel(beam_fwhm_pixels, shape, *, centred=False):
    """Peak-1 elliptical Gaussian sampled on a grid.

    Parameters
    ----------
    beam_fwhm_pixels : (float, float, float)
        Major FWHM (pixels), minor FWHM (pixels), pixel angle of the major axis (deg,
        counter-clockwise from +x).
    shape : (int, int)
        Grid shape (ny, nx).
    centred : bool, optional
        Peak at ``(ny // 2, nx // 2)``; otherwise at ``(0, 0)`` with wrap-around, as FFT
        convolution kernels are laid out.

    Returns
    -------
    ndarray
        The kernel, value exactly 1 at the peak pixel.
    """
    major, minor, angle = beam_fwhm_pixels
    ny, nx = shape
    if centred:
        dy, dx = np.arange(ny) - ny // 2, np.arange(nx) - nx // 2
    else:
        dy, dx = _wrapped_offsets(ny), _wrapped_offsets(nx)
    theta = np.deg2rad(angle)
    along = dx[None, :] * np.cos(theta) + dy[:, None] * np.sin(theta)
    across = -dx[None, :] * np.sin(theta) + dy[:, None] * np.cos(theta)
    s_major, s_minor = major * FWHM_TO_SIGMA, minor * FWHM_TO_SIGMA
    return np.exp(-0.5 * ((along / s_major) ** 2 + (across / s_minor) ** 2))


def centred_crop(psf_corner, shape):
    """Cut an image-sized PSF with its peak at ``(ny // 2, nx // 2)`` from a padded one.

    Parameters
    ----------
    psf_corner : ndarray, shape (..., 2 * ny, 2 * nx)
        PSF with its peak at pixel (0, 0), wrapping around (as an inverse FFT gives it).
    shape : (int, int)
        Output (ny, nx).
    """
    ny, nx = shape
    rows = (np.arange(ny) - ny // 2) % psf_corner.shape[-2]
    cols = (np.arange(nx) - nx // 2) % psf_corner.shape[-1]
    return psf_corner[..., rows[:, None], cols[None, :]]


@dataclass
class UVSampling:
    """Earth-rotation uv coverage of an array and how it is weighted and imaged.

    Parameters
    ----------
    u_m, v_m : ndarray
        Baseline coordinates (one of each ``(u, v)``, ``(-u, -v)`` pair), m.
    shape : (int, int)
        Image shape (ny, nx).
    pixel_scale : float
        Pixel size, rad.
    weighting : {"natural", "uniform", "briggs"}
        Weighting scheme.
    robust : float
        Briggs robust parameter.
    """

    u_m: np.ndarray
    v_m: np.ndarray
    shape: tuple
    pixel_scale: float
    weighting: str = "natural"
    robust: float = 0.0

    def _cells(self, frequency):
        """Flat grid indices of the samples on the image grid and on the padded (twice as
        large) grid; samples outside the image's uv extent are dropped."""
        ny, nx = self.shape
        scale = frequency / _SPEED_OF_LIGHT * self.pixel_scale
        # x grows to the west on the sky (east to the left), so u maps to -kx.
        ku = self.u_m * (-scale * nx)
        kv = self.v_m * (scale * ny)
        limit_u, limit_v = nx // 2 - 0.5, ny // 2 - 0.5
        if np.abs(self.u_m).max() * scale * nx >= limit_u or np.abs(self.v_m).max() * scale * ny >= limit_v:
            keep = (np.abs(ku) < limit_u) & (np.abs(kv) < limit_v)
            ku, kv = ku[keep], kv[keep]
        cells = []
        for factor in (1, 2):
            iu = np.rint(ku * factor).astype(np.int32)
            iv = np.rint(kv * factor).astype(np.int32)
            cells.append((iv % (factor * ny)) * (factor * nx) + iu % (factor * nx))
        return cells

    def _weights(self, cells):
        """Per-sample weights (each sample stands for itself and its mirror)."""
        ny, nx = self.shape
        if self.weighting == "natural":
            return np.ones(cells.size)
        counts = np.bincount(cells, minlength=ny * nx).reshape(ny, nx)
        density = (counts + _mirror(counts)).ravel()
        per_sample = density[cells].astype(float)
        if self.weighting == "uniform":
            return 1.0 / per_sample
        f2 = (_BRIGGS_SCALE * 10.0 ** (-self.robust)) ** 2 / (
            np.sum(density.astype(float) ** 2) / (2.0 * cells.size)
        )
        return 1.0 / (1.0 + per_sample * f2)

    def channel(self, frequency):
        """Gridded weights of one channel.

        Parameters
        ----------
        frequency : float
            Channel frequency, Hz.

        Returns
        -------
        psf_hat : ndarray, shape (2 * ny, nx + 1)
            Real Fourier transform of the PSF on the padded grid (``rfft2`` layout),
            scaled so that the PSF peaks at 1.
        noise_amplitude : ndarray, shape (ny, nx)
            Standard deviation of the gridded visibility noise on the image grid, up to a
            constant factor (square root of the summed squared weights per cell).

        Raises
        ------
        ConfigError
            When no baseline falls on the uv grid.
        """
        ny, nx = self.shape
        cells, pad_cells = self._cells(frequency)
        if cells.size == 0:
            raise ConfigError("no baseline falls on the uv grid: the pixel size is too large")
        weights = self._weights(cells)
        power = np.bincount(cells, weights**2, ny * nx).reshape(ny, nx)
        grid = np.bincount(pad_cells, weights, 4 * ny * nx).reshape(2 * ny, 2 * nx)
        grid += _mirror(grid)
        grid *= grid.size / grid.sum()
        return grid[:, : nx + 1], np.sqrt(power + _mirror(power))

    def psf(self, frequency):
        """Image-sized PSF of one channel, peak 1 at ``(ny // 2, nx // 2)``."""
        psf_hat, _ = self.channel(frequency)
        full = scipy.fft.irfft2(psf_hat, s=(2 * self.shape[0], 2 * self.shape[1]))
        return centred_crop(full, self.shape)


@dataclass
class GaussianPSF:
    """A Gaussian dirty beam (the same for every channel), with noise smoothed by it.

    Parameters
    ----------
    beam_fwhm_pixels : (float, float, float)
        Major and minor FWHM (pixels) and pixel angle (deg from +x) of the beam.
    shape : (int, int)
        Image shape (ny, nx).
    """

    beam_fwhm_pixels: tuple
    shape: tuple

    def __post_init__(self):
        ny, nx = self.shape
        kernel = gaussian_kernel(self.beam_fwhm_pixels, (2 * ny, 2 * nx))
        self._psf_hat = scipy.fft.rfft2(kernel).real
        self._amplitude = np.abs(scipy.fft.fft2(gaussian_kernel(self.beam_fwhm_pixels, self.shape)))

    def channel(self, frequency):
        """Same outputs as :meth:`UVSampling.channel` (``frequency`` is not used)."""
        return self._psf_hat, self._amplitude

    def psf(self, frequency):
        """Image-sized PSF, peak 1 at ``(ny // 2, nx // 2)``."""
        return gaussian_kernel(self.beam_fwhm_pixels, self.shape, centred=True)


def fit_beam(psf, pixel_scale, *, threshold=0.35):
    """Gaussian fit to the main lobe of a PSF: the restoring beam.

    The logarithm of the PSF over the main lobe (the pixels above ``threshold`` connected
    to the centre) is fitted by a quadratic form by weighted linear least squares; a
    Gaussian is recovered exactly.

    Parameters
    ----------
    psf : ndarray, shape (ny, nx)
        PSF, peak 1 at ``(ny // 2, nx // 2)``, east to the left (``CDELT1 < 0``).
    pixel_scale : `~astropy.units.Quantity`
        Pixel size (angle).
    threshold : float, optional
        Lower edge of the main lobe, fraction of the peak.

    Returns
    -------
    `radio_beam.Beam`
        FWHM major and minor axes and PA (east of north).

    Raises
    ------
    ConfigError
        When the main lobe spans fewer than 5 pixels (pixels much too large).
    """
    ny, nx = psf.shape
    labels, _ = ndimage.label(psf > threshold)
    lobe = labels == labels[ny // 2, nx // 2]
    if lobe.sum() < 5:
        raise ConfigError("the PSF main lobe covers fewer than 5 pixels: pixels too large for the beam")
    yy, xx = np.nonzero(lobe)
    dy, dx = yy - ny // 2, xx - nx // 2
    design = np.column_stack([dx * dx, dx * dy, dy * dy])
    weight = psf[yy, xx]
    coeff, *_ = np.linalg.lstsq(design * weight[:, None], -np.log(psf[yy, xx]) * weight, rcond=None)
    inverse_cov = 2.0 * np.array([[coeff[0], coeff[1] / 2.0], [coeff[1] / 2.0, coeff[2]]])
    variances, vectors = np.linalg.eigh(np.linalg.inv(inverse_cov))
    if variances.min() <= 0:
        raise ConfigError("the PSF main lobe is not bell-shaped: cannot fit a restoring beam")
    major_vector = vectors[:, 1]
    angle = np.rad2deg(np.arctan2(major_vector[1], major_vector[0]))
    scale = u.Quantity(pixel_scale).to(u.arcsec)
    return Beam(
        major=np.sqrt(variances[1]) / FWHM_TO_SIGMA * scale,
        minor=np.sqrt(variances[0]) / FWHM_TO_SIGMA * scale,
        pa=float(pixel_angle_to_pa(angle)) * u.deg,
    )
