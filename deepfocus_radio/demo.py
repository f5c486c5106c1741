"""The demo: simulate an ALMA-like cube, find its sources, score them against the truth.

This is what ``deepfocus demo`` runs: everything from the shipped default model and the
simulator, nothing to download, about a minute on 2 CPU cores.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["DemoResult", "demo_config", "run_demo", "plot_moment_maps"]


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    catalog, truth : `~astropy.table.QTable`
        Found and true sources (catalogue schema of DESIGN.md).
    report : `~deepfocus_radio.sources.ScoreReport`
        Score of ``catalog`` against ``truth``.
    files : dict of str -> pathlib.Path
        Written outputs (catalogue, truth, report, PNGs).
    seconds : float
        Wall time of the pipeline (deconvolution, detection, characterization), s.
    """

    catalog: object
    truth: object
    report: object
    files: dict
    seconds: float


def demo_config(*, image_size=128, n_channels=64):
    """Simulator settings of the demo cube: a crowded field at typical ALMA sampling.

    Parameters
    ----------
    image_size : int, optional
        Image side, pixels.
    n_channels : int, optional
        Number of channels.

    Returns
    -------
    `~deepfocus_radio.simulation.AlmaConfig`
    """
    from deepfocus_radio.simulation import AlmaConfig

    return AlmaConfig(image_shape=(image_size, image_size), n_channels_range=(n_channels, n_channels),
                      beam_fwhm_pixels_range=(3.5, 5.5), n_sources_range=(8, 12),
                      snr_range=(3.0, 40.0), continuum_fraction=0.0)


def run_demo(output_dir="demo_output", *, model="alma", seed=7, image_size=128, n_channels=64,
             progress=True):
    """Run the whole pipeline on one simulated cube (with its PSF: find_sources(psf=...))
    and write the results.

    Parameters
    ----------
    output_dir : str or path-like, optional
        Folder for ``catalog.ecsv``, ``truth.ecsv``, ``score.json``, ``moment0.png`` and
        ``completeness_purity.png`` (created; files in it are replaced).
    model : str, path-like or torch.nn.Module, optional
        Deconvolution network (default: the shipped ``"alma"`` model).
    seed : int, optional
        Seed of the simulated cube.
    image_size, n_channels : int, optional
        Size of the simulated cube.
    progress : bool, optional
        Progress bars.

    Returns
    -------
    DemoResult
    """
    from deepfocus_radio.simulation import simulate_alma_cube
    from deepfocus_radio.sources import find_sources, score_catalog, write_catalog

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_alma_cube(demo_config(image_size=image_size, n_channels=n_channels), seed=seed,
                             full_psf=True)
    dirty = sim.to_spectral_cube("dirty")
    start = time.perf_counter()
    # the simulator's PSF refines fluxes and shapes on the dirty cube; over twice the image
    # (as a .psf imaged over twice the field), it models every source's sidelobes
    catalog, deconvolved = find_sources(dirty, model, psf=sim.psf_full, progress=progress,
                                        return_deconvolved=True)
    seconds = time.perf_counter() - start
    truth = sim.truth_catalog()
    report = score_catalog(catalog, truth, beam=sim.beam, pixel_scale=sim.pixel_scale,
                           channel_width=abs(sim.header["CDELT3"]) * dirty.spectral_axis.unit)
    files = {"catalog": out / "catalog.ecsv", "truth": out / "truth.ecsv",
             "score": out / "score.json", "moment0": out / "moment0.png",
             "completeness_purity": out / "completeness_purity.png"}
    write_catalog(catalog, files["catalog"], overwrite=True)
    write_catalog(truth, files["truth"], overwrite=True)
    files["score"].write_text(json.dumps(dict(report.to_dict(), pipeline_seconds=seconds), indent=2))
    plot_moment_maps(sim.dirty, np.asarray(deconvolved), sim.clean, catalog, truth, files["moment0"])
    report.plot(files["completeness_purity"])
    return DemoResult(catalog, truth, report, files, seconds)


def plot_moment_maps(dirty, deconvolved, clean, catalog, truth, path):
    """Save moment-0 maps (sum over channels) of three cubes with sources marked.

    Parameters
    ----------
    dirty, deconvolved, clean : ndarray, shape (nchan, ny, nx)
        Dirty, network-deconvolved and true clean cubes, Jy/beam.
    catalog, truth : `~astropy.table.QTable`
        Found sources (circles) and true sources (crosses), with ``x``, ``y`` in pixels.
    path : str or path-like
        Output PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("dirty", dirty), ("deconvolved (alma)", deconvolved), ("true clean", clean)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), sharex=True, sharey=True)
    limits = np.nanpercentile(np.nansum(clean, axis=0), [0.5, 99.8])
    for ax, (title, cube) in zip(axes, panels):
        image = ax.imshow(np.nansum(cube, axis=0), origin="lower", cmap="inferno",
                          vmin=limits[0], vmax=limits[1])
        ax.plot(_px(truth["x"]), _px(truth["y"]), "x", color="cyan", ms=7, label="truth")
        ax.plot(_px(catalog["x"]), _px(catalog["y"]), "o", mfc="none", color="lime", ms=11,
                label="found")
        ax.set_title(f"moment 0: {title}")
        ax.set_xlabel("x (pix)")
    axes[0].set_ylabel("y (pix)")
    axes[0].legend(loc="upper right", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.85, label="sum over channels (Jy/beam)")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _px(column):
    return np.asarray(getattr(column, "value", column), dtype=float)
