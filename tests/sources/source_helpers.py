"""Synthetic test cubes with known sources, computed independently of the library.

Each source is an elliptical Gaussian (intrinsic FWHMs, PA east of north) times a Gaussian
line; the clean cube is the analytic convolution with the Gaussian beam (covariances add),
in Jy/beam; the noise is white noise smoothed so that its autocorrelation is the beam.
"""

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

FWHM = np.sqrt(8 * np.log(2))
PIXEL_ARCSEC = 0.1
FREQ0 = 230e9
DFREQ = 1e6
C_KMS = 299792.458


def _covariance(major_pix, minor_pix, pa_deg):
    pa = np.radians(pa_deg)
    along = np.array([-np.sin(pa), np.cos(pa)])  # (dx, dy) of PA for east-left images
    across = np.array([along[1], -along[0]])
    return ((major_pix / FWHM) ** 2 * np.outer(along, along)
            + (minor_pix / FWHM) ** 2 * np.outer(across, across))


def make_header(shape, *, beam=(0.5, 0.35, 20.0), bunit="Jy/beam"):
    """FITS header of a (chan, y, x) cube (or (y, x) image) with an ALMA-like WCS."""
    header = fits.Header()
    ny, nx = shape[-2:]
    header.update(
        CTYPE1="RA---SIN", CRVAL1=150.0, CDELT1=-PIXEL_ARCSEC / 3600, CRPIX1=nx / 2 + 1,
        CUNIT1="deg", CTYPE2="DEC--SIN", CRVAL2=2.0, CDELT2=PIXEL_ARCSEC / 3600,
        CRPIX2=ny / 2 + 1, CUNIT2="deg", BMAJ=beam[0] / 3600, BMIN=beam[1] / 3600,
        BPA=beam[2], BUNIT=bunit, RADESYS="ICRS", EQUINOX=2000.0,
    )
    if len(shape) == 3:
        header.update(CTYPE3="FREQ", CRVAL3=FREQ0, CDELT3=DFREQ, CRPIX3=1, CUNIT3="Hz",
                      SPECSYS="LSRK", RESTFRQ=FREQ0)
    return header


def build_cube(shape, sources, *, beam=(0.5, 0.35, 20.0), noise=1e-3, seed=0):
    """Clean and noisy cubes (Jy/beam) and the header.

    ``sources``: dicts with x, y, z (pix), flux (Jy km/s), major, minor (arcsec, intrinsic),
    pa (deg east of north), line_fwhm (channels).
    """
    beam_cov = _covariance(beam[0] / PIXEL_ARCSEC, beam[1] / PIXEL_ARCSEC, beam[2])
    beam_area = np.pi / (4 * np.log(2)) * beam[0] * beam[1] / PIXEL_ARCSEC**2
    is_2d = len(shape) == 2
    shape3 = (1,) + tuple(shape) if is_2d else tuple(shape)
    clean = np.zeros(shape3)
    yy, xx = np.indices(shape3[1:], dtype=float)
    channels = np.arange(shape3[0], dtype=float)
    for src in sources:
        cov = beam_cov + _covariance(src["major"] / PIXEL_ARCSEC, src["minor"] / PIXEL_ARCSEC,
                                     src["pa"])
        inv = np.linalg.inv(cov)
        d = np.stack([xx - src["x"], yy - src["y"]], axis=-1)
        image = np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inv, d))
        image /= 2 * np.pi * np.sqrt(np.linalg.det(cov))  # unit sum
        if is_2d:
            spectrum = np.array([src["flux"]])  # Jy for images
        else:
            dv = C_KMS * DFREQ / (FREQ0 + DFREQ * src["z"])
            sigma = src["line_fwhm"] / FWHM
            profile = np.exp(-0.5 * ((channels - src["z"]) / sigma) ** 2)
            spectrum = src["flux"] / dv * profile / profile.sum()  # Jy per channel
        clean += spectrum[:, None, None] * image[None] * beam_area
    rng = np.random.default_rng(seed)
    white = rng.normal(size=shape3)
    sigma_b = np.sqrt(beam[0] * beam[1]) / PIXEL_ARCSEC / FWHM
    corr = ndimage.gaussian_filter(white, (0, sigma_b / np.sqrt(2), sigma_b / np.sqrt(2)),
                                   mode="wrap")
    corr *= noise / corr.std()
    dirty = clean + corr
    header = make_header(shape, beam=beam)
    return clean.reshape(shape), dirty.reshape(shape), corr.reshape(shape), header


@pytest.fixture
def cube_factory():
    return build_cube


@pytest.fixture
def fits_cube(tmp_path):
    """Write a cube to FITS and read it back as a SpectralCube."""
    from spectral_cube import SpectralCube

    def _write(data, header, name="cube.fits"):
        path = tmp_path / name
        fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(path)
        return path, SpectralCube.read(path)

    return _write


@pytest.fixture(scope="session")
def three_sources():
    """A simulated ALMA cube (64 x 64 x 24) of three resolved sources at SNR 20-40, with no
    continuum and no blends, with its PSF over twice the image (``psf_full``)."""
    from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube

    config = AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24),
                        beam_fwhm_pixels_range=(4.0, 5.0), n_sources_range=(3, 3),
                        snr_range=(20.0, 40.0), source_fwhm_range=(0.8, 1.5),
                        axis_ratio_range=(0.4, 0.6), line_fwhm_range=(3.0, 6.0),
                        continuum_fraction=0.0, blend_fraction=0.0)
    return simulate_alma_cube(config, seed=5, full_psf=True)
