"""Multi-scale smooth+clip source detection on (deconvolved) cubes, in the spirit of SoFiA.

The cube is smoothed with every combination of spatial Gaussian and spectral boxcar
kernels; a voxel belongs to the detection mask if any smoothed version exceeds
``threshold`` times the noise of that version. The noise is that of the input **dirty**
cube (a network output is no noise reference): per channel, scaled for each kernel by the
factor the same smoothing gives on the dirty cube (:mod:`._smoothing`). The mask is split
into connected objects (face connectivity) block by block with overlapping halos, so cubes
larger than memory work and the result equals a whole-cube run. Objects smaller than
``min_pixels`` voxels or ``min_channels`` channels are dropped, touching sources are
deblended (:mod:`.deblend`), and a reliability is estimated from the detections of the
negated cube where there are enough of them (:mod:`.reliability`).
"""

import numpy as np
from astropy import units as u

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.sources import _smoothing
from deepfocus_radio.sources._arrays import CubeReader
from deepfocus_radio.sources._linking import BlockLinker
from deepfocus_radio.sources.deblend import CONTRAST, PROMINENCE, deblend_segment
from deepfocus_radio.sources.reliability import detection_features, reliability as _reliability

__all__ = ["Detections", "detect_sources"]

#: Cubes with at most this many voxels are processed in one block by default.
WHOLE_CUBE_VOXELS = 2**25
#: Default core block (chan, y, x) for larger cubes.
DEFAULT_CHUNKS = (64, 512, 512)


class Detections:
    """The sources found in a cube: one boolean mask cutout per source.

    Attributes
    ----------
    segments : list of Segment
        Bounding box (``.slices``, (chan, y, x)) and boolean ``.mask`` of each source,
        sorted by decreasing peak SNR.
    shape : tuple of int
        Shape of the searched cube (2D for an image).
    noise : ndarray
        Noise rms of the dirty cube per channel (the cube's brightness unit).
    peak_snr, sum_snr : ndarray
        Peak brightness / noise, and SNR of the summed brightness (white-noise estimate).
    reliability : ndarray
        Reliability in [0, 1] from the negative detections, NaN where not estimated.
    n_negative : int
        Number of detections in the negated cube (0 when not searched).
    threshold : float
        Detection threshold, in noise rms.
    """

    def __init__(self, segments, *, shape, noise, threshold, peak_snr, sum_snr, reliability,
                 n_negative=0):
        self.segments = list(segments)
        self.shape = tuple(shape)
        self.noise = np.asarray(noise, dtype=float)
        self.threshold = float(threshold)
        self.peak_snr = np.asarray(peak_snr, dtype=float)
        self.sum_snr = np.asarray(sum_snr, dtype=float)
        self.reliability = np.asarray(reliability, dtype=float)
        self.n_negative = int(n_negative)

    @property
    def ndim(self):
        """2 for an image, 3 for a cube."""
        return len(self.shape)

    @property
    def n_pixels(self):
        """Voxels per source (ndarray of int)."""
        return np.array([seg.n_pixels for seg in self.segments], dtype=int)

    def __len__(self):
        return len(self.segments)

    def __iter__(self):
        return iter(self.segments)

    def __getitem__(self, index):
        return self.segments[index]

    def label_image(self):
        """Label array of the searched cube's shape: 0 = background, ``i + 1`` = source i.

        Returns
        -------
        ndarray of int32
            Only for cubes that fit in memory.
        """
        shape3 = self.shape if self.ndim == 3 else (1,) + self.shape
        labels = np.zeros(shape3, dtype=np.int32)
        for i, seg in enumerate(self.segments, start=1):
            labels[seg.slices][seg.mask] = i
        return labels.reshape(self.shape)

    def __repr__(self):
        return (f"<Detections: {len(self)} sources in a {self.ndim}D array of shape "
                f"{self.shape}, threshold {self.threshold:g} sigma>")


def detect_sources(cube, *, noise, wcs=None, beam=None, noise_cube=None, threshold=4.0,
                   kernels_xy=(0, 3, 6), kernels_z=(0, 3, 7), min_pixels=5, min_channels=2,
                   deblend=True, deblend_contrast=CONTRAST, deblend_prominence=PROMINENCE,
                   deblend_noise=None, reliability=True, min_reliability=0.9, min_peak_snr=0.0,
                   chunks=None, mask=None, progress=False):
    """Find sources with a multi-scale smooth+clip finder.

    Parameters
    ----------
    cube : ndarray, dask array, zarr array or SpectralCube, shape (chan, y, x) or (y, x)
        The cube to search, normally the deconvolved cube, Jy/beam. Never modified.
    noise : float, array-like of shape (nchan,) or `~astropy.units.Quantity`
        Robust noise rms of the input **dirty** cube per channel
        (:func:`deepfocus_radio.noise.channel_noise`), in the cube's unit. NaN marks a
        blank channel.
    wcs : `~astropy.wcs.WCS`, optional
        Needed with a `~radio_beam.Beam` ``beam`` to express it in pixels; taken from
        a SpectralCube input.
    beam : `~radio_beam.Beam` or float, optional
        Beam (or its FWHM in pixels). Sets the deblending peak separation (half a beam)
        and, without ``noise_cube``, the propagated noise of smoothed cubes. Taken from a
        SpectralCube input.
    noise_cube : array-like or SpectralCube, optional
        The dirty cube: the noise of each smoothed cube is measured on it, smoothed the
        same way (recommended; :func:`find_sources` passes it).
    threshold : float, optional
        Detection threshold in noise rms of each smoothed cube.
    kernels_xy : sequence of float, optional
        Spatial Gaussian FWHMs, pixels (0 = unsmoothed).
    kernels_z : sequence of int, optional
        Spectral boxcar widths, odd, channels (0 = unsmoothed). Ignored for images.
    min_pixels : int, optional
        Smallest object kept, voxels.
    min_channels : int, optional
        Smallest number of channels an object spans (1 for images).
    deblend : bool, optional
        Split touching sources (:func:`deblend_segment`).
    deblend_contrast, deblend_prominence : float, optional
        Deblending criteria (see :mod:`deepfocus_radio.sources.deblend`).
    deblend_noise : array-like of shape (nchan,), optional
        The noise rms, per channel and in the cube's unit, that a split must stand
        ``deblend_prominence`` times above its saddle: the noise that makes false saddles
        in ``cube``. Default ``noise`` (right for a dirty cube); :func:`find_sources`
        passes a deconvolved cube's own noise (see ``DENOISED_NOISE_FLOOR`` there).
    reliability : bool, optional
        Search the negated cube and estimate reliabilities (:mod:`.reliability`).
    min_reliability : float, optional
        Detections whose estimated reliability is below this are removed.
    min_peak_snr : float, optional
        Detections whose unsmoothed peak is below this many noise rms are removed (0: keep
        all; smoothed versions can find sources whose peak is below ``threshold``).
    chunks : int or tuple of int, optional
        Core block size (chan, y, x) for block-wise processing. Default: the whole cube
        up to 2**25 voxels, else (64, 512, 512).
    mask : ndarray of bool, optional
        True where the data are to be ignored.
    progress : bool, optional
        Show a progress bar over blocks.

    Returns
    -------
    Detections
        May be empty.

    Raises
    ------
    InputDataError
        For a noise array of the wrong length or a mask of the wrong shape.
    ConfigError
        For invalid kernels, sizes or chunks, or spatial kernels without a noise reference.
    """
    reader = CubeReader(cube, mask=mask)
    wcs = wcs if wcs is not None else reader.wcs
    beam = beam if beam is not None else reader.beam
    noise = _channel_noise_array(noise, reader)
    kernels = _smoothing.make_kernels(kernels_xy, kernels_z, is_2d=reader.ndim == 2)
    min_channels = 1 if reader.ndim == 2 else int(min_channels)
    _check_sizes(threshold, min_pixels, min_channels)
    beam_pix = _beam_fwhm_pixels(beam, wcs)
    noise_reader = None if noise_cube is None else CubeReader(noise_cube)
    if noise_reader is not None and noise_reader.shape != reader.shape:
        raise InputDataError(
            f"noise_cube has shape {noise_reader.shape} but the cube has shape {reader.shape}; "
            "pass the dirty cube the searched cube was made from"
        )
    levels = _levels(kernels, noise, threshold, noise_reader, beam_pix)
    search = dict(kernels=kernels, levels=levels, blocks=_block_grid(reader.shape, chunks),
                  min_pixels=int(min_pixels), min_channels=min_channels, progress=progress)
    split = None
    if deblend:
        split = dict(min_distance=max(1, int(round(beam_pix / 2))) if beam_pix else 2,
                     contrast=deblend_contrast, prominence=deblend_prominence)
        split["noise"] = noise if deblend_noise is None else _channel_noise_array(
            deblend_noise, reader)
    found = _search(reader, signs=(1.0, -1.0) if reliability else (1.0,), **search)
    segments, peak_snr, sum_snr = _measured(reader, found[1.0], noise, sign=1.0, split=split)
    rel = np.full(len(segments), np.nan)
    n_negative = 0
    if reliability and segments:
        negatives, neg_peak, neg_sum = _measured(reader, found[-1.0], noise, sign=-1.0,
                                                 split=split)
        n_negative = len(negatives)
        rel = _reliability(
            detection_features(peak_snr, sum_snr, [s.n_pixels for s in segments]),
            detection_features(neg_peak, neg_sum, [s.n_pixels for s in negatives]),
        )
    keep = ~(rel < min_reliability) & (peak_snr >= min_peak_snr)
    order = [i for i in np.lexsort((np.arange(len(segments)), -peak_snr)) if keep[i]]
    return Detections(
        [segments[i] for i in order], shape=tuple(cube.shape), noise=noise,
        threshold=threshold, peak_snr=peak_snr[order], sum_snr=sum_snr[order],
        reliability=rel[order], n_negative=n_negative,
    )


def _channel_noise_array(noise, reader):
    if isinstance(noise, u.Quantity):
        noise = noise.to_value(reader.unit) if reader.unit is not None else noise.value
    noise = np.asarray(noise, dtype=float)
    nchan = reader.shape[0]
    if noise.ndim == 0:
        noise = np.full(nchan, float(noise))
    if noise.shape != (nchan,):
        raise InputDataError(
            f"noise has shape {noise.shape} but the cube has {nchan} channels; pass one noise "
            "rms per channel (deepfocus_radio.noise.channel_noise of the dirty cube) or a scalar"
        )
    if np.any(noise[np.isfinite(noise)] <= 0):
        raise InputDataError("noise must be positive (or NaN for a blank channel)")
    return noise


def _check_sizes(threshold, min_pixels, min_channels):
    if not np.isfinite(threshold) or threshold <= 0:
        raise ConfigError(f"threshold={threshold} must be a positive number of noise rms")
    if int(min_pixels) < 1 or int(min_channels) < 1:
        raise ConfigError(
            f"min_pixels={min_pixels} and min_channels={min_channels} must be at least 1"
        )


def _beam_fwhm_pixels(beam, wcs):
    """Geometric-mean beam FWHM in pixels, or None."""
    if beam is None:
        return None
    if not hasattr(beam, "major"):
        return float(beam)
    if wcs is None:
        raise ConfigError("beam= given as a radio_beam.Beam needs wcs= to express it in pixels")
    sx, sy = (s.to_value(u.deg) for s in wcs.celestial.proj_plane_pixel_scales())
    fwhm = np.sqrt(beam.major.to_value(u.deg) * beam.minor.to_value(u.deg))
    return float(fwhm / np.sqrt(sx * sy))


def _block_grid(shape, chunks):
    """List of (grid index, core slices) covering the cube."""
    if chunks is None:
        chunks = shape if np.prod(shape) <= WHOLE_CUBE_VOXELS else DEFAULT_CHUNKS
    sizes = np.atleast_1d(chunks)
    if sizes.size not in (1, 3) or np.any(sizes < 1):
        raise ConfigError(f"chunks={chunks} must be one positive int or three (chan, y, x)")
    chunks = tuple(int(c) for c in np.broadcast_to(sizes, (3,)))
    starts = [range(0, n, c) for n, c in zip(shape, chunks)]
    grid = []
    for iz, z0 in enumerate(starts[0]):
        for iy, y0 in enumerate(starts[1]):
            for ix, x0 in enumerate(starts[2]):
                core = tuple(slice(s, min(s + c, n))
                             for s, c, n in zip((z0, y0, x0), chunks, shape))
                grid.append(((iz, iy, ix), core))
    return grid


def _search(reader, *, signs, kernels, levels, blocks, min_pixels, min_channels, progress):
    """Detection masks block by block (one per sign, from the same smoothed data, as
    smoothing is linear), linked into objects and filtered by size."""
    from tqdm.auto import tqdm

    halo = _smoothing.kernel_halo(kernels)
    linkers = {sign: BlockLinker() for sign in signs}
    for index, core in tqdm(blocks, desc="detect", disable=not progress or len(blocks) < 2):
        outer = tuple(slice(max(0, c.start - h), min(n, c.stop + h))
                      for c, h, n in zip(core, halo, reader.shape))
        inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
        block = reader.read(outer)
        finite = np.isfinite(block)
        data = np.where(finite, block, 0.0).astype(np.float32)
        masks = {sign: np.zeros(block.shape, dtype=bool) for sign in signs}
        for kernel, level in zip(kernels, levels):
            smoothed = _smoothing.smooth(data, kernel)
            for sign in signs:
                masks[sign] |= sign * smoothed > level[outer[0], None, None]
        for sign in signs:
            linkers[sign].add_block(index, core, (masks[sign] & finite)[inner])
    return {sign: [seg for seg in linker.segments()
                   if seg.n_pixels >= min_pixels and seg.n_channels >= min_channels]
            for sign, linker in linkers.items()}


def _levels(kernels, noise, threshold, noise_reader, beam_pix):
    """Per-kernel, per-channel threshold in data units (inf on blank channels)."""
    ratios = _smoothing.noise_ratios(kernels, noise_reader=noise_reader, beam_fwhm_pix=beam_pix)
    clean_noise = np.nan_to_num(noise, nan=0.0)
    levels = []
    for kernel, ratio in zip(kernels, ratios):
        level = threshold * _smoothing.smoothed_noise(clean_noise, kernel, ratio)
        levels.append(np.where((level > 0) & np.isfinite(noise), level, np.inf))
    return levels


def _measured(reader, segments, noise, *, sign, split):
    """Deblend the objects of one sign and measure their SNR features."""
    if split is not None:
        segments = _deblend(reader, segments, sign=sign, **split)
    peak_snr, sum_snr = _snr_features(reader, segments, noise, sign=sign)
    return segments, peak_snr, sum_snr


def _deblend(reader, segments, *, noise, sign, min_distance, contrast, prominence):
    parts = []
    for seg in segments:
        data = sign * reader.read(seg.slices)
        parts.extend(deblend_segment(seg, data, noise[seg.slices[0]], min_distance=min_distance,
                                     contrast=contrast, prominence=prominence))
    return parts


def _snr_features(reader, segments, noise, *, sign):
    """Peak SNR and white-noise SNR of the sum, per segment."""
    peak, total = np.zeros(len(segments)), np.zeros(len(segments))
    for i, seg in enumerate(segments):
        snr = sign * reader.read(seg.slices) / noise[seg.slices[0], None, None]
        values = snr[seg.mask & np.isfinite(snr)]
        peak[i] = values.max() if values.size else 0.0
        total[i] = values.sum() / np.sqrt(max(values.size, 1))
    return peak, total
