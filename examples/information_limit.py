"""How well can any method measure the held-out test set's sources? Cramer-Rao bounds.

    python examples/information_limit.py                        # the 50 test cubes
    python examples/information_limit.py --n-cubes 2 --size 64  # what CI runs

For every true source of the cubes of ``evaluate_alma.py`` (same seeds and ranges) the
bound of its flux and PA is computed in that cube's own noise (its power spectrum
measured on the dirty cube) with that cube's PSF, for a source alone with its line known
(:mod:`deepfocus_radio.sources.bounds`). Each bound gives the fraction of sources that an
unbiased estimator with Gaussian errors at the bound would bring within the issue's
tolerances (flux within 10%, PA within 10 deg of resolved sources: major axis >= 1.5 beam
major axes, as ``score_catalog``): the ceiling of those scores on this test set. The
``fit from truth`` rows are the PSF fit of the pipeline (``refine_with_psf``, with the
PSF over twice the image, as in ``evaluate_alma.py``) started from the true catalogue
(line, centre, shape and flux; the PA from a random angle, ``--seed``) on the real dirty
cube, neighbours included: the fitter's own ceiling.
With ``--ours`` the pipeline (the shipped model with the PSF fits at 4 sigma, the
``deepfocus+psf`` row of ``evaluate_alma.py``) runs too, and a second table gives the
bounds over the true sources it matches beside its own scores. Results go to
OUT/results.md and OUT/results.json.
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from scipy import special, stats

from deepfocus_radio.conventions import FWHM_TO_SIGMA, pa_to_pixel_angle
from deepfocus_radio.exceptions import NoSourcesFoundWarning
from deepfocus_radio.inference import deconvolve
from deepfocus_radio.sources import find_sources, score_catalog, score_catalogs
from deepfocus_radio.sources.bounds import cramer_rao_bound, noise_power_spectrum
from deepfocus_radio.sources.characterize import SkyGeometry
from deepfocus_radio.sources.psf_fit import cube_line_profile, gaussian_image, refine_with_psf
from evaluate_alma import (SNR_BINS, add_test_set_arguments, matching_geometry,
                           simulate_test_cube)

RESOLVED = 1.5  # beams (major axes), as score_catalog's resolved_factor
FLUX_TOLERANCE, PA_TOLERANCE = 0.1, 10.0


def within_angle(sigma_deg, tolerance=PA_TOLERANCE):
    """Probability that a Gaussian angle error of ``sigma_deg`` lies within ``tolerance``
    modulo 180 deg; beyond 300 deg the angle is random (``tolerance / 90``)."""
    sigma = np.atleast_1d(np.asarray(sigma_deg, dtype=float))
    wraps = 180.0 * np.arange(-5, 6)[:, None]
    scale = np.clip(sigma, 1e-9, None)[None, :]
    inside = (stats.norm.cdf((wraps + tolerance) / scale)
              - stats.norm.cdf((wraps - tolerance) / scale)).sum(axis=0)
    return np.where(sigma < 300.0, inside, tolerance / 90.0)


def source_bounds(sim, min_power=1e-9):
    """Per true source (rows in the truth's order): SNR, major axis (beams), relative flux
    error at the bound with the shape measured and with it known, PA error at the bound
    (deg); NaN for a source with no signal."""
    nchan, ny, nx = sim.dirty.shape
    power = noise_power_spectrum(sim.dirty)
    rms = float(np.median(sim.noise_rms))
    beam_px = (sim.beam.major / sim.pixel_scale).decompose().value
    rows = []
    for src in sim.sources:
        major = float(src["fwhm_major"]) * FWHM_TO_SIGMA
        minor = max(float(src["fwhm_minor"]) * FWHM_TO_SIGMA, 0.05)
        major = max(major, minor)
        angle = np.deg2rad(pa_to_pixel_angle(float(src["pa"])))
        profile = cube_line_profile(nchan, float(src["z"]), float(src["fwhm_z"]) * FWHM_TO_SIGMA)
        # the flux scale: the source's own dirty peak over the noise is the truth's SNR
        unit = np.fft.fft2(gaussian_image((ny, nx), nx // 2, ny // 2, major, minor, angle))
        z = int(np.clip(np.rint(src["z"]), 0, nchan - 1))
        near = range(max(z - 1, 0), min(z + 2, nchan))
        peak = max(profile[c] * np.real(np.fft.ifft2(
            unit * np.fft.fft2(np.fft.ifftshift(sim.psf[c])))).max() for c in near)
        if not (src["snr"] > 0 and peak > 0):  # no signal of its own: no bound
            rows.append((float(src["snr"]), np.nan, np.nan, np.nan, np.nan))
            continue
        flux = float(src["snr"]) * rms / peak
        cov = cramer_rao_bound(flux, major, minor, angle, profile, sim.psf, power,
                               min_power=min_power)
        known = cramer_rao_bound(flux, major, minor, angle, profile, sim.psf, power,
                                 free=("flux", "x", "y"), min_power=min_power)
        rows.append((float(src["snr"]), float(src["fwhm_major"]) / beam_px,
                     np.sqrt(cov[0, 0]) / flux, np.sqrt(known[0, 0]) / flux,
                     np.degrees(np.sqrt(cov[5, 5]))))
    return np.array(rows, dtype=float).reshape(-1, 5)


def fit_from_truth(sim, rng):
    """The pipeline's PSF fit started from the true catalogue (PA random)."""
    dirty = sim.to_spectral_cube("dirty")
    truth = sim.truth_catalog()
    start = truth.copy()
    start["pa"] = rng.uniform(0.0, 180.0, len(start)) * u.deg
    geometry = SkyGeometry(dirty.wcs, sim.beam, dirty.shape[0])
    found = refine_with_psf(start, dirty, sim.psf_full, noise=sim.noise_rms, geometry=geometry,
                            progress=False)
    return found, truth, matching_geometry(sim)


def ours(sim):
    """The pipeline's catalogue (``deepfocus+psf`` at 4 sigma) and the truth."""
    dirty = sim.to_spectral_cube("dirty")
    found = find_sources(dirty, "alma", deconvolved=deconvolve(dirty, "alma", progress=False),
                         threshold=4.0, psf=sim.psf_full, progress=False)
    return found, sim.truth_catalog(), matching_geometry(sim)


def summarize(bounds, report):
    """Per SNR bin and over all: the fractions within the tolerances at the bounds, and the
    measured fractions of ``report`` (None: none)."""
    bounds = bounds[np.isfinite(bounds[:, 1])]
    snr, major, flux_sigma, known_sigma, pa_sigma = bounds.T

    def flux_within(sigma):
        return special.erf(FLUX_TOLERANCE / (np.sqrt(2) * np.maximum(sigma, 1e-12)))

    flux_in, known_in = flux_within(flux_sigma), flux_within(known_sigma)
    pa_in = within_angle(pa_sigma)
    resolved = major >= RESOLVED
    rows = []
    edges = list(zip(SNR_BINS[:-1], SNR_BINS[1:])) + [(SNR_BINS[0], np.inf)]
    for k, (lo, hi) in enumerate(edges):
        in_bin = (snr >= lo) & (snr < hi)
        label = ("all" if k == len(edges) - 1
                 else f">={lo:g}" if np.isinf(hi) else f"{lo:g}-{hi:g}")
        row = {"snr": label, "n": int(in_bin.sum()), "n_resolved": int((in_bin & resolved).sum()),
               "flux_bound": float(flux_in[in_bin].mean()) if in_bin.any() else np.nan,
               "flux_bound_known_shape": (float(known_in[in_bin].mean())
                                          if in_bin.any() else np.nan),
               "pa_bound": (float(pa_in[in_bin & resolved].mean())
                            if (in_bin & resolved).any() else np.nan)}
        if report is not None:
            scores = report.bins[k]["errors"] if label != "all" else report.errors
            row["flux_measured"] = scores["flux"].fraction_within
            row["pa_measured"] = scores["pa"].fraction_within
        rows.append(row)
    return rows


def matched_bounds(bounds, pairs):
    """The rows of ``bounds`` (all cubes' sources, in order) of the true sources that the
    catalogues of ``pairs`` match."""
    rows, offset = [], 0
    for found, truth, geometry in pairs:
        report = score_catalog(found, truth, **geometry)
        rows.append(bounds[offset + np.asarray(report.matches["truth_index"], dtype=int)])
        offset += len(truth)
    return np.concatenate(rows)


def markdown(tables, args):
    lines = [f"Cramer-Rao bounds on {args.n_cubes} simulated cubes {args.size}x{args.size}x"
             f"{args.channels}, seeds from {args.seed_base}: the fraction of sources that an "
             "unbiased estimator at the bound brings within 10% (flux) and 10 deg (PA, "
             "resolved sources), beside the measured fractions"]
    for title, (measured, rows) in tables.items():
        lines += ["", f"{title}:", "", "| SNR | sources | resolved | flux within 10%, bound "
                  "(shape measured) | flux, bound (shape known) | PA within 10 deg, bound "
                  f"| flux, {measured} | PA, {measured} |", "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row['snr']} | {row['n']} | {row['n_resolved']} "
                         f"| {row['flux_bound']:.2f} | {row['flux_bound_known_shape']:.2f} "
                         f"| {row['pa_bound']:.2f} | {row.get('flux_measured', np.nan):.2f} "
                         f"| {row.get('pa_measured', np.nan):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_test_set_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random start angles")
    parser.add_argument("--no-fit", dest="fit", action="store_false",
                        help="skip the fit from the true catalogue")
    parser.add_argument("--min-power", type=float, default=1e-9,
                        help="noise power (fraction of the largest) below which Fourier modes "
                             "are left out of the bounds (cramer_rao_bound's min_power)")
    parser.add_argument("--ours", action="store_true",
                        help="also run the pipeline and bound the sources it matches")
    parser.add_argument("--out", default="results/information_limit")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    rng = np.random.default_rng(args.seed)
    bounds, from_truth, found = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSourcesFoundWarning)
        for index in tqdm(range(args.n_cubes), desc="bounds", unit="cube"):
            sim = simulate_test_cube(index, args.size, args.channels, args.seed_base)
            bounds.append(source_bounds(sim, args.min_power))
            if args.fit:
                from_truth.append(fit_from_truth(sim, rng))
            if args.ours:
                found.append(ours(sim))
    bounds = np.concatenate(bounds)
    tables = {"All true sources": (
        "fit from truth", summarize(bounds, score_catalogs(from_truth, snr_bins=SNR_BINS)
                                    if from_truth else None))}
    if found:
        tables["The true sources that ours (deepfocus+psf, 4 sigma) matches"] = (
            "ours", summarize(matched_bounds(bounds, found),
                              score_catalogs(found, snr_bins=SNR_BINS)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(tables, args)
    (out / "results.md").write_text(table + "\n")
    tables_json = {title: [{key: None if isinstance(value, float) and not np.isfinite(value)
                            else value for key, value in row.items()} for row in rows]
                   for title, (_, rows) in tables.items()}  # NaN is not JSON
    (out / "results.json").write_text(json.dumps({"args": vars(args), "tables": tables_json},
                                                 indent=1))
    print(table)
    return tables


if __name__ == "__main__":
    main()
