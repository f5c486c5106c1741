"""Smoothing kernels of the smooth+clip finder and the noise of each smoothed cube.

A kernel is a pair ``(fwhm_xy, width_z)``: a circular Gaussian of FWHM ``fwhm_xy``
pixels on the sky (0 = no spatial smoothing) followed by a boxcar of ``width_z``
channels (0 or 1 = no spectral smoothing). Outside the cube the data are taken as zero
(``mode="constant"``), so smoothing a block with a halo of :func:`kernel_halo` voxels
gives bit for bit the same values on the block's core as smoothing the whole cube.

The noise of a smoothed cube is the noise of the input dirty cube times a factor per
kernel (:func:`noise_ratios`), measured robustly (MAD) on the dirty cube smoothed the
same way, or, without a dirty cube, propagated for noise whose spatial autocorrelation
is the beam and whose channels are independent.
"""

import numpy as np
from scipy import ndimage

from deepfocus_radio.conventions import FWHM_TO_SIGMA
from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.noise import robust_std

__all__ = ["make_kernels", "kernel_halo", "smooth", "noise_ratios", "smoothed_noise"]

#: Gaussian kernels are truncated at this many sigma (scipy's default).
TRUNCATE = 4.0
#: Largest sample of the dirty cube (voxels) used to measure the noise ratios.
MAX_NOISE_SAMPLE = 2**22


def make_kernels(kernels_xy, kernels_z, *, is_2d=False):
    """All combinations of spatial and spectral kernels, checked.

    Parameters
    ----------
    kernels_xy : sequence of float
        Spatial Gaussian FWHMs, pixels (0 = unsmoothed).
    kernels_z : sequence of int
        Spectral boxcar widths, channels, odd (0 or 1 = unsmoothed).
    is_2d : bool, optional
        A 2D image: spectral kernels are ignored.

    Returns
    -------
    list of tuple (float, int)
        ``(fwhm_xy, width_z)`` pairs, ``width_z`` normalised to >= 1.

    Raises
    ------
    ConfigError
        For negative sizes or even boxcar widths.
    """
    kernels_xy = [float(k) for k in np.atleast_1d(kernels_xy)]
    kernels_z = [1] if is_2d else [max(1, int(k)) for k in np.atleast_1d(kernels_z)]
    if not kernels_xy or any(k < 0 or not np.isfinite(k) for k in kernels_xy):
        raise ConfigError(
            f"kernels_xy={kernels_xy} must be a non-empty list of Gaussian FWHMs >= 0 (pixels)"
        )
    if any(k % 2 == 0 for k in kernels_z) or any(k < 0 for k in np.atleast_1d(kernels_z)):
        raise ConfigError(
            f"kernels_z={list(np.atleast_1d(kernels_z))} must hold odd boxcar widths in "
            "channels (0 or 1 for no smoothing), so the kernel is centred on the channel"
        )
    return [(kxy, kz) for kz in dict.fromkeys(kernels_z) for kxy in dict.fromkeys(kernels_xy)]


def kernel_halo(kernels):
    """Halo (chan, y, x) in voxels that a block needs for exact smoothing on its core."""
    radius_xy = max(int(TRUNCATE * kxy * FWHM_TO_SIGMA + 0.5) for kxy, _ in kernels)
    radius_z = max(kz // 2 for _, kz in kernels)
    return (radius_z, radius_xy, radius_xy)


def smooth(block, kernel):
    """Smooth a (chan, y, x) float32 block with one kernel (zeros outside the block).

    Parameters
    ----------
    block : ndarray
        Data with NaNs already replaced.
    kernel : tuple (float, int)
        ``(fwhm_xy, width_z)``.

    Returns
    -------
    ndarray
        The smoothed block (a new array unless the kernel is the identity).
    """
    fwhm_xy, width_z = kernel
    out = block
    if fwhm_xy > 0:
        sigma = fwhm_xy * FWHM_TO_SIGMA
        out = ndimage.gaussian_filter(out, sigma=(0, sigma, sigma), mode="constant",
                                      truncate=TRUNCATE)
    if width_z > 1:
        out = ndimage.uniform_filter1d(out, size=width_z, axis=0, mode="constant")
    return out


def _sample_slices(shape, halo):
    """Central block of at most MAX_NOISE_SAMPLE voxels, with room for the halo."""
    if np.prod(shape) <= MAX_NOISE_SAMPLE:
        return tuple(slice(0, n) for n in shape), tuple(slice(0, n) for n in shape)
    core = (min(shape[0], 64), min(shape[1], 256), min(shape[2], 256))
    outer, inner = [], []
    for n, c, h in zip(shape, core, halo):
        start = (n - c) // 2
        lo, hi = max(0, start - h), min(n, start + c + h)
        outer.append(slice(lo, hi))
        inner.append(slice(start - lo, start - lo + c))
    return tuple(outer), tuple(inner)


def noise_ratios(kernels, *, noise_reader=None, beam_fwhm_pix=None):
    """Factor by which each kernel lowers the noise of the dirty cube.

    Parameters
    ----------
    kernels : list of tuple
        From :func:`make_kernels`.
    noise_reader : CubeReader, optional
        The dirty cube: the ratio is ``MAD(smoothed) / MAD(raw)`` on a fixed central
        sample (the whole cube when it has at most 2**22 voxels).
    beam_fwhm_pix : float, optional
        Beam FWHM in pixels, for the propagated ratio when no dirty cube is given:
        ``sqrt(s_b^2 / 2 / (s_b^2 / 2 + s_k^2)) / sqrt(width_z)`` for noise whose
        autocorrelation is a Gaussian beam of sigma ``s_b`` (``s_k``: kernel sigma).

    Returns
    -------
    ndarray
        One ratio per kernel (1 for the identity kernel).

    Raises
    ------
    ConfigError
        When spatial kernels are requested but neither input is given.
    """
    if noise_reader is not None:
        outer, inner = _sample_slices(noise_reader.shape, kernel_halo(kernels))
        raw = noise_reader.read(outer)
        valid = np.isfinite(raw)[inner]
        raw = np.nan_to_num(raw, nan=0.0)
        reference = robust_std(raw[inner][valid])
        return np.array([robust_std(smooth(raw, k)[inner][valid]) / reference for k in kernels])
    if beam_fwhm_pix is None and any(kxy > 0 for kxy, _ in kernels):
        raise ConfigError(
            "spatial smoothing kernels (kernels_xy > 0) need the noise of the smoothed cube: "
            "pass noise_cube= (the dirty cube) or beam= (its beam, with wcs=), or use "
            "kernels_xy=(0,)"
        )
    ratios = []
    for kxy, kz in kernels:
        spatial = 1.0
        if kxy > 0:
            half_beam_var = 0.5 * (beam_fwhm_pix * FWHM_TO_SIGMA) ** 2
            spatial = np.sqrt(half_beam_var / (half_beam_var + (kxy * FWHM_TO_SIGMA) ** 2))
        ratios.append(spatial / np.sqrt(kz))
    return np.array(ratios)


def smoothed_noise(noise, kernel, ratio):
    """Per-channel noise of the cube smoothed with ``kernel``.

    Parameters
    ----------
    noise : ndarray, shape (nchan,)
        Noise of the dirty cube per channel (NaN-free; blank channels hold 0).
    kernel : tuple (float, int)
        ``(fwhm_xy, width_z)``.
    ratio : float
        The kernel's factor from :func:`noise_ratios`.

    Returns
    -------
    ndarray, shape (nchan,)
        ``ratio * sqrt(window mean of noise**2)``, zeros outside the cube as for the data.
    """
    _, width_z = kernel
    variance = noise.astype(np.float64) ** 2
    if width_z > 1:
        variance = ndimage.uniform_filter1d(variance, size=width_z, mode="constant")
    return ratio * np.sqrt(variance)
