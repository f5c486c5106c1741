"""Scoring on hand-made catalogues with known answers."""

import json

import numpy as np
import pytest
from astropy import units as u

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.sources import ScoreReport, score_catalog, write_catalog
from deepfocus_radio.sources.catalog import catalog_from_rows

# beam 0.5 arcsec = 5 pixels of 0.1 arcsec; channel 1 km/s
META = {"beam_major_arcsec": 0.5, "pixel_scale_arcsec": 0.1, "channel_width_kms": 1.0}


def _truth(**overrides):
    rows = [
        dict(id=1, x=10, y=10, z=5, flux=1.0, fwhm_major=1.0, fwhm_minor=0.5, pa=5.0,
             line_fwhm=4.0, snr=20.0),
        dict(id=2, x=40, y=40, z=20, flux=0.5, fwhm_major=0.0, fwhm_minor=0.0, pa=np.nan,
             line_fwhm=3.0, snr=7.0),
        dict(id=3, x=70, y=20, z=30, flux=0.2, fwhm_major=0.0, fwhm_minor=0.0, pa=np.nan,
             line_fwhm=3.0, snr=4.0),
        dict(id=4, x=20, y=70, z=10, flux=0.1, fwhm_major=0.0, fwhm_minor=0.0, pa=np.nan,
             line_fwhm=3.0, snr=2.0),
    ]
    for row in rows:
        row.update(overrides)
    return catalog_from_rows(rows, meta=dict(META))


def _found(rows):
    return catalog_from_rows(rows, meta=dict(META))


def _found_example():
    """Three of `_truth`'s four sources and a false one."""
    return _found([
        # truth 1, PA 175 = -10 deg from 5 deg modulo 180, flux +5%, size -20%
        dict(id=1, x=11, y=10, z=6, flux=1.05, fwhm_major=0.8, fwhm_minor=0.5, pa=175.0,
             line_fwhm=4.2, snr=19.0, flux_err=0.1),
        # truth 2: flux -20%, 1 beam away (limit: 1 beam)
        dict(id=2, x=45, y=40, z=20, flux=0.4, line_fwhm=3.0, snr=6.0, flux_err=0.05),
        # spurious
        dict(id=3, x=90, y=90, z=3, flux=0.3, snr=4.5),
        # truth 3 at the edge of the spectral window: |dz| = 3 = line FWHM in channels
        dict(id=4, x=70, y=21, z=33, flux=0.2, line_fwhm=3.0, snr=4.2, flux_err=0.1),
    ])


def test_known_completeness_purity_and_errors():
    report = score_catalog(_found_example(), _truth())
    assert isinstance(report, ScoreReport) and report.mode == "pixel"
    assert (report.n_truth, report.n_found, report.n_matched) == (4, 4, 3)
    assert report.completeness == pytest.approx(0.75)
    assert report.purity == pytest.approx(0.75)
    assert report.f1 == pytest.approx(0.75)
    assert sorted(zip(report.matches["truth_index"], report.matches["found_index"])) == [
        (0, 0), (1, 1), (2, 3)]
    flux = report.errors["flux"]
    assert flux.n == 3 and flux.median == pytest.approx(0.0)
    assert flux.fraction_within == pytest.approx(2 / 3)
    assert report.errors["fwhm_major"].median == pytest.approx(-0.2)
    pa = report.errors["pa"]
    assert pa.n == 1 and pa.median == pytest.approx(-10.0) and pa.fraction_within == 1.0
    position = report.errors["position"]
    assert sorted(report.matches["separation"]) == pytest.approx([0.2, 0.2, 1.0])
    assert position.fraction_within == pytest.approx(2 / 3)
    assert report.errors["flux_within_err"].fraction_within == pytest.approx(2 / 3)
    # per bin: truth SNR 20 / 7 / 4 / 2 -> one source per bin, the SNR-2 one missed
    assert [b["completeness"] for b in report.bins] == [0.0, 1.0, 1.0, 1.0]
    # found SNR: 19 (true), 6 (true), 4.5 (false), 4.2 (true)
    assert [b["n_found"] for b in report.bins] == [0, 2, 1, 1]
    assert report.bins[1]["purity"] == pytest.approx(0.5)
    assert report.bins[3]["errors"]["flux"].median == pytest.approx(0.05)


def test_matching_is_one_to_one_and_greedy_from_the_highest_truth_snr():
    truth = _truth()
    truth["x"][1] = 12 * u.pix  # truth 2 now sits next to truth 1
    truth["y"][1] = 10 * u.pix
    truth["z"][1] = 5 * u.pix
    found = _found([dict(id=1, x=11, y=10, z=5, flux=1.0, snr=10.0)])
    report = score_catalog(found, truth)
    assert report.n_matched == 1
    assert report.matches["truth_index"][0] == 0  # SNR 20 beats SNR 7, though both are near
    two = _found([dict(id=1, x=11.5, y=10, z=5, snr=10.0), dict(id=2, x=10.2, y=10, z=5,
                                                                 snr=3.0)])
    report = score_catalog(two, truth)
    pairs = dict(zip(report.matches["truth_index"], report.matches["found_index"]))
    assert pairs == {0: 1, 1: 0}  # truth 1 takes the closest, truth 2 the other


def test_confused_blends_are_reported_apart():
    """Truth 2 placed inside truth 1's limits (0.4 beam, same channel) is blended: one
    detection finds one of them, so completeness is 3/4 but 3/3 over separable sources.
    Moved 10 channels away in frequency it is separable again."""
    truth = _truth()
    truth["x"][1], truth["y"][1], truth["z"][1] = 12 * u.pix, 10 * u.pix, 5 * u.pix
    found = _found([dict(id=1, x=11, y=10, z=5, snr=19.0), dict(id=2, x=70, y=20, z=30,
                                                                snr=4.0),
                    dict(id=3, x=20, y=70, z=10, snr=2.5)])
    report = score_catalog(found, truth)
    assert (report.n_matched, report.n_separable) == (3, 3)
    assert report.completeness == pytest.approx(0.75)
    assert report.completeness_separable == pytest.approx(1.0)
    by_label = {b["label"]: b for b in report.bins}
    assert by_label["5-10"]["n_separable"] == 0  # truth 2 (SNR 7) is the blended one
    assert np.isnan(by_label["5-10"]["completeness_separable"])
    assert by_label[">=10"]["completeness_separable"] == 1.0
    table = report.to_table()
    assert list(table["n_separable"]) == [1, 1, 0, 1, 3]  # SNR 0-3, 3-5, 5-10, >=10, all
    assert report.to_dict()["completeness_separable"] == pytest.approx(1.0)
    truth["z"][1] = 15 * u.pix
    apart = score_catalog(found, truth)
    assert apart.n_separable == 4 and apart.completeness_separable == pytest.approx(0.75)


def test_separation_and_frequency_limits():
    truth = _truth()
    # 6 pixels > 1 beam (5 px) for the point source; 9 px < 1.0 arcsec major axis of truth 1
    found = _found([dict(id=1, x=46, y=40, z=20, snr=5.0), dict(id=2, x=19, y=10, z=5,
                                                                snr=5.0)])
    report = score_catalog(found, truth)
    assert list(report.matches["truth_index"]) == [0]
    # frequency: 5 channels > max(2, line FWHM 4 channels)
    report = score_catalog(_found([dict(id=1, x=10, y=10, z=10, snr=5.0)]), truth)
    assert report.n_matched == 0
    narrow = _truth(line_fwhm=0.5)  # below 2 channels: the 2-channel floor applies
    assert score_catalog(_found([dict(id=1, x=10, y=10, z=7, snr=5.0)]), narrow).n_matched == 1
    assert score_catalog(_found([dict(id=1, x=10, y=10, z=7.5, snr=5.)]), narrow).n_matched == 0


def test_sky_coordinates_give_the_same_matches():
    truth = _truth()
    for table in (truth,):
        table["ra"] = (150 - table["x"].value * 0.1 / 3600) * u.deg
        table["dec"] = (2 + table["y"].value * 0.1 / 3600) * u.deg
        table["freq"] = (230e9 - table["z"].value * 1e6) * u.Hz
    found = _found([dict(id=1, ra=150 - 11 * 0.1 / 3600, dec=2 + 10 * 0.1 / 3600,
                         freq=230e9 - 6e6, snr=10.0, x=np.nan, y=np.nan, z=np.nan),
                    dict(id=2, ra=150 - 70 * 0.1 / 3600, dec=2 + 20 * 0.1 / 3600,
                         freq=230e9 - 40e6, snr=5.0, x=np.nan, y=np.nan, z=np.nan)])
    report = score_catalog(found, truth, channel_width=1e6 * u.Hz)
    assert report.mode == "sky"
    assert list(report.matches["truth_index"]) == [0]  # the second is 10 channels off
    assert report.matches["separation"][0] == pytest.approx(0.2, rel=1e-3)
    assert report.matches["channel_offset"][0] == pytest.approx(1.0, rel=1e-3)


def test_report_outputs(tmp_path):
    truth = _truth()
    found = _found([dict(id=1, x=10, y=10, z=5, flux=1.0, snr=20.0)])
    report = score_catalog(found, truth)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_matched"] == 1 and data["snr_bins"][-1] is None
    assert data["errors"]["flux"]["median"] == 0.0
    table = report.to_table()
    assert list(table["snr_bin"]) == ["0-3", "3-5", "5-10", ">=10", "all"]
    assert table["completeness"][-1] == pytest.approx(0.25)
    text = str(report)
    assert "completeness 0.250" in text and "purity 1.000" in text
    report.plot(tmp_path / "score.png")
    assert (tmp_path / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report.to_json(tmp_path / "score.json")
    assert json.loads((tmp_path / "score.json").read_text())["purity"] == 1.0


def test_paths_and_empty_catalogues(tmp_path):
    truth = write_catalog(_truth(), tmp_path / "truth.ecsv")
    empty = write_catalog(_found([]), tmp_path / "found.ecsv")
    report = score_catalog(empty, truth)
    assert report.n_found == 0 and report.completeness == 0.0 and np.isnan(report.purity)
    assert report.f1 == 0.0


def test_explicit_beam_in_pixels_and_arcsec():
    truth = _truth()
    truth.meta.clear()
    found = _found([dict(id=1, x=13, y=10, z=5, snr=10.0)])
    found.meta.clear()
    common = dict(channel_width=1 * u.km / u.s)
    assert score_catalog(found, truth, beam=2.0, **common).n_matched == 0
    assert score_catalog(found, truth, beam=4.0, pixel_scale=0.1 * u.arcsec,
                         **common).n_matched == 1
    import radio_beam

    beam = radio_beam.Beam(0.4 * u.arcsec)
    assert score_catalog(found, truth, beam=beam, pixel_scale=0.1 * u.arcsec,
                         **common).n_matched == 1


def test_errors():
    truth, found = _truth(), _found([dict(id=1, x=10, y=10, z=5, snr=5.0)])
    with pytest.raises(ConfigError, match="snr_bins"):
        score_catalog(found, truth, snr_bins=(5,))
    with pytest.raises(ConfigError, match="frequency or a velocity"):
        score_catalog(found, truth, channel_width=3 * u.m)
    bare_t, bare_f = truth.copy(), found.copy()
    bare_t.meta.clear()
    bare_f.meta.clear()
    with pytest.raises(ConfigError, match="needs the beam"):
        score_catalog(bare_f, bare_t, pixel_scale=0.1 * u.arcsec)
    with pytest.raises(ConfigError, match="channel width"):
        score_catalog(bare_f, bare_t, beam=5.0)
    no_coords = found.copy()
    no_coords["x"] = np.nan * u.pix
    with pytest.raises(InputDataError, match="share neither"):
        score_catalog(no_coords, truth)


def test_beam_from_a_quantity_in_meta():
    truth, found = _truth(), _found([dict(id=1, x=10, y=10, z=5, snr=5.0)])
    for table in (truth, found):
        del table.meta["beam_major_arcsec"]
    truth.meta["beam_major"] = 500 * u.mas
    assert score_catalog(found, truth).n_matched == 1


def test_score_catalogs_pools_pairs_with_their_own_geometry():
    from astropy.table import QTable

    from deepfocus_radio.sources import score_catalogs

    truth = QTable({"x": [10.0, 30.0] * u.pix, "y": [10.0, 30.0] * u.pix, "z": [5.0, 8.0] * u.pix,
                    "snr": [4.0, 20.0], "flux": [1.0, 2.0] * u.Jy * u.km / u.s})
    # offset by 3 px: a match with a 4-px beam, none with a 2-px beam
    found = QTable({"x": [13.0, 30.0] * u.pix, "y": [10.0, 30.0] * u.pix, "z": [5.0, 8.0] * u.pix,
                    "snr": [4.0, 20.0], "flux": [1.1, 2.0] * u.Jy * u.km / u.s})
    wide = dict(beam=4.0, channel_width=1 * u.km / u.s)
    narrow = dict(beam=2.0, channel_width=1 * u.km / u.s)
    pooled = score_catalogs([(found, truth, wide), (found, truth, narrow)])
    assert (pooled.n_truth, pooled.n_found, pooled.n_matched) == (4, 4, 3)
    assert pooled.completeness == pytest.approx(0.75)
    assert list(pooled.matches["pair"]) == [0, 0, 1]
    single = score_catalog(found, truth, **wide)
    assert single.n_matched == 2
    assert pooled.errors["flux"].n == 3
    with pytest.raises(ConfigError, match="at least one"):
        score_catalogs([])


def _wilson(k, n, confidence=0.6827):
    """The Wilson score interval, from its formula (Wilson 1927)."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = z / (1 + z ** 2 / n) * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2))
    return centre - half, centre + half


def test_fractions_carry_their_wilson_intervals(tmp_path):
    report = score_catalog(_found_example(), _truth())
    assert report.completeness_interval == pytest.approx(_wilson(3, 4), abs=1e-6)
    low, high = _wilson(3, 4)
    assert f"completeness 0.750 [{low:.3f}, {high:.3f}]" in str(report)
    assert report.purity_interval == pytest.approx(_wilson(3, 4), abs=1e-6)
    assert report.errors["flux"].within_interval == pytest.approx(_wilson(2, 3), abs=1e-6)
    # found-SNR bin 3-5 holds one true and one false source; the truth bin 0-3 none found
    assert report.bins[1]["purity_interval"] == pytest.approx(_wilson(1, 2), abs=1e-6)
    low, high = report.bins[0]["completeness_interval"]
    assert low == pytest.approx(0.0, abs=1e-9) and high == pytest.approx(_wilson(0, 1)[1])
    assert report.bins[0]["purity_interval"][0] != report.bins[0]["purity_interval"][0]  # NaN
    table = report.to_table()
    assert table["completeness_low"][-1] == pytest.approx(_wilson(3, 4)[0], abs=1e-6)
    assert table["flux_within_high"][-1] == pytest.approx(_wilson(2, 3)[1], abs=1e-6)
    report.plot(tmp_path / "r.png")  # error bars, none for the empty purity bin
    assert (tmp_path / "r.png").stat().st_size > 0
    report.to_json(tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["completeness_interval"] == pytest.approx(list(_wilson(3, 4)), abs=1e-6)


def _grid_truth(n, snr):
    rows = [dict(id=i + 1, x=10 + 20 * (i % 5), y=10 + 20 * (i // 5), z=10, flux=1.0,
                 fwhm_major=0.0, fwhm_minor=0.0, pa=np.nan, line_fwhm=3.0, snr=snr[i])
            for i in range(n)]
    return catalog_from_rows(rows, meta=dict(META))


def test_compare_reports_counts_each_finders_sources_and_tests_them():
    from scipy.stats import binom

    from deepfocus_radio.sources import compare_reports, score_catalogs

    snr = [4.0] * 6 + [20.0] * 4
    truth = _grid_truth(10, snr)
    # the first finds all ten, fluxes within 10% but for source 9;
    # the second misses sources 0-5 (all SNR 4), fluxes 20% off for sources 6 and 7
    first = _found([dict(id=i + 1, x=truth["x"][i].value, y=truth["y"][i].value, z=10,
                         flux=1.3 if i == 9 else 1.02, line_fwhm=3.0, snr=snr[i])
                    for i in range(10)])
    second = _found([dict(id=i + 1, x=truth["x"][i].value, y=truth["y"][i].value, z=10,
                          flux=1.2 if i in (6, 7) else 1.0, line_fwhm=3.0, snr=snr[i])
                     for i in range(6, 10)])
    # two cubes: the same pair of catalogues twice
    a = score_catalogs([(first, truth), (first, truth)])
    b = score_catalogs([(second, truth), (second, truth)])
    table = compare_reports(a, b)
    assert list(table["snr_bin"]) == ["0-3", "3-5", "5-10", ">=10", "all"]
    low, high = table[1], table[3]
    assert (low["n_truth"], low["both"], low["only_first"], low["only_second"],
            low["neither"]) == (12, 0, 12, 0, 0)
    assert low["completeness_first"] == 1.0 and low["completeness_second"] == 0.0
    # exact McNemar: 12 discordant sources all one way, two-sided
    assert low["p_value"] == pytest.approx(2 * binom.pmf(0, 12, 0.5))
    assert (high["both"], high["only_first"], high["only_second"], high["p_value"]) == (
        8, 0, 0, 1.0)
    # fluxes of the 8 common sources: 2 within only in the second (9 twice), 4 only in
    # the first (6 and 7 twice): p = P(X <= 2 or X >= 4), X ~ Binomial(6, 1/2)
    assert (high["flux_both"], high["flux_only_first"], high["flux_only_second"]) == (8, 4, 2)
    expected = binom.cdf(2, 6, 0.5) + binom.sf(3, 6, 0.5)
    assert high["flux_p_value"] == pytest.approx(min(expected, 1.0))
    assert table[-1]["n_truth"] == 20 and table[-1]["only_first"] == 12
    # reversed order swaps the columns
    swapped = compare_reports(b, a)
    assert list(swapped["only_first"]) == list(table["only_second"])
    with pytest.raises(ConfigError, match="same truth"):
        compare_reports(a, score_catalogs([(first, _grid_truth(10, [5.0] * 10))]))


def test_a_test_sets_catalogues_travel_as_one_stacked_file(tmp_path, capsys):
    from astropy.table import QTable

    from deepfocus_radio.cli.main import main
    from deepfocus_radio.sources import (read_catalog, score_catalogs, split_catalogs,
                                         stack_catalogs)

    truth = QTable({"x": [10.0, 30.0] * u.pix, "y": [10.0, 30.0] * u.pix, "z": [5.0, 8.0] * u.pix,
                    "snr": [4.0, 20.0], "flux": [1.0, 2.0] * u.Jy * u.km / u.s})
    found = QTable({"x": [13.0, 30.0] * u.pix, "y": [10.0, 30.0] * u.pix, "z": [5.0, 8.0] * u.pix,
                    "snr": [4.0, 20.0], "flux": [1.1, 2.0] * u.Jy * u.km / u.s})
    # three cubes: a 4-px beam (the 3-px offset matches), a 2-px beam (it does not), and
    # a cube where nothing was found
    geometries = [dict(beam=0.4 * u.arcsec, pixel_scale=0.1 * u.arcsec,
                       channel_width=1 * u.km / u.s),
                  dict(beam=2.0, pixel_scale=0.1 * u.arcsec, channel_width=1e6 * u.Hz),
                  dict(beam=0.4 * u.arcsec, pixel_scale=0.1 * u.arcsec,
                       channel_width=1 * u.km / u.s)]
    direct = score_catalogs([(found, truth, geometries[0]), (found, truth, geometries[1]),
                             (found[:0], truth, geometries[2])])
    # per-cube meta (a cube's own beam) must not reach the other cubes; shared meta stays
    truths = []
    for beam in (0.4, 0.2, 0.4):
        copy = truth.copy()
        copy.meta.update(origin="test", beam_major=beam * u.arcsec)
        truths.append(copy)
    assert (direct.n_truth, direct.n_found, direct.n_matched) == (6, 4, 3)
    write_catalog(stack_catalogs([found, found, found[:0]], geometries), tmp_path / "found.ecsv")
    write_catalog(stack_catalogs(truths, geometries), tmp_path / "truth.ecsv")
    stacked = read_catalog(tmp_path / "found.ecsv")
    assert list(stacked["cube"]) == [0, 0, 1, 1]
    assert stacked.meta["cubes"][1] == {"beam_major_arcsec": pytest.approx(0.2),
                                        "pixel_scale_arcsec": 0.1, "channel_width_hz": 1e6}
    stacked_truth = read_catalog(tmp_path / "truth.ecsv")
    assert stacked_truth.meta["origin"] == "test" and "beam_major" not in stacked_truth.meta
    cubes = split_catalogs(tmp_path / "found.ecsv")
    assert [len(c) for c in cubes] == [2, 2, 0] and "cube" not in cubes[0].colnames
    # each cube's scales come back in its meta: no geometry needed to score them
    again = score_catalogs(list(zip(cubes, split_catalogs(tmp_path / "truth.ecsv"))))
    assert (again.n_truth, again.n_found, again.n_matched) == (6, 4, 3)
    assert list(again.matches["pair"]) == list(direct.matches["pair"]) == [0, 0, 1]
    # the command line scores a stacked pair the same way
    assert main(["score", str(tmp_path / "found.ecsv"), str(tmp_path / "truth.ecsv")]) == 0
    assert "matched 3 of 6 true sources with 4 found" in capsys.readouterr().out
    write_catalog(truth, tmp_path / "single.ecsv")
    assert main(["score", str(tmp_path / "found.ecsv"), str(tmp_path / "single.ecsv")]) == 1
    assert "stacked over cubes" in capsys.readouterr().err
    with pytest.raises(InputDataError, match="not a stacked catalogue"):
        split_catalogs(truth)
    with pytest.raises(ConfigError, match="needs the pixel scale"):
        stack_catalogs([truth], [dict(beam=4.0)])
    with pytest.raises(ConfigError, match="one geometry per catalogue"):
        stack_catalogs([truth, truth], [geometries[0]])


def test_a_cut_out_is_matched_on_the_sky_with_a_warning(three_sources):
    """A catalogue of a cut-out has its own pixel grid: matching its x, y against the full
    cube's truth would pair the wrong pixels. The grids are compared, and the sky is used."""
    import warnings

    from deepfocus_radio.exceptions import DeepFocusWarning
    from deepfocus_radio.sources import find_sources

    sim = three_sources
    dirty, truth = sim.to_spectral_cube("dirty"), sim.truth_catalog()
    geometry = dict(beam=sim.beam, pixel_scale=sim.pixel_scale,
                    channel_width=abs(sim.header["CDELT3"]) * u.Hz)
    whole = find_sources(dirty, None, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepFocusWarning)  # one grid: no warning
        same = score_catalog(whole, truth, **geometry)
    assert same.mode == "pixel" and same.n_matched == 3
    separations = {int(t): s for t, s in zip(same.matches["truth_index"],
                                             same.matches["separation"])}
    for z0, y0, x0 in ((0, 5, 9), (3, 0, 0)):  # a cut-out on the sky, a band cut in frequency
        cut = find_sources(dirty[z0:, y0:, x0:], None, progress=False)
        for row in cut:  # the same detections, z0, y0 and x0 pixels lower
            assert np.min(np.hypot(whole["x"].value - x0 - row["x"].value,
                                   whole["y"].value - y0 - row["y"].value)
                          + np.abs(whole["z"].value - z0 - row["z"].value)) < 0.1
        with pytest.warns(DeepFocusWarning, match="different grids") as caught:
            moved = score_catalog(cut, truth, **geometry)
        assert caught[0].filename == __file__  # it points at the caller's line
        assert moved.mode == "sky" and moved.n_matched == 3
        for t, separation in zip(moved.matches["truth_index"], moved.matches["separation"]):
            assert separation == pytest.approx(separations[int(t)], abs=0.02)  # beams
