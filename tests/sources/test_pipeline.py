"""find_sources end to end (FITS in, catalogue out), primary-beam correction, CLI."""

import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.io import fits

from deepfocus_radio.cli.main import main
from deepfocus_radio.exceptions import ConfigError, InputDataError, OutOfTrainingRangeWarning
from deepfocus_radio.sources import find_sources, read_catalog, write_catalog
from deepfocus_radio.sources.catalog import catalog_from_rows

SOURCES = [
    dict(x=30, y=25, z=12, flux=1.0, major=0.6, minor=0.3, pa=30, line_fwhm=6),
    dict(x=12, y=36, z=6, flux=0.1, major=0.0, minor=0.0, pa=0, line_fwhm=4),
]


@pytest.fixture(scope="module")
def dirty_fits(tmp_path_factory):
    from source_helpers import build_cube

    clean, dirty, _, header = build_cube((24, 48, 48), SOURCES, noise=1e-3, seed=11)
    path = tmp_path_factory.mktemp("pipeline") / "dirty.fits"
    fits.PrimaryHDU(dirty.astype(np.float32), header=header).writeto(path)
    return path, header


def _truth_table(header):
    rows = []
    for i, src in enumerate(SOURCES):
        dv = 299792.458 * 1e6 / (230e9 + 1e6 * src["z"])
        rows.append(dict(id=i + 1, x=src["x"], y=src["y"], z=src["z"], flux=src["flux"],
                         fwhm_major=src["major"], fwhm_minor=src["minor"], pa=src["pa"],
                         line_fwhm=src["line_fwhm"] * dv, snr=50.0 if i == 0 else 10.0))
    return catalog_from_rows(rows, meta={"beam_major_arcsec": 0.5, "pixel_scale_arcsec": 0.1})


def test_dirty_cube_search(dirty_fits):
    path, _ = dirty_fits
    table = find_sources(path, model=None, progress=False)
    assert table.meta["model"].startswith("none")
    bright = table[np.argmax(table["flux"].value)]
    assert bright["flux"].to_value(u.Jy * u.km / u.s) == pytest.approx(1.0, rel=0.05)
    assert bright["pa"].to_value(u.deg) == pytest.approx(30, abs=3)
    assert any(np.hypot(table["x"].value - 12, table["y"].value - 36) < 1.5)


def test_identity_network_equals_no_deconvolution(dirty_fits):
    path, _ = dirty_fits
    identity = torch.nn.Conv3d(1, 1, kernel_size=1, bias=False)
    with torch.no_grad():
        identity.weight.fill_(1.0)
    via_network = find_sources(path, model=identity, progress=False, tile=(24, 48, 48))
    direct = find_sources(path, model=None, progress=False)
    assert len(via_network) == len(direct)
    np.testing.assert_allclose(via_network["flux"].value, direct["flux"].value, rtol=1e-4)
    np.testing.assert_allclose(via_network["snr"], direct["snr"], rtol=1e-4)
    assert via_network.meta["model"] == "Conv3d"
    assert len(via_network.meta["model_sha256"]) == 64


def test_primary_beam_correction(dirty_fits, tmp_path):
    path, header = dirty_fits
    pb = np.full((24, 48, 48), 0.5, dtype=np.float32)
    pb_path = tmp_path / "cube.pb.fits"
    fits.PrimaryHDU(pb, header=header).writeto(pb_path)
    plain = find_sources(path, model=None, progress=False)
    corrected = find_sources(path, model=None, progress=False, pb=pb_path)
    np.testing.assert_allclose(corrected["flux"].value, 2 * plain["flux"].value)
    np.testing.assert_allclose(corrected["peak_err"].value, 2 * plain["peak_err"].value)
    np.testing.assert_allclose(corrected["snr"], plain["snr"])
    assert corrected.meta["pb_corrected"] is True
    plane = find_sources(path, model=None, progress=False, pb=pb[0])
    np.testing.assert_allclose(plane["flux"].value, corrected["flux"].value)
    with pytest.raises(InputDataError, match="primary beam has shape"):
        find_sources(path, model=None, progress=False, pb=np.ones((3, 3)))
    with pytest.raises(FileNotFoundError, match="primary beam"):
        find_sources(path, model=None, progress=False, pb=tmp_path / "none.fits")


def test_accessor_and_four_dimensional_casa_header(dirty_fits, tmp_path):
    from spectral_cube import SpectralCube

    import deepfocus_radio  # noqa: F401  (registers the accessor)

    path, header = dirty_fits
    cube = SpectralCube.read(path)
    table = cube.deepfocus.find_sources(model=None, progress=False)
    data = fits.getdata(path)[None]
    header4 = header.copy()
    header4.update(CTYPE4="STOKES", CRVAL4=1.0, CDELT4=1.0, CRPIX4=1.0, CUNIT4="")
    path4 = tmp_path / "casa4d.fits"
    fits.PrimaryHDU(data, header=header4).writeto(path4)
    table4 = find_sources(path4, model=None, progress=False)
    np.testing.assert_allclose(table4["flux"].value, table["flux"].value, rtol=1e-6)


def test_two_dimensional_fits_image(tmp_path):
    from source_helpers import build_cube

    _, dirty, _, header = build_cube((48, 48), [dict(x=20, y=24, flux=0.02, major=0.4,
                                                      minor=0.2, pa=30)], noise=2e-4)
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(dirty.astype(np.float32), header=header).writeto(path)
    table = find_sources(path, model=None, progress=False)
    assert len(table) == 1 and table["flux"].unit == u.Jy
    assert table["flux"][0].value == pytest.approx(0.02, rel=0.05)
    with pytest.raises(ConfigError, match="2D image"):
        find_sources(path, model="alma", progress=False)


def test_input_errors(dirty_fits, tmp_path):
    path, header = dirty_fits
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_sources(tmp_path / "missing.fits", model=None)
    no_beam = header.copy()
    for key in ("BMAJ", "BMIN", "BPA"):
        del no_beam[key]
    bad = tmp_path / "nobeam.fits"
    fits.PrimaryHDU(fits.getdata(path), header=no_beam).writeto(bad)
    with pytest.raises(InputDataError, match="no beam"):
        find_sources(bad, model=None, progress=False)


def test_cli_find_sources_and_score(dirty_fits, tmp_path, capsys):
    path, header = dirty_fits
    out = tmp_path / "found.ecsv"
    assert main(["find-sources", str(path), "--out", str(out), "--model", "none",
                 "--quiet"]) == 0
    assert "sources written to" in capsys.readouterr().out
    found = read_catalog(out)
    assert found["flux"].unit == u.Jy * u.km / u.s
    assert main(["find-sources", str(path), "--out", str(out), "--model", "none"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["find-sources", str(path), "--out", str(tmp_path / "x.dat"),
                 "--model", "none"]) == 1
    assert "format" in capsys.readouterr().err
    truth = write_catalog(_truth_table(header), tmp_path / "truth.ecsv")
    plot, report = tmp_path / "score.png", tmp_path / "score.json"
    assert main(["score", str(out), str(truth), "--plot", str(plot), "--json",
                 str(report)]) == 0
    text = capsys.readouterr().out
    assert "matched 2 of 2" in text
    assert plot.exists() and report.exists()
    assert main(["score", str(out), str(truth), "--beam", "0.5", "--beam-pixels", "5"]) == 1
    assert "either --beam" in capsys.readouterr().err
    # against a catalogue that lost the second row: one source only the first finds
    fewer = write_catalog(found[:1], tmp_path / "fewer.ecsv")
    assert main(["score", str(out), str(truth), "--against", str(fewer)]) == 0
    text = capsys.readouterr().out
    assert "source by source" in text
    overall = [line.split() for line in text.splitlines() if line.strip().startswith("all")][-1]
    # snr_bin n_truth both only_first only_second neither ...
    assert overall[1:6] == ["2", "1", "1", "0", "0"]
    assert main(["score", str(out), str(truth), "--against", str(tmp_path / "none.ecsv")]) == 1
    assert "none.ecsv" in capsys.readouterr().err


def test_zarr_store_gives_the_same_catalogue(dirty_fits, tmp_path):
    from deepfocus_radio.io import fits_to_zarr

    path, _ = dirty_fits
    store = tmp_path / "dirty.zarr"
    fits_to_zarr(path, store, chunks=(8, 24, 24), progress=False)
    from_store = find_sources(store, model=None, progress=False, chunks=(10, 20, 30))
    from_fits = find_sources(path, model=None, progress=False)
    assert len(from_store) == len(from_fits)
    np.testing.assert_allclose(from_store["flux"].value, from_fits["flux"].value, rtol=1e-6)
    np.testing.assert_allclose(from_store["ra"].value, from_fits["ra"].value, rtol=1e-12)


def test_network_flux_error_comes_from_the_model_card(dirty_fits):
    """find_sources adds the model card's calibrated fractional flux error (0 without one)."""
    import dataclasses

    from deepfocus_radio.models import get_pretrained_info, load_model
    from deepfocus_radio.sources.pipeline import _flux_fractional_error

    model = load_model("alma")
    shipped = get_pretrained_info("alma").calibration.get("flux_fractional_error", 0.0)
    assert _flux_fractional_error(model) == shipped
    model.card = dataclasses.replace(model.card, calibration={"flux_fractional_error": 0.17})
    assert _flux_fractional_error(model) == 0.17
    model.card = dataclasses.replace(model.card, calibration={})
    assert _flux_fractional_error(model) == 0.0
    assert _flux_fractional_error(None) == 0.0  # a dirty-cube search
    path = dirty_fits[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfTrainingRangeWarning)
        by_name = find_sources(path, model="alma", progress=False)
    assert by_name.meta["flux_fractional_error"] == shipped
    assert find_sources(path, model=None, progress=False).meta["flux_fractional_error"] == 0.0
    with pytest.raises(ConfigError, match="unknown model"):
        find_sources(path, model="not-a-shipped-model", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("options", [{}, dict(threshold=3.5, psf_min_snr=4.0,
                                                  dirty_candidates=4.0)],
                         ids=["psf", "as-evaluated"])
def test_find_sources_on_cuda_gives_the_cpu_catalogue(options):
    from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube

    sim = simulate_alma_cube(AlmaConfig(image_shape=(64, 64), n_channels_range=(24, 24),
                                        n_sources_range=(4, 4), snr_range=(10, 40),
                                        beam_fwhm_pixels_range=(4.0, 5.0)), seed=3, full_psf=True)
    dirty = sim.to_spectral_cube("dirty")
    cpu = find_sources(dirty, device="cpu", psf=sim.psf, progress=False, **options)
    gpu = find_sources(dirty, device="cuda", psf=sim.psf, progress=False, **options)
    assert len(cpu) == len(gpu) > 0
    np.testing.assert_allclose(gpu["x"].value, cpu["x"].value, atol=0.05)
    np.testing.assert_allclose(gpu["z"].value, cpu["z"].value, atol=0.05)
    np.testing.assert_allclose(gpu["flux"].value, cpu["flux"].value, rtol=0.01)
    assert gpu.meta["model_sha256"] == cpu.meta["model_sha256"]


def test_hi_cubes_are_not_deblended_by_default():
    """A rotating HI disc has a double-horned line, two peaks at offset positions:
    deblending splits it. deblend='auto' leaves HI cubes whole (as SoFiA does)."""
    from deepfocus_radio.simulation import simulate_ska_cube
    from deepfocus_radio.sources import score_catalog

    sim = simulate_ska_cube(dict(image_shape=(64, 64), n_channels_range=(48, 48),
                                 n_sources_range=(2, 2), snr_range=(20, 40), blend_fraction=0.0),
                            seed=4)
    dirty, clean = sim.to_spectral_cube("dirty"), sim.to_spectral_cube("clean")
    geometry = dict(beam=sim.beam, pixel_scale=sim.pixel_scale,
                    channel_width=abs(sim.header["CDELT3"]) * u.Hz)
    whole = find_sources(dirty, None, deconvolved=clean, progress=False)
    assert len(whole) == 2 and whole.meta["deblended"] is False
    assert score_catalog(whole, sim.truth_catalog(), **geometry).completeness == 1.0
    split = find_sources(dirty, None, deconvolved=clean, deblend=True, progress=False)
    assert len(split) > 3 and split.meta["deblended"] is True  # each disc in pieces
    with pytest.raises(ConfigError, match="deblend='yes'"):
        find_sources(dirty, None, deblend="yes", progress=False)
