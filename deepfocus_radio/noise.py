"""Robust noise estimates (median absolute deviation), used for normalization and SNR."""

import warnings

import numpy as np

__all__ = ["MAD_TO_SIGMA", "robust_std", "plane_noise", "channel_noise", "noise_correlation"]

#: Ratio of the standard deviation to the MAD of a Gaussian.
MAD_TO_SIGMA = 1.482602218505602
#: Fewest usable pixels of a plane that measure the noise's correlation.
MIN_CORRELATION_PIXELS = 256


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


def plane_noise(planes):
    """Robust noise rms of each plane of a stack (the MAD of :func:`robust_std`, vectorized).

    Parameters
    ----------
    planes : ndarray, shape (n, ...)
        Samples of ``n`` planes, any unit; NaNs are ignored.

    Returns
    -------
    ndarray, shape (n,)
        float64, in the unit of ``planes``; NaN for planes with no finite sample.
    """
    planes = np.asarray(planes)
    # float32/64 in native byte order (a copy we own); integers and float16 as float64
    native = planes.dtype.kind == "f" and planes.dtype.itemsize >= 4
    dtype = planes.dtype.newbyteorder("=") if native else np.dtype(np.float64)
    values = planes.astype(dtype).reshape(len(planes), -1)
    if values.shape[1] == 0 or not np.isfinite(values.sum(axis=1)).all():
        return np.array([robust_std(row) for row in planes.reshape(len(planes), -1)])
    # in place on our own copy: two partial sorts, no temporaries (medians select samples,
    # so float32 data needs no float64 copy: values agree with robust_std to rounding)
    median = _median_in_place(values)
    np.subtract(values, median[:, None], out=values)
    np.abs(values, out=values)
    return MAD_TO_SIGMA * _median_in_place(values).astype(np.float64)


def _median_in_place(values):
    """Median of each row of a 2D array, partially sorting the rows in place."""
    n = values.shape[1]
    # one kth: numpy's partition with several kth is ~9x slower; for an even count the
    # lower middle value is the largest of the lower half
    values.partition(n // 2, axis=1)
    upper = values[:, n // 2]
    return upper if n % 2 else 0.5 * (values[:, : n // 2].max(axis=1) + upper)


def channel_noise(cube, *, max_samples=262144, seed=0, chunks=None):
    """Robust noise rms of each channel of a (chan, y, x) cube.

    Reads a few channels at a time, so a memory-mapped or dask-backed cube is never
    loaded whole. Large planes are subsampled on a fixed pixel grid (reproducible).

    Parameters
    ----------
    cube : array-like, shape (nchan, ny, nx)
        Brightness, any unit (the result is in the same unit, as a bare float array).
        Indexed as ``cube[c0:c1, y_slice, x_slice]``.
    max_samples : int, optional
        Largest number of pixels used per channel.
    seed : int, optional
        Seed for choosing the subsample of pixels.
    chunks : sequence of int, optional
        Channels read at once, summing to ``nchan`` (e.g. a dask array's ``chunks[0]``);
        default as many whole planes as fit in 32 MiB of float32 (at least one).

    Returns
    -------
    ndarray, shape (nchan,)
        Noise rms per channel; NaN for fully blanked channels.
    """
    nchan, ny, nx = cube.shape
    step = max(1, int(np.ceil(np.sqrt(ny * nx / max_samples))))
    rng = np.random.default_rng(seed)
    offset_y, offset_x = rng.integers(0, step, size=2)
    if chunks is None:
        per_read = max(1, (32 * 2**20) // (4 * ny * nx))
        chunks = [min(per_read, nchan - lo) for lo in range(0, nchan, per_read)]
    if sum(chunks) != nchan:
        raise ValueError(f"chunks={tuple(chunks)} do not sum to the {nchan} channels")
    noise = np.empty(nchan)
    lo = 0
    for count in chunks:
        slab = np.asarray(cube[lo:lo + count, offset_y::step, offset_x::step])
        noise[lo:lo + count] = plane_noise(slab)
        lo += count
    return noise


def noise_correlation(planes):
    """Correlation of the noise between pixels, measured on planes of a cube.

    The noise of a dirty cube is correlated over the beam and its sidelobes: its power
    spectrum follows the uv weights. The planes' per-pixel median (a continuum, which
    every plane shares) is subtracted, each plane's power spectrum is taken with its
    blanked pixels set to its mean, and the median over the planes of the power in each
    Fourier mode (a line that fills a few planes does not bias it, as in
    :func:`~deepfocus_radio.sources.bounds.noise_power_spectrum`) gives, transformed back,
    the correlation. Its spectrum is non-negative, so any matrix of its values at the lags
    between pixels (modulo the planes' size) is a valid covariance.

    Parameters
    ----------
    planes : array-like, shape (n, ny, nx)
        Planes of the dirty cube spread over its band (e.g. some of its channels), any
        unit; NaN where blanked.

    Returns
    -------
    ndarray, shape (ny, nx)
        Correlation coefficient at lag ``(dy, dx)`` in element ``[(ny // 2 + dy) % ny,
        (nx // 2 + dx) % nx]`` (``numpy.fft.fftshift`` order): 1 at ``[ny // 2, nx //
        2]``, periodic over the planes' size.

    Raises
    ------
    ValueError
        For planes that are not a 3D stack, or no plane with enough finite, non-constant
        pixels.
    """
    planes = np.asarray(planes, dtype=np.float64)
    if planes.ndim != 3:
        raise ValueError(f"noise_correlation needs a (n, ny, nx) stack of planes, got shape "
                         f"{planes.shape}")
    _, ny, nx = planes.shape
    finite = np.isfinite(planes)
    if len(planes) >= 3 and finite.any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            planes = planes - np.nanmedian(planes, axis=0)
    power = []
    for plane, keep in zip(planes, np.isfinite(planes)):
        if keep.sum() < MIN_CORRELATION_PIXELS:
            continue
        values = np.where(keep, plane - plane[keep].mean(), 0.0)
        if not np.any(values):
            continue
        power.append(np.abs(np.fft.rfft2(values)) ** 2 / keep.sum())
    if not power:
        raise ValueError("no plane has enough finite, non-constant pixels to measure the noise's "
                         "correlation: pass planes of the dirty cube with noise in them")
    correlation = np.fft.fftshift(np.fft.irfft2(np.median(np.array(power), axis=0), s=(ny, nx)))
    return correlation / correlation[ny // 2, nx // 2]
