"""Gaussian fits used by the characterizer (astropy.modeling) and beam deconvolution.

Fit warnings from astropy are caught: a failed fit is reported as ``None`` and the
catalogue gets NaN, never a crash.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.modeling import fitting, models
from astropy.utils.exceptions import AstropyUserWarning

from deepfocus_radio.conventions import FWHM_TO_SIGMA

__all__ = ["fit_gaussian_2d", "fit_gaussian_1d", "deconvolve_size"]

SIGMA_TO_FWHM = 1.0 / FWHM_TO_SIGMA
#: Intrinsic major axes below this fraction of the beam major axis count as unresolved.
UNRESOLVED_FRACTION = 1e-3


def _fit(model, *coords_and_values, weights=None):
    fitter = fitting.TRFLSQFitter(calc_uncertainties=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fitted = fitter(model, *coords_and_values, weights=weights, maxiter=200)
        except (ValueError, np.linalg.LinAlgError):
            return None, None
    cov = fitter.fit_info.get("param_cov")
    names = [n for n in fitted.param_names if not fitted.fixed[n]]
    if cov is None or np.shape(cov) != (len(names), len(names)):
        stds = {n: np.nan for n in names}
    else:
        stds = dict(zip(names, np.sqrt(np.abs(np.diag(cov)))))
    return fitted, stds


def fit_gaussian_2d(image, *, valid=None):
    """Fit an elliptical Gaussian to a 2D image.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Line-integrated brightness (any unit); NaN pixels are ignored.
    valid : ndarray of bool, optional
        Pixels to use (default: the finite ones).

    Returns
    -------
    dict or None
        ``x``, ``y`` (pix), ``major``, ``minor`` (FWHM, pix), ``angle`` (deg,
        counter-clockwise from +x, of the major axis) and their 1-sigma fit errors
        ``major_err``, ``minor_err``, ``angle_err``; None if the fit fails.
    """
    valid = np.isfinite(image) if valid is None else valid & np.isfinite(image)
    positive = np.where(valid, np.clip(image, 0, None), 0.0)
    total = positive.sum()
    if total <= 0 or valid.sum() < 7:
        return None
    yy, xx = np.indices(image.shape, dtype=float)
    x0, y0 = (positive * xx).sum() / total, (positive * yy).sum() / total
    var = max(((positive * ((xx - x0) ** 2 + (yy - y0) ** 2)).sum() / total) / 2, 0.5)
    start = models.Gaussian2D(amplitude=float(image[valid].max()), x_mean=x0, y_mean=y0,
                              x_stddev=np.sqrt(var), y_stddev=np.sqrt(var) * 0.9, theta=0.1)
    start.x_stddev.bounds = start.y_stddev.bounds = (0.2, 4 * max(image.shape))
    fitted, stds = _fit(start, xx[valid], yy[valid], image[valid])
    if fitted is None:
        return None
    sx, sy = abs(fitted.x_stddev.value), abs(fitted.y_stddev.value)
    angle = np.degrees(fitted.theta.value)
    major, minor, major_err, minor_err = sx, sy, stds["x_stddev"], stds["y_stddev"]
    if sy > sx:
        major, minor, major_err, minor_err = sy, sx, stds["y_stddev"], stds["x_stddev"]
        angle += 90.0
    return {
        "x": fitted.x_mean.value, "y": fitted.y_mean.value,
        "major": major * SIGMA_TO_FWHM, "minor": minor * SIGMA_TO_FWHM,
        "angle": float(np.mod(angle, 180.0)),
        "major_err": major_err * SIGMA_TO_FWHM, "minor_err": minor_err * SIGMA_TO_FWHM,
        "angle_err": float(np.degrees(stds["theta"])),
    }


def fit_gaussian_1d(spectrum):
    """Fit a Gaussian line profile to a spectrum sampled on channels.

    Parameters
    ----------
    spectrum : ndarray, shape (nchan,)
        Brightness summed over the source's footprint; NaN channels are ignored.

    Returns
    -------
    dict or None
        ``center`` (channel), ``fwhm`` (channels), ``fwhm_err``; None if the fit fails
        or the spectrum is too short.
    """
    channels = np.arange(spectrum.size, dtype=float)
    valid = np.isfinite(spectrum)
    positive = np.where(valid, np.clip(spectrum, 0, None), 0.0)
    if valid.sum() < 4 or positive.sum() <= 0:
        return None
    center = (positive * channels).sum() / positive.sum()
    sigma = np.sqrt(max((positive * (channels - center) ** 2).sum() / positive.sum(), 0.25))
    start = models.Gaussian1D(amplitude=float(spectrum[valid].max()), mean=center,
                              stddev=sigma)
    start.stddev.bounds = (0.1, 2.0 * spectrum.size)
    fitted, stds = _fit(start, channels[valid], spectrum[valid])
    if fitted is None or fitted.amplitude.value <= 0:
        return None
    return {"center": float(fitted.mean.value),
            "fwhm": float(abs(fitted.stddev.value) * SIGMA_TO_FWHM),
            "fwhm_err": float(stds["stddev"] * SIGMA_TO_FWHM)}


def deconvolve_size(major, minor, pa, beam):
    """Intrinsic size of a Gaussian fit, deconvolved from the beam with radio-beam.

    Parameters
    ----------
    major, minor : `~astropy.units.Quantity`
        Fitted FWHM axes (angle).
    pa : `~astropy.units.Quantity`
        Fitted PA of the major axis, east of north.
    beam : `radio_beam.Beam`
        The cube's beam.

    Returns
    -------
    tuple (Quantity, Quantity, Quantity or None)
        Intrinsic major and minor FWHM (arcsec) and PA (deg east of north, [0, 180)).
        Unresolved sources (intrinsic major axis below ``UNRESOLVED_FRACTION`` of the beam
        major axis) give (0, 0, None). Where radio-beam cannot deconvolve because the fit
        is narrower than the beam along one direction only (noise), the intrinsic size is
        the positive part of the difference of the fit and beam covariances: the minor axis
        is 0 and the major axis and PA are kept.
    """
    from radio_beam import Beam

    floor = UNRESOLVED_FRACTION * beam.major.to_value(u.arcsec)
    fitted = Beam(major=major, minor=minor, pa=pa)
    intrinsic = fitted.deconvolve(beam, failure_returns_pointlike=True)
    if intrinsic.major.to_value(u.arcsec) > floor:
        return (intrinsic.major.to(u.arcsec), intrinsic.minor.to(u.arcsec),
                np.mod(intrinsic.pa.to(u.deg), 180 * u.deg))
    difference = _sky_covariance(fitted) - _sky_covariance(beam)
    values, vectors = np.linalg.eigh(difference)
    if values[-1] <= floor**2:
        return 0.0 * u.arcsec, 0.0 * u.arcsec, None
    east, north = vectors[:, -1]
    pa_deg = np.mod(np.degrees(np.arctan2(east, north)), 180.0)
    return np.sqrt(values[-1]) * u.arcsec, 0.0 * u.arcsec, pa_deg * u.deg


def _sky_covariance(beam):
    """FWHM**2 'covariance' (arcsec**2) of an elliptical Gaussian in (east, north)."""
    theta = beam.pa.to_value(u.rad)
    along = np.array([np.sin(theta), np.cos(theta)])
    across = np.array([along[1], -along[0]])
    return (beam.major.to_value(u.arcsec) ** 2 * np.outer(along, along)
            + beam.minor.to_value(u.arcsec) ** 2 * np.outer(across, across))
