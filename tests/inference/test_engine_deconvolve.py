"""deconvolve: cubes and paths in, clean SpectralCubes out (WCS, shape, beam, unit, provenance)."""

import types

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from engine_helpers import conv_stack, cube_header

from deepfocus_radio.exceptions import (
    InputDataError,
    ModelMismatchError,
    OutOfTrainingRangeWarning,
    OutputExistsError,
)
from deepfocus_radio.inference import deconvolve, predict_tiled
from deepfocus_radio.inference.deconvolve import model_identity, training_range_checks
from deepfocus_radio.io import open_cube

# on the CPU: these tests compare outputs to 1e-4, below CUDA TF32 convolutions' rounding
TILING = dict(tile=(8, 16, 16), halo=(2, 2, 2), device="cpu", progress=False)


@pytest.fixture
def model():
    return conv_stack(layers=2)


def _values(cube):
    return np.asarray(cube._get_filled_data(fill=np.nan))


@pytest.mark.parametrize("use_dask", [False, True])
def test_deconvolve_casa_4d_fits_cube(fits_cube, cube, model, use_dask):
    dirty = open_cube(fits_cube, use_dask=use_dask)
    clean = deconvolve(dirty, model, **TILING)
    assert type(clean).__name__ == ("DaskSpectralCube" if use_dask else "SpectralCube")
    assert clean.shape == cube.shape
    assert clean.wcs.wcs.compare(dirty.wcs.wcs)
    assert clean.beam == dirty.beam and clean.unit == u.Jy / u.beam
    name, sha256 = model_identity(model)
    assert clean.header["DFSHA256"] == sha256 and clean.header["DFMODEL"] == name == "Sequential"
    expected = predict_tiled(cube, model, **TILING)
    np.testing.assert_allclose(_values(clean), expected, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_masked_voxels_are_blanks(fits_cube, cube, model):
    dirty = open_cube(fits_cube, use_dask=True)
    masked = dirty.with_mask(dirty > 1.5 * u.Jy / u.beam)  # a mask of the user's own
    clean = _values(deconvolve(masked, model, **TILING))
    blank = ~np.asarray(masked.mask.include())
    assert np.isnan(clean[blank]).all() and np.isfinite(clean[~blank]).all()
    expected = predict_tiled(np.where(blank, np.nan, cube), model, **TILING)
    np.testing.assert_allclose(clean, expected, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_deconvolve_paths_to_zarr_and_fits(fits_cube, model, tmp_path):
    reference = _values(deconvolve(open_cube(fits_cube), model, **TILING))
    as_zarr = deconvolve(fits_cube, model, out=tmp_path / "clean.zarr", **TILING)
    assert type(as_zarr).__name__ == "DaskSpectralCube"
    np.testing.assert_allclose(_values(as_zarr), reference, rtol=1e-6, equal_nan=True)
    as_fits = deconvolve(tmp_path / "clean.zarr", model, out=tmp_path / "clean2.fits", **TILING)
    header = fits.getheader(tmp_path / "clean2.fits")
    assert header["DFSHA256"] == model_identity(model)[1] and header["BUNIT"] == "Jy/beam"
    assert as_fits.beam == open_cube(fits_cube).beam
    assert not (tmp_path / "clean2.fits.zarr").exists()  # the working store is removed
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        deconvolve(fits_cube, model, out=tmp_path / "clean2.fits", **TILING)
    deconvolve(fits_cube, model, out=tmp_path / "clean2.fits", overwrite=True, **TILING)


def test_multibeam_cube_is_restored_to_common_beam(cube, model, tmp_path):
    import radio_beam
    from spectral_cube import VaryingResolutionSpectralCube

    from deepfocus_radio.io.fits import read_fits

    with read_fits(_write(tmp_path, cube)) as image:
        wcs, header = image.wcs, image.header
    beams = radio_beam.Beams(major=np.linspace(0.5, 0.6, cube.shape[0]) * u.arcsec,
                             minor=np.full(cube.shape[0], 0.4) * u.arcsec,
                             pa=np.full(cube.shape[0], 30.0) * u.deg)
    dirty = VaryingResolutionSpectralCube(cube, wcs, beams=beams, header=header,
                                          meta={"BUNIT": "Jy/beam"})
    assert dirty.unit == u.Jy / u.beam
    clean = deconvolve(dirty, model, **TILING)
    assert clean.beam == beams.common_beam()


def _write(tmp_path, data, name="plain.fits", **options):
    path = tmp_path / name
    fits.PrimaryHDU(data, cube_header(data.shape[-3:], **options)).writeto(path)
    return path


def test_units_are_converted_to_jy_per_beam(cube, model, tmp_path):
    jy = deconvolve(_write(tmp_path, cube), model, **TILING)
    mjy = deconvolve(_write(tmp_path, cube * 1000, "mjy.fits", bunit="mJy/beam"), model, **TILING)
    assert mjy.unit == u.Jy / u.beam
    np.testing.assert_allclose(_values(mjy), _values(jy), rtol=1e-4, atol=1e-6, equal_nan=True)
    with pytest.raises(InputDataError, match="cannot be converted to Jy/beam"):
        deconvolve(_write(tmp_path, cube, "m.fits", bunit="m"), model, **TILING)


def test_missing_beam_and_missing_spectral_axis(cube, model, tmp_path):
    with pytest.raises(InputDataError, match="has no beam"):
        deconvolve(_write(tmp_path, cube, "nobeam.fits", beam=False), model, **TILING)
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(cube[0], cube_header(cube.shape)).writeto(image)
    with pytest.raises(InputDataError, match="no spectral axis.*model is 3D"):
        deconvolve(image, model, **TILING)
    with pytest.raises(ModelMismatchError, match="in_channels=2"):
        import torch

        deconvolve(open_cube(_write(tmp_path, cube, "x.fits")),
                   torch.nn.Sequential(torch.nn.Conv3d(2, 1, 1)), **TILING)


def test_out_of_training_range_warning_names_the_range(fits_cube, model):
    dirty = open_cube(fits_cube)
    model.card = types.SimpleNamespace(training_ranges={"beam_fwhm_pix": [10.0, 20.0],
                                                        "channel_width_kms": [0.5, 2.0]})
    with pytest.warns(OutOfTrainingRangeWarning, match=r"beam_fwhm_pix = 5, 4.*\[10, 20\]"):
        deconvolve(dirty, model, **TILING)
    model.card = types.SimpleNamespace(training_ranges={"beam_fwhm_pix": [3.0, 6.0]})
    deconvolve(dirty, model, **TILING)  # inside: no warning (warnings are errors here)


def test_training_range_measurements(fits_cube):
    dirty = open_cube(fits_cube)
    measured = training_range_checks(dirty, None, np.array([0.01, 0.02, 0.03]))
    assert measured["beam_fwhm_pix"] == pytest.approx([5.0, 4.0])
    assert measured["channel_width_kms"][0] == pytest.approx(299792.458 * 1e6 / 230.0065e9,
                                                             rel=1e-4)
    assert measured["noise_jy_beam"] == [pytest.approx(0.02)]


def test_given_noise_is_used_instead_of_measuring_it(fits_cube, cube, model):
    from deepfocus_radio.noise import channel_noise

    dirty = open_cube(fits_cube, use_dask=False)
    measured = _values(deconvolve(dirty, model, **TILING))
    given = _values(deconvolve(dirty, model, noise=channel_noise(cube), **TILING))
    np.testing.assert_array_equal(given, measured)
    doubled = _values(deconvolve(dirty, model, noise=2 * channel_noise(cube), **TILING))
    assert not np.allclose(doubled, measured, equal_nan=True)  # the network is not linear
    with pytest.raises(InputDataError, match="noise"):
        deconvolve(dirty, model, noise=np.ones(cube.shape[0] + 1), **TILING)
