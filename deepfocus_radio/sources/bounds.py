"""Cramer-Rao bounds: the best precision any unbiased measurement of a source can reach.

A source is an elliptical Gaussian on the sky with a known line profile, convolved with
each channel's PSF and observed in the dirty cube's own noise, which is stationary and
correlated over the beam (its power spectrum follows the uv weights). The Fisher
information of the six parameters (flux, centre, the two axes and the angle) is the sum
over channels and Fourier modes of the model's derivatives weighted by the inverse noise
power; its inverse bounds the covariance of any unbiased estimate. Positions and angle
are, by symmetry, nearly uncorrelated with flux and size, so their bounds hold for
estimators with priors on the size too.

The bound assumes the line (centre, width) and the PSF are known, no neighbours and no
continuum: it is the ceiling of a fit to an isolated source. At low signal-to-noise real
estimators do worse than the bound (their errors are no longer Gaussian).
"""

import numpy as np
from scipy import stats

from deepfocus_radio.sources.psf_fit import gaussian_image

__all__ = ["noise_power_spectrum", "cramer_rao_bound", "PARAMETERS"]

#: Order of the parameters in :func:`cramer_rao_bound`'s covariance.
PARAMETERS = ("flux", "x", "y", "sigma_major", "sigma_minor", "angle")


def noise_power_spectrum(cube):
    """Noise power per Fourier mode of the planes of a dirty cube.

    The per-mode median over channels of ``|FFT(plane)|**2 / npix``, divided by the
    median of its distribution over its mean (``ln 2`` for a complex mode; 0.455, the
    chi-square's with one degree of freedom, for the modes of a real image that are real:
    zero and Nyquist frequencies): sources that fill a few channels do not bias it.

    Parameters
    ----------
    cube : array-like, shape (nchan, ny, nx)
        Dirty cube (NaN-free), e.g. Jy/beam.

    Returns
    -------
    ndarray, shape (ny, nx)
        ``E|FFT(noise)|**2 / npix`` per mode (numpy's unnormalized FFT layout), in the
        cube's unit squared: white noise of rms ``s`` gives ``s**2`` everywhere.
    """
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 3 or not np.all(np.isfinite(cube)):
        raise ValueError("noise_power_spectrum needs a NaN-free (chan, y, x) cube")
    ny, nx = cube.shape[1:]
    power = np.median(np.abs(np.fft.fft2(cube)) ** 2, axis=0) / (ny * nx)
    real_y = np.isin(np.arange(ny), [0, ny // 2] if ny % 2 == 0 else [0])
    real_x = np.isin(np.arange(nx), [0, nx // 2] if nx % 2 == 0 else [0])
    ratio = np.where(real_y[:, None] & real_x[None, :], stats.chi2(1).median(), np.log(2.0))
    return power / ratio


def cramer_rao_bound(flux, sigma_major, sigma_minor, angle, profile, psf, noise_power, *,
                     free=PARAMETERS, min_power=1e-9, offset=(0.0, 0.0), step=1e-4):
    """Covariance bound of the parameters ``free`` of one source, the others known.

    Parameters
    ----------
    flux : float
        Total flux of the source summed over pixels and channels of the sky model (e.g.
        Jy), so that ``flux * profile[c] * (G conv psf[c])`` is its dirty plane ``c``.
    sigma_major, sigma_minor : float
        Gaussian sigmas of the axes, pixels (``sigma_minor > 0``).
    angle : float
        Major axis counter-clockwise from +x, rad.
    profile : array-like, shape (nchan,)
        Fraction of the line in each channel.
    psf : array-like, shape (nchan, ny, nx) or (ny, nx)
        PSF of each channel (or one for all), peak at ``(ny // 2, nx // 2)``.
    noise_power : array-like, shape (ny, nx) or (nchan, ny, nx)
        Noise power per Fourier mode (:func:`noise_power_spectrum`), per channel or one
        for all; modes with no power (outside the uv coverage) carry no information.
    free : sequence of str, optional
        The parameters measured (names of :data:`PARAMETERS`); the others are known
        exactly (e.g. ``("flux", "x", "y")``: the bound of a flux when the shape is
        known).
    min_power : float, optional
        Modes whose noise power is below this fraction of the largest carry no
        information (outside the uv coverage there is neither signal nor noise). Where
        ``psf`` is cropped from a larger one (a simulator's, or CASA's image-sized
        ``.psf``), the crop leaks a little signal into sparsely sampled modes whose noise
        is low, so the bound is if anything optimistic there; a larger ``min_power``
        drops those modes (and the real information in them).
    offset : (float, float), optional
        Sub-pixel offset ``(dx, dy)`` of the centre from the grid's centre, pixels.
    step : float, optional
        Relative step of the central differences.

    Returns
    -------
    ndarray, shape (len(free), len(free))
        Inverse Fisher matrix of ``free``, in their order and units (flux as given,
        pixels, rad). The bound of the angle of a circular source is infinite in effect
        (its Fisher information is zero; a tiny ridge keeps the inverse finite).

    Raises
    ------
    ValueError
        For a name not in :data:`PARAMETERS`, a flux or axis that is not positive, or a
        profile whose length is not the PSF's number of channels.
    """
    unknown = set(free) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}: choose from {PARAMETERS}")
    if not (flux > 0 and sigma_major > 0 and sigma_minor > 0):
        raise ValueError(f"flux ({flux}) and axes ({sigma_major}, {sigma_minor} pixels) must "
                         "be positive: a point source has a small but finite sigma")
    keep = [PARAMETERS.index(name) for name in free]
    psf = np.asarray(psf, dtype=float)
    profile = np.atleast_1d(np.asarray(profile, dtype=float))
    if psf.ndim == 3 and psf.shape[0] != profile.size:
        raise ValueError(f"the line profile has {profile.size} channels, the PSF {psf.shape[0]}")
    psf = np.broadcast_to(psf, (profile.size,) + psf.shape[-2:])
    ny, nx = psf.shape[-2:]
    noise_power = np.broadcast_to(np.asarray(noise_power, dtype=float), psf.shape)
    params = np.array([flux, nx // 2 + offset[0], ny // 2 + offset[1], sigma_major,
                       sigma_minor, angle], dtype=float)

    def spectrum(p):
        return p[0] * np.fft.fft2(gaussian_image((ny, nx), *p[1:]))

    derivatives = [spectrum(params) / params[0]]
    for index in range(1, 6):
        h = np.zeros(6)
        h[index] = step * max(abs(params[index]), 1.0)
        derivatives.append((spectrum(params + h) - spectrum(params - h)) / (2 * h[index]))
    derivatives = np.array(derivatives)
    psf_hat = np.fft.fft2(np.fft.ifftshift(psf, axes=(-2, -1)))
    fisher = np.zeros((6, 6))
    for channel in np.flatnonzero(profile > 0):
        power = noise_power[channel]
        informative = power > min_power * power.max()
        terms = profile[channel] * derivatives[:, informative] * psf_hat[channel][informative]
        fisher += np.real(terms.conj() @ (terms / power[informative]).T) / (nx * ny)
    fisher = fisher[np.ix_(keep, keep)]
    ridge = 1e-12 * np.max(np.diag(fisher)) * np.eye(len(keep))
    return np.linalg.inv(fisher + ridge)
