"""SKA-like HI cubes: headers, discs, double horns, kinematic PA, SDC2 truth."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from spectral_cube import SpectralCube

from deepfocus_radio.conventions import beam_area_pixels
from deepfocus_radio.exceptions import InputDataError
from deepfocus_radio.simulation import AlmaConfig, SkaConfig, simulate_alma_cube, simulate_dataset, simulate_ska_cube
from deepfocus_radio.simulation.hi import profile_width
from deepfocus_radio.simulation.ska import HI_REST_FREQUENCY, SDC2_COLUMNS

ONE = dict(image_shape=(48, 48), n_channels_range=(60, 60), n_sources_range=(1, 1), blend_fraction=0.0)


@pytest.fixture(scope="module")
def galaxy():
    config = SkaConfig(**ONE, inclination_range=(60.0, 60.0), hi_size_range=(30.0, 30.0), w20_range=(250.0, 250.0),
                       snr_range=(40.0, 40.0))
    return simulate_ska_cube(config, seed=3)


def test_header_band_beam_and_rest_frequency(galaxy, tmp_path):
    galaxy.write(tmp_path, 0)
    cube = SpectralCube.read(tmp_path / "dirty_cube_0.fits")
    assert cube.header["RESTFRQ"] == pytest.approx(HI_REST_FREQUENCY)
    assert cube.header["TELESCOP"] == "SKA-MID"
    freqs = cube.spectral_axis.to_value(u.Hz)
    assert 950e6 <= freqs.min() and freqs.max() <= 1150e6
    assert abs(cube.header["CDELT3"]) == pytest.approx(30e3)
    assert abs(cube.header["CDELT2"]) * 3600 == pytest.approx(2.8)
    assert cube.beam.major.to_value(u.arcsec) == pytest.approx(7.0)


def test_line_flux_integral_in_jy_hz_matches_the_clean_cube(galaxy):
    row = galaxy.sources[0]
    area = beam_area_pixels(galaxy.beam, galaxy.pixel_scale)
    measured = galaxy.clean.astype(float).sum() / area * abs(galaxy.header["CDELT3"])
    assert measured == pytest.approx(row["line_flux_integral"], rel=0.02)
    assert galaxy.sky.astype(float).sum() * 30e3 == pytest.approx(row["line_flux_integral"], rel=1e-4)


def test_inclined_disc_has_a_double_horned_profile_and_measured_widths(galaxy):
    spectrum = galaxy.sky.astype(float).sum(axis=(1, 2))
    row = galaxy.sources[0]
    centre = int(round(row["z"]))
    assert spectrum[centre] < 0.85 * spectrum.max()  # a dip between two horns
    peaks = [np.argmax(spectrum[:centre]), centre + np.argmax(spectrum[centre:])]
    assert spectrum[peaks[0]] > 0.9 * spectrum.max() and spectrum[peaks[1]] > 0.9 * spectrum.max()
    dv = 299792.458 * 30e3 / row["freq"]
    assert row["w20"] == pytest.approx(profile_width(spectrum, 0.2) * dv, rel=0.02)
    assert 150.0 < row["w20"] < 320.0  # near the requested 250 km/s
    assert row["w50"] < row["w20"]


def test_the_receding_side_lies_at_the_kinematic_pa(galaxy):
    row = galaxy.sources[0]
    sky = galaxy.sky.astype(float)
    centre = int(round(row["z"]))
    wcs = WCS(galaxy.header).celestial
    centroids = []
    for half in (sky[:centre], sky[centre + 1 :]):  # low frequencies = redshifted = receding
        image = half.sum(axis=0)
        yy, xx = np.indices(image.shape)
        centroids.append(wcs.pixel_to_world((image * xx).sum() / image.sum(), (image * yy).sum() / image.sum()))
    receding, approaching = centroids
    pa = approaching.position_angle(receding).to_value(u.deg)
    difference = (pa - row["pa_kinematic"] + 180.0) % 360.0 - 180.0
    assert abs(difference) < 3.0
    assert 0.0 <= row["pa_kinematic"] < 360.0 and row["pa"] == pytest.approx(row["pa_kinematic"] % 180.0)
    assert row["fwhm_minor"] == pytest.approx(row["fwhm_major"] * np.cos(np.deg2rad(60.0)), rel=0.15)


def test_array_psf_mode_scales_the_layout_to_the_beam():
    config = SkaConfig(**{**ONE, "n_sources_range": (0, 0), "n_channels_range": (8, 8)}, psf_model="array")
    cube = simulate_ska_cube(config, seed=5)
    fwhm = np.sqrt(cube.beam.major * cube.beam.minor).to_value(u.arcsec)
    assert fwhm == pytest.approx(7.0, rel=0.02)
    np.testing.assert_allclose(cube.psf[:, 24, 24], 1.0, rtol=1e-6)
    assert cube.psf.min() < -0.005  # real sidelobes
    # PSFs shrink with frequency: the highest channel's main lobe is the narrowest.
    assert cube.psf[-1, 24, 27] < cube.psf[0, 24, 27]


def test_ska_dataset_writes_sdc2_truth(tmp_path):
    config = {**ONE, "n_channels_range": [40, 40], "n_sources_range": [1, 2], "image_shape": [32, 32],
              "hi_size_range": [8.0, 15.0], "w20_range": [80.0, 150.0]}
    root = simulate_dataset(tmp_path, n_train=1, n_valid=1, n_test=0, kind="ska", config=config, progress=False)
    sdc2 = Table.read(root / "Train" / "sdc2_truth.csv", format="ascii.csv")
    params = Table.read(root / "Train" / "train_params.csv", format="ascii.csv")
    assert [c for c in sdc2.colnames if c != "ID"] == list(SDC2_COLUMNS)
    assert len(sdc2) == len(params) >= 1
    np.testing.assert_allclose(sdc2["central_freq"], params["freq"])
    np.testing.assert_allclose(sdc2["i"], params["inclination"])
    assert np.all((sdc2["pa"] >= 0) & (sdc2["pa"] < 360))
    assert fits.getheader(root / "Validation" / "dirty_cube_0.fits")["RESTFRQ"] == pytest.approx(HI_REST_FREQUENCY)
    empty = Table.read(root / "Test" / "sdc2_truth.csv", format="ascii.csv")
    assert len(empty) == 0 and empty.colnames == ["ID", *SDC2_COLUMNS]
    assert "w20" in Table.read(root / "Test" / "test_params.csv", format="ascii.csv").colnames


def test_sdc2_catalog_needs_an_hi_cube():
    cube = simulate_alma_cube(AlmaConfig(image_shape=(16, 16), n_channels_range=(4, 4)), seed=0)
    with pytest.raises(InputDataError, match="sdc2_catalog needs an SKA HI cube"):
        cube.sdc2_catalog()


def test_product_headers_and_sdc2_table(galaxy):
    from deepfocus_radio.simulation.ska import sdc2_table

    assert "BMAJ" in galaxy.product_header("dirty") and galaxy.product_header("clean")["BUNIT"] == "Jy/beam"
    sky = galaxy.product_header("sky")
    assert sky["BUNIT"] == "Jy/pixel" and "BMAJ" not in sky and "BMIN" not in sky
    assert galaxy.product_header("psf")["BUNIT"] == ""
    table = sdc2_table(galaxy.sources)
    assert list(table.colnames) == list(SDC2_COLUMNS)
    row = galaxy.sources[0]
    assert table["pa"][0] == row["pa_kinematic"] and table["hi_size"][0] == row["hi_size"]
    assert table["central_freq"][0] == row["freq"] and table["i"][0] == row["inclination"]
