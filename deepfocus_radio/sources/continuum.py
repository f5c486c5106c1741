"""Continuum subtraction before line finding: a robust per-pixel continuum level.

The catalogue's ``flux`` is a *line* flux, so continuum emission under a line must not be
counted (nor detected as a source filling every channel). The continuum of each pixel is
estimated from its spectrum by iterative one-sided clipping: start from the median, drop
the channels above ``level + clip * sigma`` (``sigma``: the spectrum's noise, from the
median absolute difference of adjacent channels, which lines barely affect), take the
median of the rest, and repeat until the level settles. Emission lines, which only add
flux, are clipped even when they fill most of the band, as long as some channels are free
of them. The level is kept only where it is significant (``|level| > significance *
1.25 sigma / sqrt(n)``), so line-only and empty pixels are left untouched. A spectral
slope across the band is neglected (a spectral index of 3 over 0.4 GHz at 100 GHz
changes the continuum by about 1%). The subtraction is lazy: the map is subtracted from
each block when it is read, so cubes larger than memory work.
"""

import warnings

import numpy as np
from scipy import ndimage

from deepfocus_radio.noise import MAD_TO_SIGMA
from deepfocus_radio.sources._arrays import CubeReader

__all__ = ["continuum_map", "ContinuumSubtracted", "MIN_CHANNELS"]

#: Cubes with fewer channels are not continuum-subtracted.
MIN_CHANNELS = 8


def continuum_map(cube, *, clip=2.0, significance=5.0, min_pixels=1, grow=0, max_iter=20,
                  block=128):
    """Continuum level of every pixel (see the module notes).

    Parameters
    ----------
    cube : array-like or SpectralCube, shape (chan, y, x)
        Brightness (any unit); NaNs are ignored.
    clip : float, optional
        Channels more than ``clip`` noise rms above the current level are dropped.
    significance : float, optional
        Levels below this many times their uncertainty (and all negative levels: noise,
        or absorption, which is not continuum emission) are set to 0...
    min_pixels : int, optional
        Connected groups of fewer significant pixels are ignored (a continuum source
        covers about a beam; a few pixels are chance excursions of line wings).
    grow : int, optional
        ... except within ``grow`` pixels of a significant one (a continuum source's wings,
        faint per pixel but coherent over the band; use about a beam FWHM).
    max_iter : int, optional
        Most clipping iterations.
    block : int, optional
        Spatial block side read at a time (all channels of a block are read together).

    Returns
    -------
    ndarray, shape (y, x)
        Continuum level in the cube's unit (0 where insignificant or all NaN).
    """
    reader = CubeReader(cube)
    nchan, ny, nx = reader.shape
    out = np.zeros((ny, nx))
    significant = np.zeros((ny, nx), dtype=bool)
    for y0 in range(0, ny, block):
        for x0 in range(0, nx, block):
            sl = (slice(0, nchan), slice(y0, min(ny, y0 + block)), slice(x0, min(nx, x0 + block)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spectra
                out[sl[1:]], significant[sl[1:]] = _block_level(
                    reader.read(sl).astype(np.float64), clip, significance, max_iter)
    if min_pixels > 1 and significant.any():
        labels, count = ndimage.label(significant)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        significant = (sizes >= min_pixels)[labels] & significant
    if grow > 0 and significant.any():
        disk = np.hypot(*np.mgrid[-grow:grow + 1, -grow:grow + 1]) <= grow
        significant = ndimage.binary_dilation(significant, structure=disk)
    return np.where(significant, out, 0.0)


def _block_level(data, clip, significance, max_iter):
    """Clipped-median level and its significance for a (chan, y, x) block.

    Each spectrum is sorted once; the median of the channels below a cut is then the
    middle of a prefix of the sorted spectrum, so each iteration only counts.
    """
    diffs = np.abs(np.diff(data, axis=0))
    median = np.nanmedian if np.isnan(diffs).any() else np.median
    sigma = MAD_TO_SIGMA * median(diffs, axis=0) / np.sqrt(2)
    ordered = np.sort(data, axis=0)  # NaNs last
    count = np.isfinite(data).sum(axis=0)
    level = _prefix_median(ordered, count)
    for _ in range(max_iter):
        kept = np.maximum((ordered <= (level + clip * sigma)[None]).sum(axis=0), 1)
        if np.array_equal(kept, count):
            break
        count, level = kept, _prefix_median(ordered, kept)
    uncertainty = 1.25 * sigma / np.sqrt(np.maximum(count, 1))
    finite = np.isfinite(level)
    return np.where(finite, level, 0.0), finite & (level > significance * uncertainty)


def _prefix_median(ordered, count):
    """Median of the first ``count`` values of each sorted spectrum."""
    count = np.maximum(count, 1)
    low = np.take_along_axis(ordered, ((count - 1) // 2)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    return 0.5 * (low + high)


class ContinuumSubtracted:
    """A (chan, y, x) cube minus a continuum map, read lazily block by block.

    Parameters
    ----------
    cube : array-like or SpectralCube
        The cube (never modified).
    continuum : ndarray, shape (y, x), optional
        Map to subtract (default: :func:`continuum_map` of ``cube``).
    min_pixels, grow : int, optional
        Passed to :func:`continuum_map` when the map is computed here.

    Attributes
    ----------
    shape, ndim, unit, dtype
        As an array: ``cube[key]`` (integers and slices, as numpy) returns float32 values.
    continuum : ndarray
        The subtracted map.
    """

    def __init__(self, cube, continuum=None, *, min_pixels=1, grow=0):
        self._reader = CubeReader(cube)
        self.unit = self._reader.unit
        self.shape = self._reader.shape
        self.ndim = 3
        self.dtype = np.dtype(np.float32)
        self.continuum = (continuum_map(cube, min_pixels=min_pixels, grow=grow)
                          if continuum is None else np.asarray(continuum))

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        read, local = [], []
        for item, n in zip(key, self.shape):
            if isinstance(item, (int, np.integer)):
                index = int(item) % n
                read.append(slice(index, index + 1))
                local.append(0)
                continue
            start, stop, step = item.indices(n)
            if step > 0:
                read.append(slice(start, max(start, stop)))
                local.append(slice(None, None, step))
            else:  # reversed: read the whole axis, index it as asked
                read.append(slice(0, n))
                local.append(item)
        block = self._reader.read(tuple(read))
        block -= self.continuum[tuple(read[1:])].astype(np.float32)
        return block[tuple(local)]
