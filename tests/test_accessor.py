"""The cube.deepfocus accessor: registration, and each method on real cubes."""

import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.io import fits
from spectral_cube import DaskSpectralCube, SpectralCube
from spectral_cube.spectral_cube import BaseSpectralCube

import deepfocus_radio
from deepfocus_radio.accessor import ACCESSOR_NAME, DeepFocusAccessor, register
from deepfocus_radio.exceptions import DeepFocusWarning


@pytest.fixture
def dirty_fits(tmp_path):
    """CASA-style 4D cube (degenerate Stokes) with a beam, in Jy/beam."""
    rng = np.random.default_rng(7)
    data = rng.normal(size=(1, 6, 20, 22)).astype(np.float32)
    header = fits.Header()
    header.update(CTYPE1="RA---SIN", CRVAL1=150.0, CDELT1=-0.1 / 3600, CRPIX1=11, CUNIT1="deg",
                  CTYPE2="DEC--SIN", CRVAL2=2.0, CDELT2=0.1 / 3600, CRPIX2=10, CUNIT2="deg",
                  CTYPE3="FREQ", CRVAL3=230.0e9, CDELT3=1.0e6, CRPIX3=1.0, CUNIT3="Hz",
                  CTYPE4="STOKES", CRVAL4=1.0, CDELT4=1.0, CRPIX4=1.0,
                  BUNIT="Jy/beam", BMAJ=0.5 / 3600, BMIN=0.4 / 3600, BPA=30.0)
    path = tmp_path / "dirty.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv3d(2, 1, 1)).eval()


def test_accessor_is_registered_on_every_cube_class(dirty_fits):
    cube = deepfocus_radio.open_cube(dirty_fits)
    assert isinstance(cube.deepfocus, DeepFocusAccessor)
    assert cube.deepfocus._cube is cube
    assert BaseSpectralCube.deepfocus is DeepFocusAccessor
    assert DaskSpectralCube.deepfocus is DeepFocusAccessor and SpectralCube.deepfocus is \
        DeepFocusAccessor
    assert "deepfocus" not in getattr(cube, "_cache", {})  # nothing stored on the cube
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert register()  # registering again is silent


def test_register_warns_when_the_name_is_taken(monkeypatch):
    monkeypatch.setattr(BaseSpectralCube, ACCESSOR_NAME, property(lambda self: 42))
    with pytest.warns(DeepFocusWarning, match="overriding a preexisting attribute"):
        register()
    assert BaseSpectralCube.deepfocus is DeepFocusAccessor


@pytest.mark.parametrize("use_dask", [False, True])
def test_accessor_deconvolve_returns_a_cube_with_the_right_wcs_shape_beam(dirty_fits, use_dask):
    dirty = deepfocus_radio.open_cube(dirty_fits, use_dask=use_dask)
    clean = dirty.deepfocus.deconvolve(_model(), tile=(6, 16, 16), halo=(1, 2, 2), batch_size=2,
                                       blend="crop", device="cpu", progress=False)
    assert isinstance(clean, DaskSpectralCube if use_dask else SpectralCube)
    assert clean.shape == dirty.shape == (6, 20, 22)
    assert clean.wcs.wcs.compare(dirty.wcs.wcs)
    assert clean.beam == dirty.beam and clean.unit == u.Jy / u.beam
    assert np.isfinite(clean.unmasked_data[:].value).all()


def test_accessor_to_zarr_and_find_sources_delegation(dirty_fits, tmp_path, monkeypatch):
    import deepfocus_radio.sources

    cube = deepfocus_radio.open_cube(dirty_fits)
    path = cube.deepfocus.to_zarr(tmp_path / "c.zarr", chunks=(3, 10, 11), progress=False)
    again = deepfocus_radio.open_cube(path)
    np.testing.assert_array_equal(again.unmasked_data[:], cube.unmasked_data[:])
    assert again.beam == cube.beam
    calls = []
    monkeypatch.setattr(deepfocus_radio.sources, "find_sources",
                        lambda c, **kw: calls.append((c, kw)) or "catalogue")
    assert cube.deepfocus.find_sources("mymodel", threshold=5.0) == "catalogue"
    assert calls[0][0] is cube and calls[0][1] == {"model": "mymodel", "threshold": 5.0}
