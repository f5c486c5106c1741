"""Classical baseline: photutils segmentation of the moment-0 map of a dirty cube.

What many users would do without us: collapse the cube over frequency, find sources in
the map with photutils (threshold + connected pixels + deblending), measure them with
photutils' :class:`~photutils.segmentation.SourceCatalog`, and read each source's line
from the spectrum summed over its segment.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.convolution import convolve_fft
from radio_beam import Beam

from deepfocus_radio.conventions import (FWHM_TO_SIGMA, beam_area_pixels, channel_width_kms,
                                         east_is_left, pixel_angle_to_pa)
from deepfocus_radio.noise import channel_noise, robust_std

__all__ = ["moment0_catalog"]


def moment0_catalog(cube, *, nsigma=4.0, npixels=None, deblend=True):
    """Find and measure sources on the moment-0 map of a cube with photutils.

    Parameters
    ----------
    cube : `~spectral_cube.SpectralCube`
        Cube in Jy/beam with a beam, (chan, y, x).
    nsigma : float, optional
        Detection threshold on the beam-smoothed moment-0 map, in units of its robust rms.
    npixels : int, optional
        Least number of connected pixels (default: half a beam area).
    deblend : bool, optional
        Deblend touching sources with photutils.

    Returns
    -------
    `~astropy.table.QTable`
        Catalogue in the DESIGN.md schema (empty when nothing is found).
    """
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    from deepfocus_radio.sources.catalog import catalog_from_rows

    data = np.asarray(cube.unitless_filled_data[:], dtype=np.float64)
    pixel = abs(cube.wcs.celestial.wcs.cdelt[1]) * u.deg
    beam_pix = beam_area_pixels(cube.beam, pixel)
    moment0 = np.nansum(data, axis=0)
    kernel = cube.beam.as_kernel(pixel)
    smoothed = convolve_fft(moment0, kernel, normalize_kernel=True)
    npixels = int(npixels or max(3, round(beam_pix / 2)))
    with warnings.catch_warnings():  # "nothing found" is an empty catalogue here
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segments = detect_sources(smoothed, nsigma * robust_std(smoothed), n_pixels=npixels)
    meta = {"model": "none (photutils segmentation of the moment-0 map)"}
    if segments is None:
        return catalog_from_rows([], meta=meta)
    if deblend and segments.n_labels > 1:
        segments = deblend_sources(smoothed, segments, n_pixels=npixels, progress_bar=False)
    table = SourceCatalog(moment0, segments)
    noise = channel_noise(data)
    rows = [_measure(cube, data, segments.data == label, source, noise, pixel, beam_pix)
            for label, source in zip(segments.labels, table)]
    for number, row in enumerate(rows, 1):
        row["id"] = number
    return catalog_from_rows(rows, meta=meta)


def _measure(cube, data, mask, source, noise, pixel, beam_pix):
    """Catalogue row of one segment (bare values in schema units)."""
    spectrum = np.nansum(data[:, mask], axis=1)
    z = float(np.argmax(spectrum))
    freq = cube.spectral_axis.to(u.Hz, equivalencies=u.spectral())
    dnu = abs(freq[1] - freq[0]) if len(freq) > 1 else np.nan * u.Hz
    dv = channel_width_kms(dnu, freq[int(z)]).value
    positive = np.clip(spectrum, 0, None)
    channels = np.arange(spectrum.size)
    centre = np.sum(channels * positive) / max(positive.sum(), 1e-30)
    sigma_z = np.sqrt(np.sum((channels - centre) ** 2 * positive) / max(positive.sum(), 1e-30))
    peak = float(np.nanmax(data[:, mask]))
    x, y = float(source.x_centroid), float(source.y_centroid)
    world = cube.wcs.celestial.pixel_to_world(x, y)
    major, minor, pa = _intrinsic_size(source, cube.beam, pixel, east_is_left(cube.wcs))
    return {"x": x, "y": y, "z": centre, "ra": world.spherical.lon.deg,
            "dec": world.spherical.lat.deg, "freq": float(np.interp(centre, channels, freq.value)),
            "peak": peak, "flux": float(source.segment_flux) / beam_pix * dv,
            "fwhm_major": major, "fwhm_minor": minor, "pa": pa,
            "line_fwhm": sigma_z / FWHM_TO_SIGMA * dv, "snr": peak / noise[int(z)]}


def _intrinsic_size(source, beam, pixel, east_left):
    """Beam-deconvolved FWHM (arcsec) and PA (deg, east of north) from image moments."""
    scale = pixel.to_value(u.arcsec) / FWHM_TO_SIGMA
    angle = float(source.orientation.to_value(u.deg))
    observed = Beam(major=float(source.semimajor_axis.value) * scale * u.arcsec,
                    minor=float(source.semiminor_axis.value) * scale * u.arcsec,
                    pa=pixel_angle_to_pa(angle, east_left=east_left) * u.deg)
    try:
        intrinsic = observed.deconvolve(beam, failure_returns_pointlike=True)
    except ValueError:
        return 0.0, 0.0, float(observed.pa.to_value(u.deg)) % 180.0
    return (intrinsic.major.to_value(u.arcsec), intrinsic.minor.to_value(u.arcsec),
            float(intrinsic.pa.to_value(u.deg)) % 180.0)
