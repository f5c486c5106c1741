"""Whole pipeline (deconvolve with the shipped model, detect, characterize) on one
256 x 256 x 128 ALMA-like cube, on this machine's CPU cores.

    OMP_NUM_THREADS=2 python -m pytest benchmarks/bench_pipeline.py --benchmark-columns=min,mean,rounds

The scores of the pipeline against the baselines (dirty search, CLEAN, photutils moment-0)
on a 50-cube test set come from ``examples/evaluate_alma.py``; this file records the time.
"""

import warnings

import pytest

from deepfocus_radio.exceptions import NoSourcesFoundWarning
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import find_sources

CONFIG = AlmaConfig(image_shape=(256, 256), n_channels_range=(128, 128), n_sources_range=(10, 10),
                    beam_fwhm_pixels_range=(4.0, 6.0))


@pytest.fixture(scope="module")
def sim():
    return simulate_alma_cube(CONFIG, seed=1, full_psf=True)


def _pipeline(cube, psf=None, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSourcesFoundWarning)
        return find_sources(cube, "alma", psf=psf, progress=False, **options)


def test_find_sources_256x256x128(benchmark, sim):
    dirty = sim.to_spectral_cube("dirty")
    table = benchmark.pedantic(_pipeline, args=(dirty,), rounds=2, iterations=1)
    benchmark.extra_info["sources"] = len(table)
    benchmark.extra_info["voxels"] = int(dirty.size)


def test_find_sources_with_psf_256x256x128(benchmark, sim):
    """The same, with the PSF refinement (find_sources(psf=...))."""
    dirty = sim.to_spectral_cube("dirty")
    table = benchmark.pedantic(_pipeline, args=(dirty, sim.psf), rounds=2, iterations=1)
    benchmark.extra_info["sources"] = len(table)
    benchmark.extra_info["refined"] = table.meta["psf_refined"]


def test_find_sources_with_full_psf_256x256x128(benchmark, sim):
    """The same, with the PSF over twice the image (every source's sidelobes modelled)."""
    dirty = sim.to_spectral_cube("dirty")
    table = benchmark.pedantic(_pipeline, args=(dirty, sim.psf_full), rounds=2, iterations=1)
    benchmark.extra_info["sources"] = len(table)
    benchmark.extra_info["refined"] = table.meta["psf_refined"]


def test_find_sources_as_evaluated_256x256x128(benchmark, sim):
    """Ours as the test set scores it (``deepfocus+psf+dirty``): the PSF over twice the
    image, ``psf_min_snr=4`` and the residual's candidates (``dirty_candidates=4``)."""
    dirty = sim.to_spectral_cube("dirty")
    table = benchmark.pedantic(_pipeline, args=(dirty, sim.psf_full), rounds=2, iterations=1,
                               kwargs=dict(threshold=3.5, psf_min_snr=4.0, dirty_candidates=4.0))
    benchmark.extra_info["sources"] = len(table)
    benchmark.extra_info["candidates_added"] = table.meta["dirty_candidates_added"]
