"""FITS cubes written by astropy for the io tests (tiny, CASA-like headers)."""

import numpy as np
import pytest
from astropy.io import fits


def cube_header(shape, *, stokes=None, velocity=False, bunit="Jy/beam", beam=True):
    """A header like CASA writes: RA/Dec SIN, frequency (or VRAD) axis, optional Stokes."""
    nchan, ny, nx = shape
    header = fits.Header()
    for key, value in [
        ("CTYPE1", "RA---SIN"), ("CRVAL1", 150.0), ("CDELT1", -0.1 / 3600), ("CRPIX1", nx / 2),
        ("CUNIT1", "deg"), ("CTYPE2", "DEC--SIN"), ("CRVAL2", 2.0), ("CDELT2", 0.1 / 3600),
        ("CRPIX2", ny / 2), ("CUNIT2", "deg"),
    ]:
        header[key] = value
    if velocity:
        header.update(CTYPE3="VRAD", CRVAL3=1.5e6, CDELT3=-5.0e3, CRPIX3=1.0, CUNIT3="m/s",
                      SPECSYS="BARYCENT")
    else:
        header.update(CTYPE3="FREQ", CRVAL3=230.0e9, CDELT3=1.0e6, CRPIX3=1.0, CUNIT3="Hz",
                      SPECSYS="LSRK")
    header["RESTFRQ"] = 230.538e9
    if stokes is not None:
        header.update(CTYPE4="STOKES", CRVAL4=stokes, CDELT4=1.0, CRPIX4=1.0)
    if bunit:
        header["BUNIT"] = bunit
    if beam:
        header.update(BMAJ=0.5 / 3600, BMIN=0.4 / 3600, BPA=30.0)
    header["OBJECT"] = "TEST"
    return header


@pytest.fixture
def make_fits(tmp_path):
    """Write ``data`` (chan, y, x) to a FITS file; options as :func:`cube_header`."""

    def make(data, name="cube.fits", *, stokes_planes=None, **options):
        header = cube_header(data.shape[-3:], **options)
        array = data
        if stokes_planes is not None:
            array = np.stack(stokes_planes) if stokes_planes else data[None]
        path = tmp_path / name
        fits.PrimaryHDU(array, header).writeto(path)
        return path

    return make


@pytest.fixture
def noisy_cube(rng):
    data = rng.normal(size=(6, 16, 18)).astype(np.float32)
    data[2, 3, 4] = np.nan
    data[5, 10, 1] = np.inf
    return data
