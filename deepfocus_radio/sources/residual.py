"""The dirty cube with a catalogue's sources removed: each source's model (an elliptical
Gaussian with a Gaussian line, as :func:`~deepfocus_radio.sources.psf_fit.refine_with_psf`
fits it) convolved with the PSF and subtracted.

What is left is the noise and the sources the catalogue lacks. A faint source a beam or
two from a bright one is part of the bright one's island in the first search (its
emission and sidelobes hold the pixels between them above the threshold, and a 3-sigma
bump on a 40-sigma slope is no saddle for the deblender); in the residual it stands alone.
:func:`~deepfocus_radio.sources.find_sources` searches it for the candidates of
``dirty_candidates``.
"""

import numpy as np

from deepfocus_radio.conventions import FWHM_TO_SIGMA
from deepfocus_radio.exceptions import InputDataError
from deepfocus_radio.sources._arrays import CubeReader
from deepfocus_radio.sources.characterize import _unit_scale
from deepfocus_radio.sources.psf_fit import (NEIGHBOUR_REACH, PsfReader, _progress,
                                             _SourceModel, emission_reach, source_image)

__all__ = ["residual_cube"]

#: Channels of a line subtracted: where its profile exceeds this fraction of its peak.
LINE_FLOOR = 1e-4
#: Most values of one subtracted block (channels x pixels): bounds the memory per source.
BLOCK_VALUES = 2**24


def residual_cube(dirty, table, psf, *, geometry, noise, store=None, progress=False):
    """The dirty cube minus the PSF-convolved models of the catalogue's sources.

    Parameters
    ----------
    dirty : SpectralCube
        The dirty cube (chan, y, x), in a unit of flux density per beam. Never modified.
    table : `~astropy.table.QTable`
        A catalogue refined by :func:`~deepfocus_radio.sources.psf_fit.refine_with_psf`:
        the rows with a finite ``psf_snr`` and a positive flux are subtracted (the others
        were not fitted to the dirty cube, so their parameters do not model it).
    psf : ndarray, SpectralCube or `~deepfocus_radio.sources.psf_fit.PsfReader`
        The PSF, best over twice the image (see ``find_sources``).
    geometry : `~deepfocus_radio.sources.characterize.SkyGeometry`
        Pixel scale, beam and spectral axis of ``dirty``.
    noise : array-like, shape (nchan,)
        Noise rms of each channel of ``dirty``, in its unit: a source is subtracted
        within ``NEIGHBOUR_REACH`` beams of its centre plus its size, and farther where
        its sidelobes may bring ``SIDELOBE_FLOOR`` of this noise (the rule of the fits).
    store : path-like, optional
        A zarr store (which must not exist) to write the residual to, for cubes larger
        than memory; default: in memory.
    progress : bool, optional
        Progress bar over the sources.

    Returns
    -------
    SpectralCube
        The residual, with the unit, WCS and beam of ``dirty``.
    """
    reader = CubeReader(dirty)
    if reader.ndim != 3:
        raise InputDataError("a residual needs a (chan, y, x) cube with the PSF's channels")
    nchan, ny, nx = reader.shape
    psf = psf if isinstance(psf, PsfReader) else PsfReader(psf, nchan)
    to_jy, _ = _unit_scale(reader)
    noise = np.asarray(noise, dtype=float).reshape(-1) * to_jy
    if noise.size != nchan:
        raise InputDataError(f"noise has {noise.size} values for {nchan} channels")
    fitted = np.isfinite(np.asarray(table["psf_snr"], dtype=float)) if len(table) else []
    models = [_SourceModel.from_row(row, geometry, nchan)
              for row, ok in zip(table, fitted) if ok]
    models = [model for model in models if model.flux > 0]
    reach = emission_reach(psf, models, noise)
    values, cube = _writable_copy(dirty, store, progress)
    for model, far in zip(_progress(models, progress, "residual"), reach):
        size = max(model.sigma_major, model.sigma_minor) / FWHM_TO_SIGMA
        radius = int(np.ceil(max(NEIGHBOUR_REACH * geometry.beam_fwhm_pix + size, far)))
        xc, yc = int(round(model.x)), int(round(model.y))
        box = (max(yc - radius, 0), min(yc + radius + 1, ny),
               max(xc - radius, 0), min(xc + radius + 1, nx))
        if box[1] <= box[0] or box[3] <= box[2]:
            continue
        spectrum = model.spectrum(0, nchan)
        channels = np.flatnonzero(model.profile > LINE_FLOOR * model.profile.max())
        step = max(1, BLOCK_VALUES // ((box[1] - box[0]) * (box[3] - box[2])))
        for first in range(channels.min(), channels.max() + 1, step):
            last = min(first + step, channels.max() + 1)
            image = source_image(psf, model, np.diag(spectrum[first:last]), first, box)
            where = (slice(first, last), slice(box[0], box[1]), slice(box[2], box[3]))
            values[where] = values[where] - (image / to_jy).astype(values.dtype)
    return cube()


def _writable_copy(dirty, store, progress):
    """A float32 copy of the dirty cube's values to subtract from, and a function that
    returns the result as a SpectralCube."""
    from spectral_cube import SpectralCube

    unit = dirty.unit
    if store is None:
        values = CubeReader(dirty).read_all()
        return values, lambda: SpectralCube(values * unit, dirty.wcs, beam=dirty.beam,
                                            header=dirty.header, meta=dict(dirty.meta))
    import zarr

    from deepfocus_radio.io import open_cube
    from deepfocus_radio.io.zarr_store import VARIABLE, cube_to_zarr

    cube_to_zarr(dirty, store, progress=progress)
    return zarr.open_group(store, mode="r+")[VARIABLE], lambda: open_cube(store)
