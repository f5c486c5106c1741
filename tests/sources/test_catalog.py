"""Catalogue schema, writers and readers (units intact, regions parse, atomic writes)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from regions import Regions

from deepfocus_radio.conventions import pa_to_pixel_angle
from deepfocus_radio.exceptions import ConfigError, InputDataError, OutputExistsError
from deepfocus_radio.sources import (CATALOG_COLUMNS, ERROR_COLUMNS, catalog_to_regions,
                                     empty_catalog, read_catalog, write_catalog)
from deepfocus_radio.sources.catalog import catalog_from_rows

ROWS = [
    dict(id=1, x=30.0, y=25.0, z=12.0, ra=149.99983, dec=2.0000278, freq=230.012e9,
         peak=0.058, flux=1.0, fwhm_major=0.6, fwhm_minor=0.3, pa=30.0, line_fwhm=7.8,
         snr=50.0, flux_err=0.02, reliability=0.97),
    dict(id=2, x=12.0, y=36.0, z=6.0, ra=150.00033, dec=2.0003, freq=230.006e9, peak=0.009,
         flux=0.05, fwhm_major=0.0, fwhm_minor=0.0, pa=np.nan, line_fwhm=5.2, snr=9.0,
         flux_err=0.008),
]
META = {"beam_major_arcsec": 0.5, "beam_minor_arcsec": 0.35, "beam_pa_deg": 20.0,
        "pixel_scale_arcsec": 0.1, "east_left": True, "model": "alma"}


@pytest.fixture
def catalog():
    return catalog_from_rows(ROWS, meta=dict(META))


def test_empty_catalog_has_every_column():
    table = empty_catalog()
    assert len(table) == 0
    assert table.colnames == list(CATALOG_COLUMNS) + ERROR_COLUMNS + ["reliability", "psf_snr"]
    assert table["flux"].unit == u.Jy * u.km / u.s
    assert table["flux_err"].unit == u.Jy * u.km / u.s
    assert table["pa"].unit == u.deg and table["x"].unit == u.pix
    assert "date" in table.meta
    assert empty_catalog(units={"flux": u.Jy})["flux"].unit == u.Jy


@pytest.mark.parametrize("suffix", ["ecsv", "xml", "csv"])
def test_round_trip_keeps_units_and_values(catalog, tmp_path, suffix):
    path = write_catalog(catalog, tmp_path / f"cat.{suffix}")
    back = read_catalog(path)
    assert back.colnames == catalog.colnames
    for name in catalog.colnames:
        assert getattr(back[name], "unit", None) == getattr(catalog[name], "unit", None), name
        np.testing.assert_allclose(np.asarray(back[name], float),
                                   np.asarray(catalog[name], float), rtol=1e-12)
    if suffix == "ecsv":
        assert back.meta["model"] == "alma" and back.meta["versions"]["astropy"]
    if suffix == "xml":
        assert back.meta["model"] == "alma"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_and_format_errors(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "cat.ecsv")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_catalog(catalog, path)
    write_catalog(catalog[:1], path, overwrite=True)
    assert len(read_catalog(path)) == 1
    with pytest.raises(ConfigError, match="cannot tell the catalogue format"):
        write_catalog(catalog, tmp_path / "cat.dat")
    with pytest.raises(ConfigError, match="is not a catalogue format"):
        write_catalog(catalog, tmp_path / "cat.ecsv2", format="fits")
    reg = write_catalog(catalog, tmp_path / "cat.reg")
    with pytest.raises(ConfigError, match="cannot read back"):
        read_catalog(reg)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_catalog(tmp_path / "missing.ecsv")


def test_ds9_regions_parse_and_pa_is_east_of_north(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "cat.reg")
    regions = Regions.read(str(path), format="ds9")
    assert len(regions) == 2
    ellipse = regions[0]
    assert ellipse.width.to_value(u.arcsec) == pytest.approx(0.6)
    assert ellipse.height.to_value(u.arcsec) == pytest.approx(0.3)
    assert ellipse.center.separation(SkyCoord(149.99983, 2.0000278, unit="deg")).arcsec < 1e-3
    assert str(ellipse.meta["text"]) == "1"
    # on an image with east to the left, the ellipse's major axis lies at the pixel angle of
    # PA = 30 deg east of north
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600]
    wcs.wcs.crpix = [25, 25]
    pixel = ellipse.to_pixel(wcs)
    expected = float(pa_to_pixel_angle(30.0))
    assert np.mod(pixel.angle.to_value(u.deg) - expected + 90, 180) - 90 == pytest.approx(
        0, abs=0.1)
    # the unresolved source is drawn with the beam
    assert regions[1].width.to_value(u.arcsec) == pytest.approx(0.5)
    assert regions[1].angle.to_value(u.deg) == pytest.approx(110.0)


def test_crtf_regions_parse(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "cat.crtf")
    regions = Regions.read(str(path), format="crtf")
    assert len(regions) == 2
    assert regions[0].width.to_value(u.arcsec) == pytest.approx(0.6, rel=1e-6)
    assert "ICRS" in path.read_text().upper()


def test_pixel_regions_without_sky_coordinates(catalog):
    pixel_only = catalog.copy()
    pixel_only["ra"] = np.nan * u.deg
    regions = catalog_to_regions(pixel_only)
    assert regions[0].center.x == pytest.approx(30.0)
    assert regions[0].width == pytest.approx(6.0)
    assert regions[0].angle.to_value(u.deg) == pytest.approx(float(pa_to_pixel_angle(30)))
    pixel_only.meta.clear()
    assert type(catalog_to_regions(pixel_only)[1]).__name__ == "PointPixelRegion"


def test_sdc2_submission_format(catalog, tmp_path):
    path = write_catalog(catalog, tmp_path / "cat.sdc2")
    lines = path.read_text().splitlines()
    assert lines[0] == "id ra dec hi_size line_flux_integral central_freq pa i w20"
    values = [float(v) for v in lines[1].split()]
    assert values[3] == pytest.approx(0.6)
    flux_hz = (1.0 * u.Jy * u.km / u.s * 230.012e9 * u.Hz / (299792.458 * u.km / u.s))
    assert values[4] == pytest.approx(flux_hz.to_value(u.Jy * u.Hz), rel=1e-5)
    assert values[7] == pytest.approx(60.0, abs=0.01)  # arccos(0.3 / 0.6)
    assert values[8] == pytest.approx(7.8 * np.sqrt(np.log(5) / np.log(2)), rel=1e-4)
    no_sky = catalog.copy()
    no_sky["ra"] = np.nan * u.deg
    with pytest.raises(InputDataError, match="SDC2 format needs ra, dec and freq"):
        write_catalog(no_sky, tmp_path / "bad.sdc2")
    assert not (tmp_path / "bad.sdc2").exists()


def test_region_writer_refuses_other_formats(catalog, tmp_path):
    from deepfocus_radio.sources.regions_io import write_regions

    with pytest.raises(ConfigError, match="'ds9' or 'crtf'"):
        write_regions(catalog, tmp_path / "cat.reg", format="fits")
