"""Image-domain Hogbom CLEAN of a cube, channel by channel.

This is the fallback for CASA's image-domain ``deconvolve`` task (``casatasks``), used as
the CLEAN baseline in benchmarks when CASA is absent. It needs the per-channel dirty beam
(PSF, peak 1) and restores with the common restoring beam (a peak-1 Gaussian), so its
output is in Jy/beam like a ``tclean`` image.
"""

import numpy as np
from astropy import units as u
from scipy.signal import fftconvolve

from deepfocus_radio.exceptions import InputDataError

__all__ = ["hogbom_clean", "restoring_kernel", "clean_plane"]


def restoring_kernel(beam, pixel_scale):
    """Peak-1 image of a restoring beam, sampled on the pixel grid.

    Parameters
    ----------
    beam : `radio_beam.Beam`
        Restoring beam.
    pixel_scale : `~astropy.units.Quantity`
        Pixel side length.

    Returns
    -------
    ndarray
        Odd-sized 2D kernel with peak 1 at its centre (not area-normalized).
    """
    kernel = beam.as_kernel(u.Quantity(pixel_scale, u.deg)).array
    return kernel / kernel.max()


def clean_plane(dirty, psf, *, gain=0.1, threshold, max_iter=10000):
    """Hogbom CLEAN of one plane.

    Parameters
    ----------
    dirty : ndarray, shape (ny, nx)
        Dirty image, Jy/beam. NaNs are treated as zeros.
    psf : ndarray, shape (py, px)
        Dirty beam with peak 1 at pixel ``(py // 2, px // 2)``.
    gain : float, optional
        Loop gain.
    threshold : float
        Stop when the absolute residual peak falls below this, Jy/beam.
    max_iter : int, optional
        Largest number of minor cycles.

    Returns
    -------
    components : ndarray, shape (ny, nx)
        CLEAN components, Jy/pixel.
    residual : ndarray, shape (ny, nx)
        Residual image, Jy/beam.
    """
    residual = np.nan_to_num(np.asarray(dirty, dtype=np.float64)).copy()
    components = np.zeros_like(residual)
    ny, nx = residual.shape
    py, px = psf.shape
    cy, cx = py // 2, px // 2
    for _ in range(max_iter):
        iy, ix = np.unravel_index(np.argmax(np.abs(residual)), residual.shape)
        peak = residual[iy, ix]
        if abs(peak) < threshold:
            break
        step = gain * peak
        components[iy, ix] += step
        y0, y1 = max(0, iy - cy), min(ny, iy - cy + py)
        x0, x1 = max(0, ix - cx), min(nx, ix - cx + px)
        residual[y0:y1, x0:x1] -= step * psf[y0 - iy + cy : y1 - iy + cy, x0 - ix + cx : x1 - ix + cx]
    return components, residual


def hogbom_clean(dirty, psf, beam, pixel_scale, *, noise, threshold=1.5, gain=0.1, max_iter=10000):
    """CLEAN a (chan, y, x) cube and restore it with the common beam.

    Parameters
    ----------
    dirty : ndarray, shape (nchan, ny, nx)
        Dirty cube, Jy/beam.
    psf : ndarray, shape (nchan, py, px)
        Per-channel dirty beam, peak 1 at the centre pixel.
    beam : `radio_beam.Beam`
        Common restoring beam.
    pixel_scale : `~astropy.units.Quantity`
        Pixel side length.
    noise : array-like, shape (nchan,)
        Noise rms per channel, Jy/beam.
    threshold : float, optional
        CLEAN down to ``threshold * noise`` in each channel.
    gain, max_iter : optional
        Loop gain and largest number of minor cycles per channel.

    Returns
    -------
    ndarray, shape (nchan, ny, nx)
        Restored cube (components ⊛ restoring beam + residual), Jy/beam, float32.

    Raises
    ------
    InputDataError
        If the dirty cube and the PSF have different channel counts or are not 3D.
    """
    dirty = np.asarray(dirty)
    psf = np.asarray(psf)
    if dirty.ndim != 3 or psf.ndim != 3 or dirty.shape[0] != psf.shape[0]:
        raise InputDataError(
            f"hogbom_clean needs a (chan, y, x) cube and a PSF with the same number of "
            f"channels; got cube {dirty.shape} and PSF {psf.shape}."
        )
    noise = np.broadcast_to(np.asarray(noise, dtype=float), (dirty.shape[0],))
    kernel = restoring_kernel(beam, pixel_scale)
    restored = np.empty(dirty.shape, dtype=np.float32)
    for k in range(dirty.shape[0]):
        components, residual = clean_plane(
            dirty[k], psf[k], gain=gain, threshold=threshold * noise[k], max_iter=max_iter
        )
        restored[k] = fftconvolve(components, kernel, mode="same") + residual
    restored[np.isnan(dirty)] = np.nan
    return restored
