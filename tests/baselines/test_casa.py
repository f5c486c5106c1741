import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from radio_beam import Beam
from scipy.signal import fftconvolve

from deepfocus_radio.baselines.casa import align_psf_for_casa, casa_available, casa_clean
from deepfocus_radio.exceptions import InputDataError


def _header(size):
    h = fits.Header()
    for axis, (ctype, cdelt, crval) in enumerate(
        [("RA---SIN", -0.1 / 3600, 150.0), ("DEC--SIN", 0.1 / 3600, 2.0), ("FREQ", 1e6, 230e9)], 1
    ):
        h[f"CTYPE{axis}"], h[f"CDELT{axis}"], h[f"CRVAL{axis}"] = ctype, cdelt, crval
        h[f"CRPIX{axis}"] = size // 2 + 1 if axis < 3 else 1
    h["BUNIT"] = "Jy/beam"
    fwhm = 2 * np.sqrt(8 * np.log(2)) * 0.1 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = fwhm, fwhm, 0.0
    return h


def test_align_psf_pads_and_moves_peak():
    psf = np.zeros((1, 5, 5))
    psf[0, 2, 2] = 1
    even = align_psf_for_casa(psf, (1, 8, 8))
    odd = align_psf_for_casa(psf, (1, 7, 7))
    assert np.unravel_index(np.argmax(even[0]), (8, 8)) == (5, 5)
    assert np.unravel_index(np.argmax(odd[0]), (7, 7)) == (3, 3)


@pytest.mark.skipif(not casa_available(), reason="CASA (casatasks, casadata) is the optional 'bench' extra")
@pytest.mark.parametrize("size", [47, 48])
def test_casa_clean_restores_point_sources_in_place(tmp_path, size):
    y, x = np.mgrid[:size, :size] - size // 2
    r = np.hypot(x, y)
    psf = np.exp(-0.5 * (r / 2.0) ** 2) - 0.15 * np.exp(-0.5 * ((r - 8) / 1.5) ** 2)
    psf /= psf[size // 2, size // 2]
    sky = np.zeros((1, size, size))
    sky[0, 20, 25] = 1.0
    dirty = np.stack([fftconvolve(sky[0], psf, mode="same")] * 2).astype(np.float32)
    header = _header(size)
    out = casa_clean(dirty, np.stack([psf, psf]), header, tmp_path / "clean.fits",
                     threshold=1e-3 * u.Jy / u.beam, restoring_beam=Beam.from_fits_header(header))
    restored = fits.getdata(out)
    assert restored.shape == dirty.shape
    assert np.unravel_index(np.argmax(restored[1]), restored[1].shape) == (20, 25)
    assert restored.max() == pytest.approx(1.0, abs=0.01)
    with pytest.raises(InputDataError, match="exists"):
        casa_clean(dirty, psf[None], header, out, threshold=1e-3 * u.Jy / u.beam,
                   restoring_beam=Beam.from_fits_header(header))
