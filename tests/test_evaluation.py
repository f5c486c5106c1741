"""CI's run of the held-out evaluation (examples/evaluate_alma.py) on a few small cubes."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate_alma.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("evaluate_alma", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluation_script_scores_all_methods(tmp_path):
    evaluate_alma = _load_example()
    results, chosen = evaluate_alma.main(["--n-cubes", "2", "--size", "64", "--channels", "24",
                                          "--out", str(tmp_path)])
    psf_rows = {f"{m}+psf{cut}" for m in ("deepfocus", "dirty", "clean") for cut in ("", ">=4")}
    assert set(results) == ({"deepfocus", "dirty", "true-clean", "clean", "moment0",
                             "deepfocus+psf+dirty", "clean+psf+dirty"} | psf_rows)
    for method in ("deepfocus", "dirty", "clean"):  # the PSF fits keep every detection,
        for threshold, report in results[method].items():  # and may split some in two...
            assert report.n_found <= results[f"{method}+psf"][threshold].n_found <= (
                2 * report.n_found)
            # ...and the psf_snr cut only removes some
            assert (results[f"{method}+psf>=4"][threshold].n_found
                    <= results[f"{method}+psf"][threshold].n_found)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["chosen_thresholds"]) == set(results)
    ours = results["deepfocus"][chosen["deepfocus"]]
    assert ours.n_truth >= 4  # 2-8 sources per cube
    # the shipped network finds the bright sources of these cubes
    assert ours.n_matched >= 0.5 * sum(b["n_truth"] for b in ours.bins if b["snr_min"] >= 10)
    assert np.isfinite(saved["seconds_per_cube"]["deepfocus"])
    assert "| deepfocus |" in (tmp_path / "results.md").read_text()
    # the noiseless clean cube is the ceiling: nothing false is found in it
    ceiling = results["true-clean"][chosen["true-clean"]]
    assert ceiling.purity == 1.0 and ceiling.n_matched >= ours.n_matched - 1
    # the paired comparison: ours against every other method, on the same true sources
    paired = saved["paired"]
    assert paired["ours"] == "deepfocus+psf+dirty"
    assert set(paired["against"]) == set(results) - {"deepfocus+psf+dirty"}
    mine = results["deepfocus+psf+dirty"][chosen["deepfocus+psf+dirty"]]
    for method, rows in paired["against"].items():
        other = results[method][chosen[method]]
        overall = rows[-1]
        assert overall["snr_bin"] == "all" and overall["n_truth"] == mine.n_truth
        assert overall["both"] + overall["only_first"] == mine.n_matched
        assert overall["both"] + overall["only_second"] == other.n_matched
        assert 0.0 <= overall["p_value"] <= 1.0
    assert "Source by source" in (tmp_path / "results.md").read_text()
    # every catalogue is saved, and reads back with its units and cube numbers
    from deepfocus_radio.sources import read_catalog

    truth = read_catalog(tmp_path / "catalogs" / "truth.ecsv")
    assert len(truth) == ours.n_truth and set(truth["cube"]) == {0, 1}
    saved_ours = read_catalog(tmp_path / "catalogs" / f"deepfocus_{chosen['deepfocus']}.ecsv")
    assert len(saved_ours) == ours.n_found and saved_ours["flux"].unit.is_equivalent("Jy km/s")
    assert (tmp_path / "catalogs" / "deepfocus+psfge4_3.5.ecsv").exists()
    # ...with each cube's geometry: rescoring the saved files gives the same scores
    from deepfocus_radio.sources import score_catalogs

    name = f"deepfocus+psf+dirty_{chosen['deepfocus+psf+dirty']}"
    again = score_catalogs(evaluate_alma.read_catalogs(tmp_path / "catalogs", name),
                           snr_bins=evaluate_alma.SNR_BINS)
    assert (again.n_truth, again.n_found, again.n_matched) == (
        mine.n_truth, mine.n_found, mine.n_matched)
    assert again.errors["flux"].median == mine.errors["flux"].median


def test_evaluation_script_runs_the_calibration_cubes_but_records_only_the_test_set(tmp_path):
    evaluate_alma = _load_example()
    seen = []

    class Stop(Exception):
        pass

    def simulate(index, size, n_channels, seed_base=evaluate_alma.TEST_SEED, full_psf=True):
        seen.append((index, size, n_channels, seed_base))
        raise Stop

    evaluate_alma.simulate_test_cube = simulate
    with pytest.raises(Stop):
        evaluate_alma.main(["--seed-base", str(evaluate_alma.CALIBRATION_SEED), "--n-cubes", "1",
                            "--size", "64", "--channels", "24", "--out", str(tmp_path)])
    assert seen == [(0, 64, 24, evaluate_alma.CALIBRATION_SEED)]
    with pytest.raises(SystemExit):  # the card holds the test set's scores only
        evaluate_alma.main(["--seed-base", "9090", "--write-card", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())
