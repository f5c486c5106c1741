"""Tiny networks and cubes for the inference tests."""

import numpy as np
import pytest
import torch
from astropy.io import fits


def conv_stack(spatial_dims=3, *, seed=0, layers=3, width=4):
    """``layers`` 3-wide convolutions: receptive field radius = ``layers`` voxels."""
    conv = torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d
    torch.manual_seed(seed)
    modules = []
    channels = 1
    for index in range(layers):
        out = 1 if index == layers - 1 else width
        modules.append(conv(channels, out, 3, padding=1))
        if index < layers - 1:
            modules.append(torch.nn.Tanh())
        channels = out
    return torch.nn.Sequential(*modules).eval()


def whole_pass(model, data, noise, spatial_dims=3):
    """Reference: the network run once on the whole noise-normalized array (it pads its
    input to its own size multiple); a 2D network runs on each plane."""
    finite = np.isfinite(data)
    normalized = (np.where(finite, data, 0) / noise[:, None, None]).astype(np.float32)
    with torch.no_grad():
        if spatial_dims == 2:
            out = model(torch.from_numpy(normalized)[:, None])[:, 0].numpy()
        else:
            out = model(torch.from_numpy(normalized)[None, None])[0, 0].numpy()
    out = out * noise[:, None, None]
    out[~finite] = np.nan
    return out


@pytest.fixture
def cube(rng):
    data = rng.normal(size=(14, 40, 44)).astype(np.float32)
    data[5:8, 18:24, 20:26] += 8.0
    data[3, 5, 6] = np.nan
    return data


def cube_header(shape, *, stokes=False, beam=True, bunit="Jy/beam"):
    nchan, ny, nx = shape
    header = fits.Header()
    header.update(CTYPE1="RA---SIN", CRVAL1=150.0, CDELT1=-0.1 / 3600, CRPIX1=nx / 2, CUNIT1="deg",
                  CTYPE2="DEC--SIN", CRVAL2=2.0, CDELT2=0.1 / 3600, CRPIX2=ny / 2, CUNIT2="deg",
                  CTYPE3="FREQ", CRVAL3=230.0e9, CDELT3=1.0e6, CRPIX3=1.0, CUNIT3="Hz",
                  SPECSYS="LSRK", RESTFRQ=230.538e9)
    if stokes:
        header.update(CTYPE4="STOKES", CRVAL4=1.0, CDELT4=1.0, CRPIX4=1.0)
    if beam:
        header.update(BMAJ=0.5 / 3600, BMIN=0.4 / 3600, BPA=30.0)
    if bunit:
        header["BUNIT"] = bunit
    return header


@pytest.fixture
def fits_cube(tmp_path, cube):
    """A CASA-style 4D FITS file (degenerate Stokes axis) holding ``cube``."""
    path = tmp_path / "dirty.fits"
    fits.PrimaryHDU(cube[None], cube_header(cube.shape, stokes=True)).writeto(path)
    return path
