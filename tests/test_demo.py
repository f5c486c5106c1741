"""The demo end to end: simulator, shipped model, pipeline, score, PNGs."""

import json

import pytest

from deepfocus_radio.cli.main import main


def test_demo_command_runs_the_whole_pipeline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--size", "64", "--channels", "24",
                 "--seed", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "sources found" in printed and "completeness" in printed
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["n_truth"] >= 8  # the demo field holds 8-12 sources
    assert 0 <= score["completeness"] <= 1 and score["pipeline_seconds"] > 0
    for name in ("catalog.ecsv", "truth.ecsv", "moment0.png", "completeness_purity.png"):
        assert (tmp_path / name).stat().st_size > 0
    from deepfocus_radio.sources import read_catalog

    catalog = read_catalog(tmp_path / "catalog.ecsv")
    assert catalog.meta["model"] == "alma" and len(catalog.meta["model_sha256"]) == 64


def test_find_sources_with_a_given_deconvolution_checks_its_shape():
    import numpy as np

    from deepfocus_radio.exceptions import InputDataError
    from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
    from deepfocus_radio.sources import find_sources

    sim = simulate_alma_cube(AlmaConfig(image_shape=(48, 48), n_channels_range=(16, 16),
                                        n_sources_range=(2, 2), snr_range=(30, 40)), seed=5)
    dirty = sim.to_spectral_cube("dirty")
    clean = sim.to_spectral_cube("clean")
    table, searched = find_sources(dirty, deconvolved=clean, return_deconvolved=True,
                                   progress=False)
    assert searched is clean and len(table) >= 1
    assert table.meta["model"] == "given deconvolved cube"
    with pytest.raises(InputDataError, match="deconvolution of this dirty cube"):
        find_sources(dirty, deconvolved=np.zeros((3, 4, 5)), progress=False)
