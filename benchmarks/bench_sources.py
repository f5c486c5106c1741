"""Time of the source-finding stages on one 256 x 256 x 128 ALMA-like cube (2 CPU cores).

Run with pytest-benchmark::

    OMP_NUM_THREADS=2 python -m pytest benchmarks/bench_sources.py --benchmark-columns=min,mean,rounds

or without pytest: ``python benchmarks/bench_sources.py [--rounds 3]``, which also prints
the score of the dirty-cube search and of a *perfect* deconvolution (the true clean cube
searched with the dirty cube's noise): the upper bound of what a network can give to this
detector and characterizer. The network's own time is measured in ``bench_engine.py``.
"""

import argparse
import time
import warnings

import numpy as np
import pytest

from deepfocus_radio.noise import channel_noise
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import characterize_sources, detect_sources, score_catalog
from deepfocus_radio.sources.continuum import ContinuumSubtracted

CONFIG = AlmaConfig(image_shape=(256, 256), n_channels_range=(128, 128),
                    n_sources_range=(10, 10))


@pytest.fixture(scope="module")
def cube():
    return simulate_alma_cube(CONFIG, seed=1, workers=2)


def _stages(sim, searched):
    """Continuum subtraction, detection and characterization with the dirty noise."""
    dirty = sim.to_spectral_cube("dirty")
    noise = channel_noise(sim.dirty)
    beam_pix = int(np.ceil(sim.beam.major.to_value("arcsec") / (abs(sim.header["CDELT2"]) * 3600)))
    searched = ContinuumSubtracted(searched, grow=beam_pix,
                                   min_pixels=max(1, int(np.pi / 16 * beam_pix**2)))
    detections = detect_sources(searched, noise=noise, noise_cube=sim.dirty, wcs=dirty.wcs,
                                beam=sim.beam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty catalogue is fine here
        return characterize_sources(searched, detections, noise=noise, wcs=dirty.wcs,
                                    beam=sim.beam, searched_noise=channel_noise(searched))


def test_detect_and_characterize_256x256x128(benchmark, cube):
    table = benchmark.pedantic(_stages, args=(cube, cube.dirty), rounds=2, iterations=1)
    benchmark.extra_info["sources"] = len(table)


def main(argv=None):
    """Print stage times and the scores of the dirty and perfect searches."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sim = simulate_alma_cube(CONFIG, seed=1, workers=2)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        found = _stages(sim, sim.dirty)
        times.append(time.perf_counter() - start)
    print(f"detect + characterize, {sim.dirty.shape} cube: best {min(times):.2f} s, "
          f"mean {np.mean(times):.2f} s over {args.rounds} rounds")
    truth = sim.truth_catalog()
    print("\nDirty cube searched:\n" + str(score_catalog(found, truth)))
    print("\nPerfect deconvolution (clean cube, dirty noise):\n"
          + str(score_catalog(_stages(sim, sim.clean), truth)))


if __name__ == "__main__":
    main()
