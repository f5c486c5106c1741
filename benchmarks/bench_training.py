"""Training throughput of the default ALMA deconvolver (samples/s), on CPU and CUDA.

The model, crops (32 x 64 x 64), batch size (4), optimizer and loss are those of
``examples/configs/alma_deconvolver.yaml``; the data are a small simulated ALMA-like set.
Run with pytest-benchmark::

    python -m pytest benchmarks/bench_training.py -s --benchmark-columns=mean,rounds

or without pytest: ``python benchmarks/bench_training.py [--threads N]``. The figure is
the training throughput of the last epoch (forward, loss, backward and optimizer step,
data loading included; validation excluded), also in voxels/s.
"""

import argparse
import tempfile
import time
from pathlib import Path

import pytest
import torch

from deepfocus_radio.simulation import simulate_dataset
from deepfocus_radio.training import load_config, train

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "alma_deconvolver.yaml"
SIMULATION = {"image_shape": (96, 96), "n_channels_range": (48, 48), "n_sources_range": (3, 6)}


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def measure(workdir, *, device="cpu", epochs=2, samples_per_cube=8):
    """Train the default deconvolver briefly; return (samples/s, voxels/s, seconds)."""
    workdir = Path(workdir)
    root = workdir / "data"
    if not root.exists():
        simulate_dataset(root, n_train=4, n_valid=1, n_test=0, config=SIMULATION, seed=0,
                         progress=False)
    overrides = [f"data.root={root}", f"output.dir={workdir / f'run_{device}'}",
                 "output.overwrite=true", f"train.epochs={epochs}", f"train.device={device}",
                 f"data.samples_per_cube={samples_per_cube}", "train.progress=false",
                 "train.early_stopping=null"]
    started = time.perf_counter()
    result = train(CONFIG, overrides=overrides)
    seconds = time.perf_counter() - started
    crop = load_config(CONFIG)["data"]["crop_size"]
    rate = result.history[-1]["samples_per_second"]
    return rate, rate * crop[0] * crop[1] * crop[2], seconds


@pytest.mark.parametrize("device", _devices())
def test_default_deconvolver_training_throughput(benchmark, device, tmp_path):
    rate, voxels, _ = benchmark.pedantic(measure, args=(tmp_path,), kwargs={"device": device},
                                         rounds=1, iterations=1)
    benchmark.extra_info.update(samples_per_s=rate, voxels_per_s=voxels,
                                threads=torch.get_num_threads())
    print(f"\ndefault deconvolver training [{device}]: {rate:.2f} samples/s "
          f"({voxels:,.0f} voxels/s, {torch.get_num_threads()} threads)")
    assert rate > 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        rate, voxels, seconds = measure(workdir, device=args.device, epochs=args.epochs)
    print(f"default deconvolver training [{args.device}]: {rate:.2f} samples/s "
          f"({voxels:,.0f} voxels/s, {torch.get_num_threads()} threads; run took "
          f"{seconds:.1f} s)")


if __name__ == "__main__":
    main()
