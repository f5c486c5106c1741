"""Training throughput of the default ALMA deconvolvers (samples/s), on CPU and CUDA.

Two configurations are timed, with their own model, crop, batch size, optimizer and loss:

* ``examples/configs/alma_default.yaml`` — how the shipped ``"alma"`` model is trained
  (3-level U-Net, 12 x 64 x 64 crops, batch 4);
* ``examples/configs/alma_deconvolver.yaml`` — the models' ``unet`` preset (4 levels,
  8-64 channels) on 32 x 64 x 64 crops, batch 4.

The data are a small simulated ALMA-like set (4 training cubes of 48 x 96 x 96). Run with
pytest-benchmark::

    python -m pytest benchmarks/bench_training.py -s --benchmark-columns=mean,rounds

or without pytest: ``python benchmarks/bench_training.py [--threads N] [--epochs N]``.
Figures: training throughput of the last epoch (forward, loss, backward, optimizer step and
data loading; validation excluded) in samples/s and voxels/s of wall time, and the CPU
time per training sample of the whole run (validation included), which is the robust
figure on a shared machine.
"""

import argparse
import tempfile
import time
from pathlib import Path

import pytest
import torch

from deepfocus_radio.simulation import simulate_dataset
from deepfocus_radio.training import load_config, train

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
NAMES = ("alma_default.yaml", "alma_deconvolver.yaml")
SIMULATION = {"image_shape": (96, 96), "n_channels_range": (48, 48), "n_sources_range": (3, 6)}
N_TRAIN = 4


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def measure(workdir, name, *, device="cpu", epochs=2, samples_per_cube=8):
    """Train one configuration briefly.

    Returns
    -------
    dict
        ``samples_per_s`` and ``voxels_per_s`` (last epoch, wall time),
        ``cpu_s_per_sample`` (whole run) and ``wall_s``.
    """
    workdir = Path(workdir)
    root = workdir / "data"
    if not root.exists():
        simulate_dataset(root, n_train=N_TRAIN, n_valid=1, n_test=0, config=SIMULATION,
                         seed=0, progress=False)
    overrides = [f"data.root={root}", f"output.dir={workdir / f'run_{name}_{device}'}",
                 "output.overwrite=true", f"train.epochs={epochs}", f"train.device={device}",
                 f"data.samples_per_cube={samples_per_cube}", "train.progress=false",
                 "train.early_stopping=null"]
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(CONFIGS / name, overrides=overrides)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    crop = load_config(CONFIGS / name)["data"]["crop_size"]
    rate = result.history[-1]["samples_per_second"]
    return {"samples_per_s": rate, "voxels_per_s": rate * crop[0] * crop[1] * crop[2],
            "cpu_s_per_sample": cpu / (epochs * N_TRAIN * samples_per_cube), "wall_s": wall}


def _line(name, device, figures):
    return (f"{name} [{device}]: {figures['samples_per_s']:.2f} samples/s "
            f"({figures['voxels_per_s']:,.0f} voxels/s), {figures['cpu_s_per_sample']:.2f} "
            f"CPU s per sample, {torch.get_num_threads()} threads")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("device", _devices())
def test_deconvolver_training_throughput(benchmark, device, name, tmp_path):
    figures = benchmark.pedantic(measure, args=(tmp_path, name), kwargs={"device": device},
                                 rounds=1, iterations=1)
    benchmark.extra_info.update(figures, threads=torch.get_num_threads())
    print("\n" + _line(name, device, figures))
    assert figures["samples_per_s"] > 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--config", choices=NAMES, action="append", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.config or NAMES:
            figures = measure(workdir, name, device=args.device, epochs=args.epochs)
            print(_line(name, args.device, figures) + f"; run took {figures['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
