"""The shipped model on a cube made by CASA (simobserve + tclean): examples/evaluate_casa.py.

CASA is the optional 'bench' extra; without it this test is skipped.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from deepfocus_radio.baselines.casa import casa_available

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate_casa.py"


@pytest.mark.skipif(not casa_available(), reason="CASA (casatasks, casadata) is the optional "
                                                 "'bench' extra")
def test_pipeline_on_a_casa_simobserve_tclean_cube(tmp_path):
    spec = importlib.util.spec_from_file_location("evaluate_casa", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reports = module.main(["--n-cubes", "1", "--size", "64", "--channels", "16",
                           "--thresholds", "4", "5", "--out", str(tmp_path)])
    assert set(reports) == {4.0, 5.0, "4.0+psf", "5.0+psf", "4.0+psf>=4", "5.0+psf>=4"}
    report = reports[5.0]
    # CASA's 4D header (Stokes, LSRK, OBSGEO) is read, and the bright sources are found
    # where the sky model put them, with few false ones
    bright = sum(b["n_truth"] for b in report.bins if b["snr_min"] >= 10)
    assert bright >= 1 and report.n_matched >= bright
    assert report.purity >= 0.75
    assert report.errors["position"].median < 0.2  # beams
    # CASA's .psf (4D FITS) refines the same detections
    refined = reports["5.0+psf"]
    assert refined.n_found == report.n_found and refined.errors["position"].median < 0.2
    assert json.loads((tmp_path / "results.json").read_text())["thresholds"] == [4.0, 5.0]
