"""CI's run of examples/information_limit.py (Cramer-Rao bounds of the test set) on two
small cubes."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example():
    sys.path.insert(0, str(EXAMPLES))  # it imports the test set's ranges from evaluate_alma
    try:
        spec = importlib.util.spec_from_file_location("information_limit",
                                                      EXAMPLES / "information_limit.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def test_information_limit_script_bounds_every_bin(tmp_path):
    example = _load_example()
    tables = example.main(["--n-cubes", "2", "--size", "64", "--channels", "24", "--ours",
                           "--out", str(tmp_path)])
    (_, everyone), (_, matched) = tables.values()
    overall = everyone[-1]
    assert overall["snr"] == "all" and overall["n"] == sum(row["n"] for row in everyone[:-1])
    assert overall["n"] >= 4  # 2-8 sources per cube
    assert 0 < matched[-1]["n"] <= overall["n"]  # the sources ours matches are a subset
    for row in everyone + matched:
        if row["n"]:
            # knowing the shape can only help: its flux bound is the tighter one
            assert 0 < row["flux_bound"] <= row["flux_bound_known_shape"] <= 1
            assert 0 <= row["flux_measured"] <= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [rows[-1]["n"] for rows in saved["tables"].values()] == [overall["n"],
                                                                   matched[-1]["n"]]
    assert (tmp_path / "results.md").read_text().count("| all |") == 2


def test_a_random_angle_is_within_tolerance_in_a_ninth_of_cases():
    example = _load_example()
    assert np.allclose(example.within_angle([1e6, 400.0]), 10.0 / 90.0)
    assert np.isclose(example.within_angle(10.0)[0], 0.6827, atol=1e-3)  # one sigma
    assert example.within_angle(0.5)[0] > 0.999
