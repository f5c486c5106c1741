"""Characterization of detected sources: positions, fluxes, sizes, line widths, SNR.

For each detection, in a cutout padded by two beams on the sky and six channels:

- the mask is optionally *dilated* (one voxel at a time, at most two beams, never into
  other sources or blanked voxels) while each new shell adds more than 0.5% of the flux
  plus the noise of the shell's sum (in the searched cube: ``searched_noise``), so that
  a mask cut at a few sigma does not miss the source's wings, and noise alone does not
  grow it (stopping on the shell's own sign would bias fluxes up);
- ``peak`` is the maximum of the searched cube in the (undilated) mask, ``snr`` is
  ``peak`` over the dirty-cube noise at the peak's channel;
- ``x, y, z`` is the brightness-weighted centroid of the positive voxels of the mask,
  ``ra, dec, freq`` its world coordinates;
- ``flux`` is the sum of the mask in Jy/beam divided by the beam area in pixels
  (radio-beam), times the channel velocity width ``c dnu / nu`` at the source's observed
  frequency, in Jy km/s;
- ``fwhm_major, fwhm_minor, pa`` come from an elliptical Gaussian fit (astropy.modeling)
  to the line-integrated image over the mask's channels, deconvolved from the beam with
  radio-beam. Unresolved sources (intrinsic major axis below 0.1% of the beam's) get
  sizes 0 and PA NaN; a fit narrower than the beam along its minor axis only keeps its
  deconvolved major axis and PA, with minor axis 0;
- ``line_fwhm`` comes from a Gaussian fit to the spectrum summed over the mask's
  footprint, times the channel velocity width.

Uncertainties (1 sigma, approximate): ``flux_err`` adds the dirty-cube noise over the
mask channel by channel, for noise correlated over ``noise_correlation_area`` pixels (the
beam area by default: the autocorrelation of interferometric image noise is the beam):
``var = sum_c sigma_c**2 * n_c * min(n_c, A)``, converted like the flux, and in
quadrature ``flux_fractional_error * |flux|``, the searched cube's own error (a
network's, calibrated on simulations; 0 by default). ``peak_err`` is the
noise at the peak; ``x_err = y_err = FWHM / (2 SNR)`` (pixels, FWHM of the fit or the
beam); size, PA and line-width errors are the fits' covariance errors, the 2D ones
inflated by ``sqrt(A)`` for the correlated noise.
"""

import warnings

import numpy as np
from astropy import units as u
from scipy import ndimage

from deepfocus_radio.conventions import (beam_area_pixels, channel_width_kms, east_is_left,
                                         pixel_angle_to_pa)
from deepfocus_radio.exceptions import ConfigError, InputDataError, NoSourcesFoundWarning
from deepfocus_radio.sources._arrays import CubeReader
from deepfocus_radio.sources._fitting import deconvolve_size, fit_gaussian_1d, fit_gaussian_2d
from deepfocus_radio.sources.catalog import catalog_from_rows

__all__ = ["characterize_sources", "SkyGeometry"]

#: Relative flux growth below which mask dilation stops.
DILATION_TOLERANCE = 0.005


class SkyGeometry:
    """Pixel scale, beam and spectral axis of a cube, for converting measurements.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        WCS of the cube (celestial, plus spectral for cubes).
    beam : `radio_beam.Beam`
        The cube's (common) beam.
    nchan : int
        Number of channels (1 for an image).
    spectral_axis : `~astropy.units.Quantity`, optional
        Frequency of each channel, overriding the WCS.

    Raises
    ------
    InputDataError
        For non-square pixels or a spectral axis of the wrong length or unit.
    """

    def __init__(self, wcs, beam, nchan, *, spectral_axis=None):
        self.wcs = wcs
        self.beam = beam
        scales = wcs.celestial.proj_plane_pixel_scales()
        sx, sy = (s.to_value(u.arcsec) for s in scales)
        if not np.isclose(sx, sy, rtol=1e-3):
            raise InputDataError(
                f"pixels are not square ({sx:.4g} x {sy:.4g} arcsec); regrid the cube to "
                "square pixels (e.g. spectral-cube's reproject) before characterizing"
            )
        self.pixel_scale = sx * u.arcsec
        self.beam_area = beam_area_pixels(beam, self.pixel_scale)
        self.beam_fwhm_pix = float(np.sqrt(beam.major.to_value(u.arcsec)
                                           * beam.minor.to_value(u.arcsec)) / sx)
        self.east_left = east_is_left(wcs)
        self.frequencies = self._channel_frequencies(nchan, spectral_axis)

    def _channel_frequencies(self, nchan, spectral_axis):
        if spectral_axis is not None:
            freqs = u.Quantity(spectral_axis)
            if freqs.shape != (nchan,) or not freqs.unit.is_equivalent(u.Hz):
                raise InputDataError(
                    f"spectral_axis must hold {nchan} frequencies (unit Hz), got shape "
                    f"{freqs.shape} in {freqs.unit}"
                )
            return freqs.to_value(u.Hz)
        if not self.wcs.has_spectral or nchan < 2:
            return None
        coords = self.wcs.spectral.pixel_to_world(np.arange(nchan))
        return u.Quantity(coords.to(u.Hz, equivalencies=u.spectral())).value

    def sky(self, x, y):
        """ICRS (or the cube's frame) longitude and latitude of a pixel, deg."""
        coord = self.wcs.celestial.pixel_to_world(x, y)
        return coord.spherical.lon.deg, coord.spherical.lat.deg

    def frequency(self, z):
        """Observed frequency at (fractional) channel ``z``, Hz (NaN without spectral axis)."""
        if self.frequencies is None or not np.isfinite(z):
            return np.nan
        return float(np.interp(z, np.arange(self.frequencies.size), self.frequencies))

    def velocity_width(self, z):
        """Channel velocity width ``c dnu / nu`` at channel ``z``, km/s."""
        if self.frequencies is None or not np.isfinite(z):
            return np.nan
        widths = np.abs(np.gradient(self.frequencies))
        dnu = np.interp(z, np.arange(widths.size), widths) * u.Hz
        return float(channel_width_kms(dnu, self.frequency(z) * u.Hz).value)

    def pa(self, pixel_angle):
        """PA east of north (deg) of a direction given counter-clockwise from +x."""
        return float(pixel_angle_to_pa(pixel_angle, east_left=self.east_left))


def characterize_sources(cube, detections, *, noise, wcs=None, beam=None, spectral_axis=None,
                         dilate=True, searched_noise=None, noise_correlation_area=None,
                         flux_fractional_error=0.0, provenance=None, progress=False):
    """Measure each detection and return the source catalogue.

    Parameters
    ----------
    cube : ndarray, dask array or SpectralCube, (chan, y, x) or (y, x)
        The searched (deconvolved) cube, Jy/beam (a bare array is taken to be Jy/beam).
    detections : Detections
        From :func:`detect_sources` on the same cube.
    noise : float or array-like of shape (nchan,)
        Noise rms of the dirty cube per channel, in the cube's unit.
    wcs : `~astropy.wcs.WCS`, optional
        The cube's WCS (taken from a SpectralCube).
    beam : `radio_beam.Beam`, optional
        The cube's common beam (taken from a SpectralCube).
    spectral_axis : `~astropy.units.Quantity`, optional
        Channel frequencies overriding the WCS's spectral axis.
    dilate : bool, optional
        Grow masks while the flux grows (see the module notes).
    searched_noise : float or array-like of shape (nchan,), optional
        Noise rms per channel of the searched cube itself, only to stop mask dilation once
        a shell adds no more than its noise (default: ``noise``). For a network output,
        whose noise is lower than the dirty cube's, pass its own robust noise.
    noise_correlation_area : float, optional
        Pixels over which the noise is correlated, for ``flux_err`` (default: beam area).
    flux_fractional_error : float, optional
        Error of the searched cube's fluxes as a fraction of the flux (e.g. a network's,
        from its model card's ``calibration``), added in quadrature to ``flux_err``.
    provenance : dict, optional
        Extra metadata for ``table.meta`` (model name, sha256...).
    progress : bool, optional
        Progress bar over sources.

    Returns
    -------
    `~astropy.table.QTable`
        The catalogue (:data:`~deepfocus_radio.sources.catalog.CATALOG_COLUMNS`, errors,
        reliability). Images get NaN line columns and ``flux`` in the image unit times
        beam (Jy for Jy/beam). Empty, with all columns, when nothing was detected.

    Warns
    -----
    NoSourcesFoundWarning
        When ``detections`` is empty.

    Raises
    ------
    ConfigError
        When no WCS or beam is available.
    InputDataError
        For a brightness unit that is not a surface brightness per beam, non-square
        pixels, or detections made on a cube of another shape.
    """
    reader = CubeReader(cube)
    wcs = wcs if wcs is not None else reader.wcs
    beam = beam if beam is not None else reader.beam
    if wcs is None or beam is None:
        raise ConfigError(
            "characterize_sources needs wcs= and beam= (a radio_beam.Beam) unless the cube "
            "is a SpectralCube that carries them"
        )
    if tuple(detections.shape) != tuple(cube.shape):
        raise InputDataError(
            f"the detections were made on a cube of shape {detections.shape}, not "
            f"{tuple(cube.shape)}; characterize the cube that was searched"
        )
    scale, units = _unit_scale(reader)
    geometry = SkyGeometry(wcs, beam, reader.shape[0], spectral_axis=spectral_axis)
    noise = _per_channel(noise, reader) * scale
    searched_noise = noise if searched_noise is None else _per_channel(searched_noise,
                                                                       reader) * scale
    if not (np.isfinite(flux_fractional_error) and flux_fractional_error >= 0):
        raise ConfigError(f"flux_fractional_error={flux_fractional_error!r} must be a "
                          "non-negative fraction")
    meas = _Measurer(reader, detections, geometry, (noise, searched_noise), scale, dilate,
                     noise_correlation_area or geometry.beam_area, float(flux_fractional_error))
    rows = [meas.measure(i) for i in _progress(range(len(detections)), progress)]
    meta = _catalog_meta(geometry, detections, provenance)
    meta["flux_fractional_error"] = float(flux_fractional_error)
    table = catalog_from_rows(rows, meta=meta, units=units)
    if not rows:
        warnings.warn("no sources were detected; the catalogue is empty", NoSourcesFoundWarning,
                      stacklevel=2)
    return table


def _per_channel(noise, reader):
    return np.broadcast_to(np.asarray(u.Quantity(noise).value, float), (reader.shape[0],))


def _progress(iterable, enabled):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="characterize", disable=not enabled)


def _unit_scale(reader):
    """Factor to the catalogue's brightness unit, and the unit overrides for images.

    Cubes must be in a flux density per beam (converted to Jy/beam). Images may also be
    line-integrated maps (Jy/beam km/s), whose ``flux`` is then in Jy km/s; a continuum
    image's ``flux`` is in Jy.
    """
    unit = u.Unit(reader.unit) if reader.unit is not None else u.Jy / u.beam
    targets = [u.Jy / u.beam] + ([u.Jy / u.beam * u.km / u.s] if reader.ndim == 2 else [])
    for target in targets:
        if unit.is_equivalent(target):
            units = {} if reader.ndim == 3 else {"flux": target * u.beam, "peak": target}
            return float(unit.to(target)), units
    what = "cube" if reader.ndim == 3 else "image"
    raise InputDataError(
        f"the {what}'s brightness unit is {unit}, not a flux density per beam; convert it "
        "to Jy/beam first (e.g. cube.to(u.Jy / u.beam))"
    )


def _catalog_meta(geometry, detections, provenance):
    beam = geometry.beam
    meta = {
        "beam_major_arcsec": float(beam.major.to_value(u.arcsec)),
        "beam_minor_arcsec": float(beam.minor.to_value(u.arcsec)),
        "beam_pa_deg": float(beam.pa.to_value(u.deg)),
        "pixel_scale_arcsec": float(geometry.pixel_scale.to_value(u.arcsec)),
        "east_left": bool(geometry.east_left),
        "threshold_sigma": float(detections.threshold),
        "n_negative_detections": int(detections.n_negative),
    }
    if geometry.frequencies is not None:
        widths = np.abs(np.diff(geometry.frequencies))
        meta["channel_width_hz"] = float(np.median(widths))
        meta["channel_width_kms"] = float(np.median(
            channel_width_kms(widths * u.Hz, geometry.frequencies[1:] * u.Hz).value))
    meta.update(provenance or {})
    return meta


class _Measurer:
    """Measure one detection at a time in a padded cutout."""

    def __init__(self, reader, detections, geometry, noise, scale, dilate, corr_area,
                 flux_fraction):
        self.reader, self.detections, self.geo = reader, detections, geometry
        self.noise, self.searched_noise = noise
        self.scale, self.dilate, self.corr_area = scale, dilate, corr_area
        self.flux_fraction = flux_fraction
        pad_xy = int(np.ceil(2 * geometry.beam_fwhm_pix)) + 2
        self.pad = (0 if reader.ndim == 2 else 6, pad_xy, pad_xy)
        boxes = [seg.slices for seg in detections.segments]
        self._lo = np.array([[s.start for s in box] for box in boxes], dtype=int).reshape(-1, 3)
        self._hi = np.array([[s.stop for s in box] for box in boxes], dtype=int).reshape(-1, 3)

    def _cutout(self, index):
        seg = self.detections.segments[index]
        box = tuple(slice(max(0, s.start - p), min(n, s.stop + p))
                    for s, p, n in zip(seg.slices, self.pad, self.reader.shape))
        data = self.reader.read(box).astype(np.float64) * self.scale
        own = np.zeros(data.shape, dtype=bool)
        own[tuple(slice(s.start - b.start, s.stop - b.start)
                  for s, b in zip(seg.slices, box))] = seg.mask
        others = np.zeros(data.shape, dtype=bool)
        box_lo = np.array([b.start for b in box])
        box_hi = np.array([b.stop for b in box])
        near = np.nonzero(np.all((self._lo < box_hi) & (self._hi > box_lo), axis=1))[0]
        for j in near[near != index]:
            other = self.detections.segments[j]
            inter = [slice(max(o.start, b.start), min(o.stop, b.stop))
                     for o, b in zip(other.slices, box)]
            src = tuple(slice(s.start - o.start, s.stop - o.start)
                        for s, o in zip(inter, other.slices))
            dst = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box))
            others[dst] |= other.mask[src]
        return box, data, own, others

    def measure(self, index):
        box, data, own, others = self._cutout(index)
        origin = np.array([b.start for b in box], dtype=float)
        sigma = np.nan_to_num(self.noise[box[0]], nan=0.0)
        stop_sigma = np.nan_to_num(self.searched_noise[box[0]], nan=0.0)
        mask = self._dilate(data, own, others, stop_sigma) if self.dilate else own
        peak_index = np.unravel_index(np.argmax(np.where(own, data, -np.inf)), data.shape)
        peak = float(data[peak_index])
        sigma_peak = float(self.noise[box[0].start + peak_index[0]])
        snr = peak / sigma_peak
        z, y, x = self._centroid(data, mask, peak_index) + origin
        row = {"id": index + 1, "x": x, "y": y, "peak": peak, "snr": snr,
               "peak_err": sigma_peak, "reliability": self.detections.reliability[index]}
        row["ra"], row["dec"] = self.geo.sky(x, y)
        if self.reader.ndim == 3:
            row.update(z=z, freq=self.geo.frequency(z))
        dv = self.geo.velocity_width(z) if self.reader.ndim == 3 else 1.0
        row.update(self._flux(data, mask, sigma, dv))
        row.update(self._size(data, mask, others, snr))
        if self.reader.ndim == 3:
            row.update(self._line(data, mask, others, dv))
        return row

    def _dilate(self, data, own, others, sigma):
        allowed = ~others & np.isfinite(data)
        mask = own.copy()
        flux = np.nansum(data[mask])
        structure = ndimage.generate_binary_structure(3, 1)
        if self.reader.ndim == 2:
            structure[0] = structure[2] = False
        for _ in range(int(np.ceil(2 * self.geo.beam_fwhm_pix)) + 1):
            grown = ndimage.binary_dilation(mask, structure) & allowed
            shell = grown & ~mask
            added = np.nansum(data[shell])
            if flux <= 0 or added <= DILATION_TOLERANCE * flux + self._sum_noise(shell, sigma):
                break
            mask, flux = grown, flux + added
        return mask

    def _sum_noise(self, mask, sigma):
        """Noise rms of the sum of the brightness over ``mask`` (see the module notes)."""
        n_c = mask.sum(axis=(1, 2)).astype(float)
        return float(np.sqrt(np.sum(sigma**2 * n_c * np.minimum(n_c, self.corr_area))))

    @staticmethod
    def _centroid(data, mask, peak_index):
        weights = np.where(mask & (data > 0), data, 0.0)
        total = weights.sum()
        if total <= 0:
            return np.array(peak_index, dtype=float)
        grids = np.indices(data.shape)
        return np.array([(g * weights).sum() / total for g in grids])

    def _flux(self, data, mask, sigma, dv):
        total = np.nansum(np.where(mask, data, 0.0))
        area = self.geo.beam_area
        flux = total / area * dv
        noise_err = self._sum_noise(mask, sigma) / area * dv
        return {"flux": flux, "flux_err": float(np.hypot(noise_err, self.flux_fraction * flux))}

    def _size(self, data, mask, others, snr):
        channels = mask.any(axis=(1, 2))
        image = np.where(others, np.nan, data)[channels].sum(axis=0)
        image[others[channels].any(axis=0)] = np.nan
        fit = fit_gaussian_2d(image)
        beam_fwhm = self.geo.beam_fwhm_pix
        fwhm_pix = np.sqrt(fit["major"] * fit["minor"]) if fit else beam_fwhm
        out = {"x_err": fwhm_pix / (2 * snr), "y_err": fwhm_pix / (2 * snr)}
        if fit is None:
            return out
        scale = self.geo.pixel_scale.to_value(u.arcsec)
        pa = self.geo.pa(fit["angle"]) * u.deg
        major, minor, pa_int = deconvolve_size(fit["major"] * scale * u.arcsec,
                                               fit["minor"] * scale * u.arcsec, pa, self.geo.beam)
        inflate = np.sqrt(self.corr_area) * scale
        major_v, minor_v = major.to_value(u.arcsec), minor.to_value(u.arcsec)
        out.update(fwhm_major=major_v, fwhm_minor=minor_v)
        if pa_int is not None:
            out["pa"] = float(pa_int.to_value(u.deg))
            out["pa_err"] = fit["angle_err"] * np.sqrt(self.corr_area)
            out["fwhm_major_err"] = _intrinsic_error(fit["major"] * scale, major_v,
                                                     inflate * fit["major_err"])
            out["fwhm_minor_err"] = _intrinsic_error(fit["minor"] * scale, minor_v,
                                                     inflate * fit["minor_err"])
        return out

    def _line(self, data, mask, others, dv):
        footprint = mask.any(axis=0)
        spectrum = np.where(others | ~np.isfinite(data), 0.0, data)[:, footprint].sum(axis=1)
        fit = fit_gaussian_1d(spectrum)
        if fit is None:
            return {}
        return {"line_fwhm": fit["fwhm"] * dv, "line_fwhm_err": fit["fwhm_err"] * dv}


def _intrinsic_error(observed, intrinsic, observed_err):
    """Error of ``sqrt(observed**2 - beam**2)`` from the error of ``observed``.

    ``observed * err / intrinsic``, bounded near zero size by its value at
    ``intrinsic = sqrt(observed * err)`` (where the linear propagation breaks down).
    """
    floor = np.sqrt(max(observed * observed_err, 0.0))
    return observed * observed_err / max(intrinsic, floor) if floor > 0 else np.nan
