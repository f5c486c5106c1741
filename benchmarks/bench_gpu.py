"""Deconvolution throughput of the shipped "alma" model on CUDA against the CPU, one run.

A simulated 128 x 256 x 256 ALMA-like dirty cube is deconvolved by ``predict_tiled`` (the
engine under ``deconvolve`` and ``find_sources``) on the CPU with all its cores, on CUDA in
float32 (torch's defaults: TF32 convolutions), and on CUDA with bfloat16 autocast
(``amp=True``), each at the model card's tile and a larger batch. The figures are
Mvoxel/s of wall time (best of the rounds, after one warm-up call that loads the model and
CUDA's kernels), the speed-ups over the CPU, and each output's largest and median deviation
from the CPU's, in units of the cube's channel noise. Beside them, the bare batched forward
pass on CUDA (tiles already on the GPU) times the useful fraction of a tile gives the engine's
efficiency there, as ``bench_engine.test_tiling_overhead`` does on the CPU; and the whole
``find_sources`` pipeline is timed with the network on CUDA and on the CPU, twice: with the
PSF refinement, and as the test set scores it (``psf_min_snr=4`` and the residual's
candidates, ``dirty_candidates=4``; the PSF is the simulator's over twice the image in both).
Skipped without CUDA::

    python -m pytest benchmarks/bench_gpu.py -s --benchmark-columns=mean,rounds
"""

import time

import numpy as np
import pytest
import torch

from deepfocus_radio.inference import predict_tiled
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import find_sources

SHAPE = (128, 256, 256)
TILE, HALO = (32, 96, 96), (8, 24, 24)  # the "alma" card's
RUNS = (("cpu", False, 4, None), ("cuda", False, 4, None), ("cuda", False, 16, None),
        ("cuda", True, 16, None), ("cuda", False, 4, (64, 192, 192)))


def _best(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_against_cpu(benchmark):
    sim = simulate_alma_cube(AlmaConfig(image_shape=SHAPE[1:], n_channels_range=(SHAPE[0],) * 2,
                                        n_sources_range=(10, 10),
                                        beam_fwhm_pixels_range=(4.0, 6.0)), seed=0,
                             full_psf=True)
    dirty = np.asarray(sim.dirty, dtype=np.float32)
    noise = channel_noise(dirty)

    def run(device, amp, batch, tile):
        return predict_tiled(dirty, "alma", device=device, amp=amp, batch_size=batch,
                             tile=tile, halo=HALO if tile else None, noise=noise,
                             progress=False)

    def measure():
        figures = {}
        for device, amp, batch, tile in RUNS:
            run(device, amp, batch, tile)  # warm-up: model load, kernels, allocator
            seconds, out = _best(1 if device == "cpu" else 3,
                                 lambda: run(device, amp, batch, tile))
            figures[device, amp, batch, tile] = (seconds, out)
        return figures

    figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    cpu_seconds, reference = figures["cpu", False, 4, None]
    voxels = dirty.size / 1e6
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; cube {SHAPE}")
    for (device, amp, batch, tile), (seconds, out) in figures.items():
        deviation = np.abs(out - reference) / noise[:, None, None]
        print(f"{device:4s} amp={amp!s:5s} batch={batch:2d} tile={tile or TILE}: {seconds:6.2f} s, "
              f"{voxels / seconds:7.2f} Mvoxel/s, x{cpu_seconds / seconds:5.1f} vs CPU; "
              f"deviation from CPU max {deviation.max():.3g}, median "
              f"{np.median(deviation):.2g} noise rms")
        benchmark.extra_info[f"{device}_amp{amp}_batch{batch}_tile{tile}_s"] = seconds
    for tile, batch in ((TILE, 16), ((64, 192, 192), 4)):
        rate = _bare_forward_rate(tile, batch)
        useful = np.prod([(t - 2 * h) / t for t, h in zip(tile, HALO)])
        engine = figures["cuda", False, batch, None if tile == TILE else tile][0]
        print(f"bare forward on CUDA, batch {batch} of {tile}: {rate:.1f} Mvoxel/s; x useful "
              f"fraction {useful:.2f} = {rate * useful:.1f}; engine efficiency "
              f"{voxels / engine / (rate * useful):.2f}")
    catalogues = {}
    for name, options in (("with the PSF", {}),
                          ("as evaluated", dict(threshold=3.5, psf_min_snr=4.0,
                                                dirty_candidates=4.0))):
        for device in ("cuda", "cpu"):
            seconds, found = _best(1, lambda: find_sources(sim.to_spectral_cube("dirty"), "alma",
                                                           device=device, psf=sim.psf,
                                                           progress=False, **options))
            catalogues[name, device] = found
            print(f"find_sources {name}, network on {device}: {seconds:.1f} s, "
                  f"{len(found)} sources")
            benchmark.extra_info[f"find_sources {name} {device}_s"] = seconds
        assert len(catalogues[name, "cuda"]) == len(catalogues[name, "cpu"])
    assert all(np.isfinite(out).all() for _, out in figures.values())


def _bare_forward_rate(tile, batch, calls=10):
    """Mvoxel/s of the shipped model's forward pass on CUDA, input already on the GPU."""
    from deepfocus_radio.models import load_model

    model = load_model("alma", device="cuda").eval()
    inputs = torch.randn(batch, 1, *tile, device="cuda")
    with torch.inference_mode():
        model(inputs)
        seconds, _ = _best(3, lambda: [model(inputs) for _ in range(calls)])
    return calls * batch * np.prod(tile) / seconds / 1e6
