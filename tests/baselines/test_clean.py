import numpy as np
import pytest
from astropy import units as u
from radio_beam import Beam
from scipy.signal import fftconvolve

from deepfocus_radio.baselines import hogbom_clean, restoring_kernel
from deepfocus_radio.exceptions import InputDataError


def _psf(size=63, sigma=2.0):
    y, x = np.mgrid[:size, :size] - size // 2
    r = np.hypot(x, y)
    # a Gaussian main lobe plus a ring sidelobe, peak exactly 1 at the centre
    psf = np.exp(-0.5 * (r / sigma) ** 2) - 0.15 * np.exp(-0.5 * ((r - 8) / 1.5) ** 2)
    return psf / psf[size // 2, size // 2]


def test_restoring_kernel_peak_one_and_area():
    beam = Beam(major=0.5 * u.arcsec, minor=0.3 * u.arcsec, pa=20 * u.deg)
    kernel = restoring_kernel(beam, 0.1 * u.arcsec)
    assert kernel.max() == pytest.approx(1.0)
    area = (beam.sr / (0.1 * u.arcsec) ** 2).decompose().value
    assert kernel.sum() == pytest.approx(area, rel=0.02)


def test_hogbom_recovers_point_sources():
    psf = _psf()
    sky = np.zeros((2, 48, 48))
    sky[0, 20, 25] = 1.0
    sky[1, 10, 30] = 0.5
    sky[1, 30, 12] = 0.8
    dirty = np.stack([fftconvolve(s, p, mode="same") for s, p in zip(sky, [psf, psf])])
    fwhm = 2.0 * np.sqrt(8 * np.log(2)) * 0.1 * u.arcsec
    beam = Beam(major=fwhm, minor=fwhm, pa=0 * u.deg)
    restored = hogbom_clean(dirty, np.stack([psf, psf]), beam, 0.1 * u.arcsec, noise=[1e-3, 1e-3])
    # a restored point source has peak = its flux; the ring sidelobe is gone
    assert restored[0, 20, 25] == pytest.approx(1.0, rel=0.02)
    assert restored[1, 30, 12] == pytest.approx(0.8, rel=0.02)
    ring = restored[0, 20, 25 + 8]
    assert abs(ring) < 0.02 and dirty[0, 20, 25 + 8] < -0.1


def test_hogbom_rejects_mismatched_psf():
    with pytest.raises(InputDataError, match="same number of channels"):
        hogbom_clean(np.zeros((3, 8, 8)), np.zeros((2, 5, 5)), None, 0.1 * u.arcsec, noise=1.0)
