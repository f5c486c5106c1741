"""FITS / CASA -> zarr -> open_cube round trips, xarray access, and the errors on bad input."""

import numpy as np
import pytest
import radio_beam
from astropy import units as u
from astropy.io import fits

from deepfocus_radio.exceptions import InputDataError, OutputExistsError
from deepfocus_radio.io import (
    FitsImage,
    cube_to_zarr,
    detect_format,
    fits_to_zarr,
    open_cube,
    read_store,
    write_fits,
)


def _bits(array):
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return array.view(np.uint32)


def _cube_values(cube):
    return np.asarray(cube._get_filled_data(fill=np.nan))


def test_round_trip_is_bit_exact_with_wcs_beam_unit(make_fits, noisy_cube, tmp_path):
    src = make_fits(noisy_cube)
    dst = fits_to_zarr(src, tmp_path / "cube.zarr", chunks=(4, 8, 8), progress=False)
    store = read_store(dst)
    assert store.array.chunks == (4, 8, 8)
    assert np.array_equal(_bits(store.array[...]), _bits(noisy_cube))  # NaN and inf kept
    cube, reference = open_cube(dst), open_cube(src)
    assert type(cube).__name__ == "DaskSpectralCube"
    assert np.array_equal(_bits(cube.unmasked_data[:].value), _bits(noisy_cube))
    assert cube.wcs.wcs.compare(reference.wcs.wcs)
    assert cube.beam == radio_beam.Beam(0.5 * u.arcsec, 0.4 * u.arcsec, 30 * u.deg)
    assert cube.unit == u.Jy / u.beam
    assert cube.header["OBJECT"] == "TEST"


def test_casa_4d_degenerate_stokes_is_dropped(make_fits, noisy_cube, tmp_path):
    src = make_fits(noisy_cube, stokes=1.0, stokes_planes=[])
    assert fits.getdata(src).ndim == 4
    dst = fits_to_zarr(src, tmp_path / "c.zarr", progress=False)
    cube = open_cube(dst)
    assert cube.shape == noisy_cube.shape
    assert cube.wcs.naxis == 3 and "NAXIS4" not in cube.header and "CTYPE4" not in cube.header
    assert np.array_equal(_bits(cube.unmasked_data[:].value), _bits(noisy_cube))
    assert cube.wcs.wcs.compare(open_cube(src).wcs.wcs)


def test_casa_observatory_keywords_are_completed_once(noisy_cube, tmp_path):
    """CASA writes OBSGEO-X/Y/Z only; astropy completes L/B/H with a FITSFixedWarning each
    time a WCS is built. open_cube completes them once, quietly, with astropy's values
    (the suite turns warnings into errors, so a warning here fails the test)."""
    from astropy.coordinates import EarthLocation

    from io_helpers import cube_header

    header = cube_header(noisy_cube.shape, stokes=1.0)
    alma = EarthLocation.from_geodetic(-67.754929 * u.deg, -23.022886 * u.deg, 5053.8 * u.m)
    header.update({"OBSGEO-X": alma.x.to_value(u.m), "OBSGEO-Y": alma.y.to_value(u.m),
                   "OBSGEO-Z": alma.z.to_value(u.m)})
    path = tmp_path / "casa.fits"
    fits.PrimaryHDU(noisy_cube[None], header).writeto(path)
    cube = open_cube(path)
    assert cube.header["OBSGEO-L"] == pytest.approx(-67.754929, abs=1e-5)
    assert cube.header["OBSGEO-B"] == pytest.approx(-23.022886, abs=1e-5)
    assert cube.wcs.celestial.naxis == 2 and cube[1:3].header["OBSGEO-H"] > 5000


def test_stokes_i_is_kept_among_several(make_fits, rng, tmp_path):
    planes = [rng.normal(size=(3, 8, 8)).astype(np.float32) + k for k in range(4)]
    # IQUV with CRVAL4 = 1 (I) at the first pixel; ask for the file with I second instead
    src = make_fits(planes[0], stokes=0.0, stokes_planes=planes)  # axis values 0,1,2,3
    with FitsImage(src) as image:
        assert np.array_equal(image.read(), planes[1])  # Stokes value 1 = I


def test_stokes_axis_without_i_is_refused(make_fits, rng):
    planes = [rng.normal(size=(2, 8, 8)).astype(np.float32) for _ in range(2)]
    src = make_fits(planes[0], stokes=2.0, stokes_planes=planes)  # Q, U only
    with pytest.raises(InputDataError, match="no Stokes I"):
        fits_to_zarr(src, src.with_suffix(".zarr"), progress=False)


def test_velocity_axis_and_specsys_are_kept(make_fits, noisy_cube, tmp_path):
    src = make_fits(noisy_cube, velocity=True)
    cube = open_cube(fits_to_zarr(src, tmp_path / "v.zarr", progress=False))
    assert cube.wcs.wcs.ctype[2] == "VRAD"
    assert cube.wcs.wcs.specsys == "BARYCENT"
    assert cube.spectral_axis.unit.is_equivalent(u.km / u.s)
    assert u.allclose(cube.spectral_axis[:2], [1500.0, 1495.0] * u.km / u.s)


def test_xarray_opens_the_store_with_named_dims(make_fits, noisy_cube, tmp_path):
    import xarray as xr

    dst = fits_to_zarr(make_fits(noisy_cube), tmp_path / "x.zarr", progress=False)
    dataset = xr.open_zarr(dst)
    assert dataset["intensity"].dims == ("chan", "y", "x")
    assert dataset["intensity"].shape == noisy_cube.shape
    assert dataset.attrs["beam"]["BPA"] == pytest.approx(30.0)
    values = dataset["intensity"].values
    assert np.array_equal(_bits(values), _bits(noisy_cube))


def test_scaled_integer_fits_is_read_with_scaling(tmp_path):
    from io_helpers import cube_header

    raw = np.arange(2 * 8 * 8, dtype=np.int16).reshape(2, 8, 8)
    hdu = fits.PrimaryHDU(raw, cube_header(raw.shape))
    hdu.header.update(BSCALE=0.5, BZERO=10.0)
    path = tmp_path / "int.fits"
    hdu.writeto(path)
    store = read_store(fits_to_zarr(path, tmp_path / "int.zarr", progress=False))
    assert np.array_equal(store.array[...], raw * 0.5 + 10.0)


def _multibeam_fits(path, data):
    from io_helpers import cube_header

    header = cube_header(data.shape, beam=False)
    header["CASAMBM"] = True
    nchan = data.shape[0]
    majors = np.linspace(0.5, 0.7, nchan)
    columns = [
        fits.Column(name="BMAJ", format="1E", unit="arcsec", array=majors),
        fits.Column(name="BMIN", format="1E", unit="arcsec", array=np.full(nchan, 0.4)),
        fits.Column(name="BPA", format="1E", unit="deg", array=np.full(nchan, 30.0)),
        fits.Column(name="CHAN", format="1J", array=np.arange(nchan)),
        fits.Column(name="POL", format="1J", array=np.zeros(nchan)),
    ]
    table = fits.BinTableHDU.from_columns(columns, name="BEAMS")
    table.header["NCHAN"], table.header["NPOL"] = nchan, 1
    fits.HDUList([fits.PrimaryHDU(data, header), table]).writeto(path)
    return path


def test_multibeam_cube_is_convolved_to_common_beam(rng, tmp_path):
    from spectral_cube import SpectralCube

    data = rng.normal(size=(4, 24, 24)).astype(np.float32)
    src = _multibeam_fits(tmp_path / "mb.fits", data)
    cube = open_cube(fits_to_zarr(src, tmp_path / "mb.zarr", progress=False))
    reference = SpectralCube.read(src)
    common = reference.beams.common_beam()
    assert cube.beam == common
    expected = reference.convolve_to(common)
    np.testing.assert_allclose(cube.unmasked_data[:].value, expected.unmasked_data[:].value,
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(cube.unmasked_data[:].value, data)  # it was convolved


@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")  # spectral-cube's own read
@pytest.mark.filterwarnings("ignore::spectral_cube.utils.StokesWarning")  # (reference only)
def test_casa_image_round_trip(tmp_path):
    from pathlib import Path

    import spectral_cube
    from spectral_cube import SpectralCube

    src = Path(spectral_cube.__file__).parent / "tests" / "data" / "basic.image"
    assert detect_format(src) == "casa"
    cube = open_cube(fits_to_zarr(src, tmp_path / "casa.zarr", progress=False))
    reference = SpectralCube.read(src, format="casa_image")
    assert cube.shape == reference.shape
    np.testing.assert_array_equal(_cube_values(cube), _cube_values(reference))
    # spectral-cube's header carries 12 significant digits: compare world coordinates
    pixels = np.array([[0, 0, 0], [4, 3, 2], [2, 1, 1]], dtype=float)
    np.testing.assert_allclose(cube.wcs.wcs_pix2world(pixels, 0),
                               reference.wcs.wcs_pix2world(pixels, 0), rtol=1e-11)
    assert cube.wcs.wcs.ctype[2] == reference.wcs.wcs.ctype[2]
    assert cube.unit == reference.unit and cube.beam == reference.beam


def test_2d_image_goes_to_a_yx_store_but_is_not_a_cube(tmp_path, rng):
    from io_helpers import cube_header

    image = rng.normal(size=(1, 10, 12)).astype(np.float32)  # degenerate frequency axis
    header = cube_header((1, 10, 12))
    header.update(CTYPE4="STOKES", CRVAL4=1.0, CDELT4=1.0, CRPIX4=1.0)
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(image[None], header).writeto(path)
    store = read_store(fits_to_zarr(path, tmp_path / "img.zarr", progress=False))
    assert store.array.shape == (1, 10, 12)
    flat = tmp_path / "flat.fits"
    fits.PrimaryHDU(image[0], cube_header((1, 10, 12))).writeto(flat)
    with pytest.raises(InputDataError, match="no spectral axis"):
        open_cube(flat)
    store2d = read_store(fits_to_zarr(flat, tmp_path / "flat.zarr", progress=False))
    assert store2d.array.shape == (10, 12)
    with pytest.raises(InputDataError, match="2D image"):
        open_cube(tmp_path / "flat.zarr")


def test_not_a_cube_file_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a cube")
    with pytest.raises(InputDataError, match="not a FITS file, a CASA image or a deepfocus"):
        fits_to_zarr(text, tmp_path / "o.zarr")
    with pytest.raises(InputDataError, match="not a FITS file"):
        open_cube(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_cube(tmp_path / "missing.fits")


def test_foreign_zarr_store_is_refused(tmp_path):
    import zarr

    zarr.open_group(tmp_path / "foreign.zarr", mode="w").create_array("a", shape=(2,), dtype="f4")
    with pytest.raises(InputDataError, match="not a FITS file, a CASA image"):
        open_cube(tmp_path / "foreign.zarr")
    with pytest.raises(InputDataError, match="not a deepfocus_radio zarr store"):
        read_store(tmp_path / "foreign.zarr")


def test_zarr_source_and_existing_destination(make_fits, noisy_cube, tmp_path):
    dst = fits_to_zarr(make_fits(noisy_cube), tmp_path / "c.zarr", progress=False)
    with pytest.raises(InputDataError, match="already a zarr store"):
        fits_to_zarr(dst, tmp_path / "d.zarr")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        fits_to_zarr(make_fits(noisy_cube, "b.fits"), dst)
    fits_to_zarr(make_fits(noisy_cube * 2, "c.fits"), dst, overwrite=True, progress=False)
    assert np.nanmax(read_store(dst).array[...]) > np.nanmax(noisy_cube[np.isfinite(noisy_cube)])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.zarr")]  # no leftovers


def test_bad_chunks_bad_unit_bad_axis_order(make_fits, noisy_cube, tmp_path):
    with pytest.raises(InputDataError, match="chunks=.*3 positive sizes"):
        fits_to_zarr(make_fits(noisy_cube), tmp_path / "o.zarr", chunks=(4, 0, 8))
    with pytest.raises(InputDataError, match="BUNIT = 'furlongs'"):
        open_cube(make_fits(noisy_cube, "u.fits", bunit="furlongs"))
    path = make_fits(noisy_cube, "swap.fits")
    with fits.open(path, mode="update") as hdul:
        header = hdul[0].header
        for key in ("CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT"):
            header[f"{key}1"], header[f"{key}3"] = header[f"{key}3"], header[f"{key}1"]
    with pytest.raises(InputDataError, match="expected \\(longitude, latitude"):
        open_cube(path)


def test_open_cube_fits_memmap_and_dask(make_fits, noisy_cube):
    src = make_fits(noisy_cube, stokes=1.0, stokes_planes=[])
    plain, lazy = open_cube(src), open_cube(src, use_dask=True)
    assert type(plain).__name__ == "SpectralCube" and type(lazy).__name__ == "DaskSpectralCube"
    assert np.array_equal(_bits(plain.unmasked_data[:].value), _bits(lazy.unmasked_data[:].value))
    assert plain.beam == lazy.beam


def test_write_fits_atomic_and_refuses_overwrite(make_fits, noisy_cube, tmp_path):
    cube = open_cube(make_fits(noisy_cube))
    out = write_fits(cube, tmp_path / "out.fits")
    again = open_cube(out)
    finite = np.isfinite(noisy_cube)
    assert np.array_equal(again.unmasked_data[:].value[finite], noisy_cube[finite])
    assert np.isnan(again.unmasked_data[:].value[~finite]).all()  # masked (inf) -> NaN
    assert again.beam == cube.beam and again.wcs.wcs.compare(cube.wcs.wcs)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_fits(cube, out)
    header = fits.Header({"BUNIT": "K"})
    write_fits(np.ones((3, 4)), out, header=header, overwrite=True)
    assert fits.getheader(out)["BUNIT"] == "K" and fits.getdata(out).shape == (3, 4)
    with pytest.raises(InputDataError, match="2 or 3 axes"):
        write_fits(np.ones(5), tmp_path / "bad.fits")
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_cube_to_zarr_streams_a_dask_cube(make_fits, noisy_cube, tmp_path):
    cube = open_cube(make_fits(noisy_cube), use_dask=True)
    path = cube_to_zarr(cube, tmp_path / "s.zarr", chunks=(2, 16, 18), progress=False)
    stored = read_store(path)
    assert stored.array.chunks == (2, 16, 18)
    finite = np.isfinite(noisy_cube)
    assert np.array_equal(stored.array[...][finite], noisy_cube[finite])
    assert stored.beam == cube.beam
