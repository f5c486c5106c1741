"""Robust noise estimates (median absolute deviation), used for normalization and SNR."""

import numpy as np

__all__ = ["MAD_TO_SIGMA", "robust_std", "channel_noise"]

#: Ratio of the standard deviation to the MAD of a Gaussian.
MAD_TO_SIGMA = 1.482602218505602


def robust_std(values):
    """Standard deviation estimated from the MAD, ignoring NaNs.

    Parameters
    ----------
    values : array-like
        Samples, any shape.

    Returns
    -------
    float
        ``1.4826 * median(|v - median(v)|)``; NaN when no finite sample exists.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    median = np.median(values)
    return float(MAD_TO_SIGMA * np.median(np.abs(values - median)))


def channel_noise(cube, *, max_samples=262144, seed=0):
    """Robust noise rms of each channel of a (chan, y, x) cube.

    Works plane by plane, so a memory-mapped or dask-backed cube is never loaded
    whole. Large planes are subsampled on a fixed pixel grid (reproducible).

    Parameters
    ----------
    cube : array-like, shape (nchan, ny, nx)
        Brightness, any unit (the result is in the same unit, as a bare float array).
    max_samples : int, optional
        Largest number of pixels used per channel.
    seed : int, optional
        Seed for choosing the subsample of pixels.

    Returns
    -------
    ndarray, shape (nchan,)
        Noise rms per channel; NaN for fully blanked channels.
    """
    nchan, ny, nx = cube.shape
    step = max(1, int(np.ceil(np.sqrt(ny * nx / max_samples))))
    rng = np.random.default_rng(seed)
    offset_y, offset_x = rng.integers(0, step, size=2)
    noise = np.empty(nchan)
    for k in range(nchan):
        plane = np.asarray(cube[k, offset_y::step, offset_x::step])
        noise[k] = robust_std(plane)
    return noise
