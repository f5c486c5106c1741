"""Benchmarks of the cube engine: tiling overhead, MONAI, out of core, FITS -> zarr, distributed.

Run with pytest-benchmark (each test prints its figures and stores them in ``extra_info``)::

    python -m pytest benchmarks/bench_engine.py -s --benchmark-columns=mean,rounds

Sizes scale with ``DEEPFOCUS_BENCH_SCALE`` (default 1: light, for a shared 2-core machine);
``DEEPFOCUS_BENCH_FITS_MIB`` sets the FITS -> zarr cube size (default 256; the issue's
figure is 2048). Ratios are always measured side by side in the same test. Memory is
measured in subprocesses, as anonymous resident memory (RSS minus file-backed pages such as
memory maps) above its level right after ``import torch``.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

SCALE = float(os.environ.get("DEEPFOCUS_BENCH_SCALE", "1"))
FITS_MIB = int(os.environ.get("DEEPFOCUS_BENCH_FITS_MIB", "256"))
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2") or 2)


def _scaled(shape, axes=(1, 2)):
    """``shape`` with the y/x axes multiplied by sqrt(SCALE) (rounded to 16)."""
    factor = SCALE ** (1 / len(axes))
    return tuple(max(16, int(round(n * factor / 16)) * 16) if i in axes else n
                 for i, n in enumerate(shape))


def _unet(**config):
    from deepfocus_radio.models import build_model

    return build_model({"arch": "unet", "dmode": "deconvolver", "spatial_dims": 3, **config},
                       seed=0).eval()


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _bare_forward(model, tile, batch, calls):
    """A function running ``calls`` forward passes of ``batch`` fresh tiles, in the
    channels-last layout that ``predict_tiled`` uses for 3D networks on CPU."""
    layout = torch.channels_last_3d
    model = copy.deepcopy(model).to(memory_format=layout)
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch, 1, *tile, generator=generator).contiguous(memory_format=layout)
              for _ in range(calls)]

    def forward():
        with torch.inference_mode():
            for tensor in inputs:
                model(tensor)

    return forward


@pytest.mark.parametrize("tile", [(16, 64, 64), (32, 64, 64), (32, 96, 96)])
def test_tiling_overhead(benchmark, tile):
    """predict_tiled throughput / (bare batched forward throughput x useful fraction).

    Also the machinery ratio: the bare forward time of exactly the tiles ``predict_tiled``
    runs, over its time (1 = reading, normalizing, scheduling and stitching cost nothing).
    The overhead ratio can exceed 1: tiles at the cube's edges need no halo there.
    """
    from deepfocus_radio.inference import predict_tiled
    from deepfocus_radio.inference.predict import resolve_tiling

    torch.set_num_threads(THREADS)
    # no pooling in chan, so a halo of 4 there needs no rounding to the pooling grid (8)
    model, halo, batch = _unet(pool_channels=False), (4, 8, 8), 4
    core = [t - 2 * h for t, h in zip(tile, halo)]
    shape = (core[0] * 2, core[1] * 2 * max(1, int(SCALE)), core[2] * 2)  # 8 x SCALE tiles
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    run = dict(tile=tile, halo=halo, batch_size=batch, progress=False, num_workers=1)
    settings = resolve_tiling(shape, model, 3, tile=tile, halo=halo, batch_size=batch)
    tiles = settings.layout(shape).tile_count()
    predict_tiled(data, model, **run)  # warm up (model cache, allocator)
    forward = _bare_forward(model, tile, batch, -(-tiles // batch))
    forward()
    pairs = []
    for _ in range(11):  # interleaved pairs: forward times vary by ~20% from call to call
        pairs.append((_timed(forward)[1], _timed(predict_tiled, data, model, **run)[1]))
    benchmark.pedantic(lambda: None, rounds=1)
    # throughput ratios from the median of the pairs' time ratios (each pair ran
    # back to back, so slow spells of the machine cancel)
    machinery = float(np.median([b / t for b, t in pairs]))
    fraction = float(np.prod([c / t for c, t in zip(core, tile)]))
    voxels_per_tile_run = np.prod(shape) / (tiles * np.prod(tile))
    figures = dict(tile=list(tile), halo=list(halo), cube=list(shape), useful_fraction=fraction,
                   overhead_ratio=machinery * voxels_per_tile_run / fraction,
                   plain_ratio=machinery * voxels_per_tile_run,
                   voxels_per_s=np.prod(shape) / float(np.median([t for _, t in pairs])),
                   tiles_run=tiles, machinery_ratio=machinery)
    benchmark.extra_info.update(figures)
    print("\ntiling overhead", json.dumps(figures))
    assert figures["overhead_ratio"] > 0.3


def _whole(model, data, sigma):
    """The reference: the network once on the whole noise-normalized cube."""
    inputs = torch.from_numpy((data / sigma[:, None, None]).astype(np.float32))[None, None]
    with torch.inference_mode():
        out = model(inputs)[0, 0].numpy()
    return out * sigma[:, None, None]


def _deviation(result, reference):
    return float(np.abs(result - reference).max() / np.ptp(reference))


def _best_time(repeats, function, *args, **kwargs):
    """(result, fastest of ``repeats`` runs in seconds)."""
    runs = [_timed(function, *args, **kwargs) for _ in range(repeats)]
    return runs[0][0], min(seconds for _, seconds in runs)


def _monai(model, data, sigma, tile, overlap, mode):
    from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy((data / sigma[:, None, None]).astype(np.float32))[None, None]
    with torch.inference_mode():
        out = sliding_window_inference(inputs, tile, 2, model, overlap=overlap, mode=mode,
                                       padding_mode="reflect")
    return out[0, 0].numpy() * sigma[:, None, None]


def test_against_monai_sliding_window(benchmark):
    """Speed at equal agreement with the whole-cube pass (max |diff| / dynamic range).

    Same network (the default 4-level U-Net), same cube, same window size (32, 96, 96), same
    reference (the network once on the whole cube). Ours varies the halo, MONAI the overlap
    and blending. MONAI is run twice: with the model as given, and with the model and its
    input in the channels-last layout that ``predict_tiled`` uses on CPU, so the ratio
    that comes from the tiling alone is also reported.
    """
    pytest.importorskip("monai")
    from deepfocus_radio.inference import predict_tiled
    from deepfocus_radio.noise import channel_noise

    torch.set_num_threads(THREADS)
    model = _unet()
    data = np.random.default_rng(1).normal(size=_scaled((32, 160, 160))).astype(np.float32)
    data[10:14, 40:48, 50:58] += 10.0
    sigma = channel_noise(data)
    reference = _whole(model, data, sigma)
    window = (32, 96, 96)
    run = dict(tile=window, batch_size=2, noise=sigma, progress=False, num_workers=1)
    predict_tiled(data, model, **run)  # warm up; both tools get the same noise
    ours = {}
    for halo in (0, 8, 16, 24, 32):
        result, seconds = _best_time(2, predict_tiled, data, model, halo=(0, halo, halo), **run)
        ours[f"halo{halo}"] = (_deviation(result, reference), seconds)
    last = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)
    figures = {}
    for label, network in (("as given", model), ("channels-last", last)):
        theirs = {}
        for mode in ("gaussian", "constant"):
            for overlap in (0.25, 0.5, 0.75):
                result, seconds = _best_time(2, _monai, network, data, sigma, window, overlap,
                                             mode)
                theirs[f"{mode}-{overlap}"] = (_deviation(result, reference), seconds)
        figures[label] = _equal_agreement(ours, theirs)
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update(figures)
    print("\nvs MONAI", json.dumps(figures, default=float, indent=1))


def test_blend_crop_vs_linear(benchmark):
    """Overlap reconciliation: agreement with the whole pass and time, crop vs linear."""
    from deepfocus_radio.inference import predict_tiled
    from deepfocus_radio.noise import channel_noise

    torch.set_num_threads(THREADS)
    model = _unet()
    data = np.random.default_rng(3).normal(size=_scaled((32, 128, 128))).astype(np.float32)
    data[10:14, 40:48, 50:58] += 10.0
    sigma = channel_noise(data)
    figures = {}
    reference = _whole(model, data, sigma)
    predict_tiled(data, model, tile=(32, 64, 64), progress=False, num_workers=1)  # warm up
    for halo in [(8, 8, 8), (8, 16, 16)]:
        for blend in ("crop", "linear"):
            result, seconds = _timed(predict_tiled, data, model, tile=(32, 64, 64), halo=halo,
                                     blend=blend, batch_size=2, progress=False, num_workers=1)
            figures[f"{blend}-halo{halo[1]}"] = {
                "deviation": float(np.abs(result - reference).max() / np.ptp(reference)),
                "seconds": seconds}
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update(figures)
    print("\nblend", json.dumps(figures))


def _equal_agreement(ours, theirs):
    """Speed ratios at equal agreement: for each MONAI setting, MONAI's time over the time of
    our fastest setting that is at least as close to the whole pass (None if none is)."""
    figures = {"ours": dict(ours), "monai": theirs, "speedup": {}}
    for key, (deviation, seconds) in theirs.items():
        matching = [s for d, s in ours.values() if d <= deviation]
        figures["speedup"][key] = seconds / min(matching) if matching else None
    figures["best_agreement"] = {"ours": min(d for d, _ in ours.values()),
                                 "monai": min(d for d, _ in theirs.values())}
    return figures


#: Prelude of the memory-measuring subprocesses: anonymous resident memory (RSS minus
#: file-backed pages such as memory maps and libraries), sampled in a thread.
_MEMORY_PROBE = textwrap.dedent("""
    import json, sys, threading, time
    import psutil, torch
    process = psutil.Process()
    def anonymous():
        info = process.memory_info()
        return info.rss - info.shared
    after_torch = anonymous()
    class Peak:
        def __init__(self, interval):
            self.value, self._done = 0, threading.Event()
            def sample():
                while not self._done.is_set():
                    self.value = max(self.value, anonymous())
                    time.sleep(interval)
            threading.Thread(target=sample, daemon=True).start()
        def stop(self):
            self._done.set()
            return self.value
""")

_OUT_OF_CORE = _MEMORY_PROBE + textwrap.dedent("""
    import numpy as np
    import deepfocus_radio
    from deepfocus_radio.inference import deconvolve
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Tanh(),
                                torch.nn.Conv3d(2, 1, 1)).eval()
    after_imports = anonymous()
    peak = Peak(0.01)
    start = time.perf_counter()
    deconvolve(sys.argv[1], model, tile=(16, 96, 96), halo=(1, 1, 1), batch_size=1,
               out=sys.argv[2], progress=False, num_workers=1, threads=2)
    seconds = time.perf_counter() - start
    highest = peak.stop()
    print(json.dumps({"seconds": seconds,
                      "peak_above_imports_mib": (highest - after_imports) / 2**20,
                      "peak_above_torch_mib": (highest - after_torch) / 2**20}))
""")


def _random_store(path, shape):
    """A zarr cube store of noise, written chunk by chunk (never whole in memory)."""
    from astropy.io import fits
    from astropy import units as u
    import radio_beam

    from deepfocus_radio.io.zarr_store import create_store

    header = fits.Header()
    header.update(CTYPE1="RA---SIN", CRVAL1=150.0, CDELT1=-1e-5, CRPIX1=1, CUNIT1="deg",
                  CTYPE2="DEC--SIN", CRVAL2=2.0, CDELT2=1e-5, CRPIX2=1, CUNIT2="deg",
                  CTYPE3="FREQ", CRVAL3=230e9, CDELT3=1e6, CRPIX3=1, CUNIT3="Hz")
    beam = radio_beam.Beam(0.2 * u.arcsec)
    array = create_store(path, shape=shape, dtype=np.float32, chunks=(16, 256, 256),
                         header=header, unit=u.Jy / u.beam, beam=beam)
    rng = np.random.default_rng(0)
    for start in range(0, shape[0], 16):
        array[start:start + 16] = rng.normal(size=(min(16, shape[0] - start),) + shape[1:]) \
            .astype(np.float32)
    return path


def test_out_of_core(benchmark, tmp_path):
    """Peak memory stays under a budget on a cube 4x larger; time per voxel stays flat.

    The cube grows along the spectral axis; memory is measured above the level after the
    imports (torch, deepfocus_radio and its dependencies), and also reported above the level
    right after ``import torch``.
    """
    budget_mib = 256  # network workspace, a wave of input chunks, the noise pass, the codecs
    base = (max(16, int(128 * SCALE)), 512, 512)  # 128 MiB x SCALE; 8x = 4x the budget
    results = {}
    for factor in (1, 2, 4, 8):
        shape = (base[0] * factor, base[1], base[2])
        source = _random_store(tmp_path / f"in{factor}.zarr", shape)
        output = subprocess.run([sys.executable, "-c", _OUT_OF_CORE, str(source),
                                 str(tmp_path / f"out{factor}.zarr")], check=True,
                                capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "2"})
        figures = json.loads(output.stdout.strip().splitlines()[-1])
        figures["cube_mib"] = np.prod(shape) * 4 / 2**20
        figures["ns_per_voxel"] = figures["seconds"] / np.prod(shape) * 1e9
        results[factor] = figures
        shutil.rmtree(source)
        shutil.rmtree(tmp_path / f"out{factor}.zarr")
    benchmark.pedantic(lambda: None, rounds=1)
    per_voxel = [r["ns_per_voxel"] for r in results.values()]
    summary = {"budget_mib": budget_mib, "runs": results,
               "time_per_voxel_spread": max(per_voxel) / min(per_voxel) - 1}
    benchmark.extra_info.update(summary)
    print("\nout of core", json.dumps(summary, default=float))
    assert results[8]["cube_mib"] >= 4 * budget_mib
    assert max(r["peak_above_imports_mib"] for r in results.values()) < budget_mib


_CONVERT = _MEMORY_PROBE + textwrap.dedent("""
    import os, shutil, tempfile, warnings
    from spectral_cube import SpectralCube
    from deepfocus_radio.io import fits_to_zarr
    peak = Peak(0.02)
    start = time.perf_counter()
    if sys.argv[1] == "ours":
        fits_to_zarr(sys.argv[2], sys.argv[3], chunks=(16, 256, 256), progress=False)
    elif sys.argv[1] == "copy":
        shutil.copyfile(sys.argv[2], sys.argv[3])
    else:
        warnings.simplefilter("ignore")
        os.environ["TMPDIR"] = sys.argv[3]
        tempfile.tempdir = sys.argv[3]
        cube = SpectralCube.read(sys.argv[2], use_dask=True)
        cube = cube.rechunk((16, 256, 256), save_to_tmp_dir=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds,
                      "peak_above_torch_mib": (peak.stop() - after_torch) / 2**20}))
""")


def _big_fits(path, mib):
    """A float32 FITS cube of ``mib`` MiB written plane by plane (StreamingHDU)."""
    from astropy.io import fits

    nchan = max(1, mib * 2**20 // (512 * 512 * 4))
    header = fits.PrimaryHDU(np.zeros((1, 1, 1), np.float32)).header
    header.update(NAXIS1=512, NAXIS2=512, NAXIS3=nchan, CTYPE1="RA---SIN", CRVAL1=150.0,
                  CDELT1=-1e-5, CRPIX1=1, CUNIT1="deg", CTYPE2="DEC--SIN", CRVAL2=2.0,
                  CDELT2=1e-5, CRPIX2=1, CUNIT2="deg", CTYPE3="FREQ", CRVAL3=230e9, CDELT3=1e6,
                  CRPIX3=1, CUNIT3="Hz", BUNIT="Jy/beam", BMAJ=1e-4, BMIN=1e-4, BPA=0.0)
    stream = fits.StreamingHDU(path, header)
    rng = np.random.default_rng(0)
    for _ in range(nchan):
        stream.write(rng.normal(size=(1, 512, 512)).astype(np.float32))
    stream.close()
    return path


def _convert(kind, src, dst):
    output = subprocess.run([sys.executable, "-c", _CONVERT, kind, str(src), str(dst)],
                            check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def test_fits_to_zarr_vs_spectral_cube(benchmark, tmp_path):
    """fits_to_zarr vs spectral-cube's rechunk(save_to_tmp_dir=True), and a plain copy."""
    src = _big_fits(tmp_path / "big.fits", FITS_MIB)
    (tmp_path / "sc_tmp").mkdir()
    figures = {"cube_mib": src.stat().st_size / 2**20}
    figures["copy"] = _convert("copy", src, tmp_path / "copy.fits")
    figures["ours"] = _convert("ours", src, tmp_path / "ours.zarr")
    figures["spectral_cube"] = _convert("spectral-cube", src, tmp_path / "sc_tmp")
    benchmark.pedantic(lambda: None, rounds=1)
    figures["speedup_vs_spectral_cube"] = (figures["spectral_cube"]["seconds"]
                                           / figures["ours"]["seconds"])
    figures["time_vs_copy"] = figures["ours"]["seconds"] / figures["copy"]["seconds"]
    benchmark.extra_info.update(figures)
    print("\nFITS -> zarr", json.dumps(figures, default=float))
    assert figures["ours"]["peak_above_torch_mib"] < 500


def test_distributed_two_workers_vs_one(benchmark):
    """predict_tiled on LocalCluster with 2 worker processes vs 1 (1 thread each)."""
    from distributed import Client, LocalCluster

    from deepfocus_radio.inference import predict_tiled

    model = _unet(block_sizes=[8, 16, 32])
    data = np.random.default_rng(2).normal(size=_scaled((32, 192, 192))).astype(np.float32)
    seconds = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            run = dict(tile=(32, 64, 64), halo=(4, 8, 8), batch_size=2, client=client,
                       progress=False, threads=1)
            predict_tiled(data[:, :64, :64], model, **run)  # start workers, build models
            seconds[workers] = _timed(predict_tiled, data, model, **run)[1]
    benchmark.pedantic(lambda: None, rounds=1)
    figures = {"seconds": seconds, "speedup": seconds[1] / seconds[2], "cube": list(data.shape)}
    benchmark.extra_info.update(figures)
    print("\ndistributed", json.dumps(figures, default=float))
