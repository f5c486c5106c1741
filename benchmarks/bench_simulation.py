"""Time to simulate one 256 x 256 x 128 ALMA-like cube (target: under 5 s on 2 cores).

Run with pytest-benchmark::

    OMP_NUM_THREADS=2 python -m pytest benchmarks/bench_simulation.py --benchmark-columns=min,mean,stddev,rounds

or without pytest: ``python benchmarks/bench_simulation.py [--workers 2] [--rounds 3]``.
The cube has 10 sources, the built-in 43 x 12 m array with a 2-hour track (60 s
integrations: 108,360 visibilities per channel), Briggs weighting, and the full pipeline:
per-channel gridding and PSF, dirty and clean convolutions on the padded grid, correlated
noise, truth measurement. Writing FITS files is timed separately
(``test_write_256x256x128``).
"""

import argparse
import tempfile
import time

import pytest

from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube

CONFIG = AlmaConfig(
    image_shape=(256, 256),
    n_channels_range=(128, 128),
    n_sources_range=(10, 10),
    track_hours_range=(2.0, 2.0),
    hour_angle_range=(-1.0, 1.0),
    weighting="briggs",
)
WORKERS = 2


def test_simulate_alma_256x256x128(benchmark):
    cube = benchmark.pedantic(simulate_alma_cube, args=(CONFIG,), kwargs={"seed": 1, "workers": WORKERS},
                              rounds=3, iterations=1, warmup_rounds=1)
    assert cube.dirty.shape == (128, 256, 256)
    benchmark.extra_info["voxels"] = cube.dirty.size


@pytest.fixture(scope="module")
def cube():
    return simulate_alma_cube(CONFIG, seed=1, workers=WORKERS)


def test_write_256x256x128(benchmark, cube, tmp_path):
    benchmark.pedantic(cube.write, args=(tmp_path, 0), kwargs={"overwrite": True}, rounds=3, iterations=1)


def main(argv=None):
    """Print the best and mean time of ``--rounds`` simulations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    simulate_alma_cube(CONFIG, seed=0, workers=args.workers)  # warm-up
    times, cpu = [], []
    for round_ in range(args.rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        cube = simulate_alma_cube(CONFIG, seed=round_ + 1, workers=args.workers)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cube.write(folder, 0)
        written = time.perf_counter() - start
    print(f"simulate 256x256x128 ALMA-like cube, {args.workers} FFT threads: "
          f"best {min(times):.2f} s, mean {sum(times) / len(times):.2f} s over {args.rounds} rounds "
          f"(CPU time of all threads: mean {sum(cpu) / len(cpu):.2f} s); "
          f"writing the FITS products {written:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
