"""Forward throughput of the default 3D U-Net deconvolver (``create_model("unet")``).

Run with pytest-benchmark (CPU; CUDA too when present)::

    python -m pytest benchmarks/bench_models.py --benchmark-columns=mean,stddev,rounds

Each benchmark records ``voxels_per_s`` in ``extra_info`` (shown with
``--benchmark-json``) and prints it, with the time this implies for a 256x256x128 cube
(tile overlap not counted). ``python benchmarks/bench_models.py`` prints the same figures
without pytest. MONAI's UNet of the same widths (8, 16, 32, 64) is timed as a reference
point when MONAI is installed; it has one strided convolution per encoder level where ours has
a max pooling and two convolutions, so it does roughly half the arithmetic per voxel.
"""

import time

import pytest
import torch

from deepfocus_radio.models import count_parameters, create_model

TILE = (64, 64, 64)
BATCH = 4
CUBE_VOXELS = 128 * 256 * 256


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _inputs(device):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 1, *TILE, generator=generator).to(device)


def _forward(model, inputs):
    with torch.inference_mode():
        out = model(inputs)
    if inputs.is_cuda:
        torch.cuda.synchronize()
    return out


def _report(benchmark, label, model, seconds):
    rate = BATCH * TILE[0] * TILE[1] * TILE[2] / seconds
    benchmark.extra_info.update(voxels_per_s=rate, parameters=count_parameters(model),
                                threads=torch.get_num_threads(), batch=BATCH, tile=list(TILE))
    print(f"\n{label}: {count_parameters(model):,} parameters, {rate:,.0f} voxels/s "
          f"({torch.get_num_threads()} threads); a 256x256x128 cube in "
          f"{CUBE_VOXELS / rate:.1f} s")


@pytest.mark.parametrize("device", _devices())
def test_default_unet_forward_throughput(benchmark, device):
    model = create_model("unet", seed=0).eval().to(device)
    inputs = _inputs(device)
    out = benchmark.pedantic(_forward, args=(model, inputs), rounds=3, warmup_rounds=1)
    assert out.shape == inputs.shape
    _report(benchmark, f"deepfocus unet [{device}]", model, benchmark.stats.stats.mean)


@pytest.mark.parametrize("device", _devices())
def test_monai_unet_same_widths_throughput(benchmark, device):
    monai_nets = pytest.importorskip("monai.networks.nets")
    model = monai_nets.UNet(spatial_dims=3, in_channels=1, out_channels=1,
                            channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=0,
                            norm=None).eval().to(device)
    inputs = _inputs(device)
    out = benchmark.pedantic(_forward, args=(model, inputs), rounds=3, warmup_rounds=1)
    assert out.shape == inputs.shape
    _report(benchmark, f"MONAI UNet [{device}]", model, benchmark.stats.stats.mean)


def main():
    """Print the throughput of the default U-Net without pytest."""
    for device in _devices():
        model = create_model("unet", seed=0).eval().to(device)
        inputs = _inputs(device)
        _forward(model, inputs)
        start = time.perf_counter()
        for _ in range(3):
            _forward(model, inputs)
        rate = 3 * inputs.numel() / (time.perf_counter() - start)
        print(f"unet [{device}, {torch.get_num_threads()} threads]: {count_parameters(model):,} "
              f"parameters, {rate:,.0f} voxels/s; 256x256x128 cube in {CUBE_VOXELS / rate:.1f} s")


if __name__ == "__main__":
    main()
