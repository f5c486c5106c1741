"""Score the shipped "alma" model and the baselines on a held-out simulated test set.

    python examples/evaluate_alma.py                         # 50 cubes, all methods
    python examples/evaluate_alma.py --n-cubes 4 --size 64   # what CI runs (tests/test_evaluation.py)

Methods, each run with the same detector and characterizer (deepfocus_radio.sources):
  deepfocus      the shipped network deconvolves the dirty cube;
  dirty          no deconvolution: the dirty cube is searched;
  clean          image-domain Hogbom CLEAN (CASA's ``deconvolve`` with --casa) with the
                 simulator's PSF, restored with the common beam;
  true-clean     the simulator's noiseless sky convolved with the clean beam: the ceiling
                 of the detector and characterizer (what a perfect deconvolver would give);
  <method>+psf   the same catalogue refined by PSF-convolved fits to the dirty cube
                 (find_sources(psf=...), deepfocus_radio.sources.psf_fit);
  <method>+psf>=K  and without the sources whose fitted flux is below K sigma there
                 (find_sources(psf=..., psf_min_snr=K); --psf-min-snr, default 4);
  deepfocus+psf+dirty  ours with psf_min_snr=K, plus the detections that ours lacks
                 in the residual of its PSF fits (the dirty cube minus its sources),
                 kept at psf_snr >= D (dirty_candidates=D; --dirty-candidates,
                 default 4, chosen on the calibration cubes);
  clean+psf+dirty  the same for CLEAN's catalogue: what the pipeline's steps after
                 the deconvolution give without the network;
and photutils segmentation of the moment-0 map (a classical baseline users know).
Detection thresholds and SNR always refer to the dirty cube's noise. Each method is scored
at several thresholds; the table compares them at equal purity (the lowest threshold whose
purity reaches --purity). A second table compares ours with each other method source by
source at those thresholds (deepfocus_radio.sources.compare_reports: the true sources only
one of the two finds, per SNR bin, and the exact McNemar test of the difference), with the
68% intervals of ours. Results go to OUT/results.json and OUT/results.md; every method's
catalogues at every threshold and the truth go to OUT/catalogs/*.ecsv (a ``cube`` column
numbers the test cubes).
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from spectral_cube import SpectralCube

from deepfocus_radio.baselines import hogbom_clean, moment0_catalog
from deepfocus_radio.exceptions import NoSourcesFoundWarning
from deepfocus_radio.inference import deconvolve
from deepfocus_radio.simulation import AlmaConfig, simulate_alma_cube
from deepfocus_radio.sources import (compare_reports, find_sources, score_catalogs,
                                     split_catalogs, stack_catalogs, write_catalog)
from deepfocus_radio.sources.psf_fit import apply_psf_cuts

#: Held-out test distribution: the training ranges of the shipped model, other seeds.
TEST_SEED = 777
#: Seeds of the cubes that calibrate ``flux_err`` (same distribution, not the test set).
CALIBRATION_SEED = 9090
THRESHOLDS = (3.5, 4.0, 5.0)
SNR_BINS = (0, 3, 5, 10, np.inf)


def test_config(size, n_channels):
    return AlmaConfig(image_shape=(size, size), n_channels_range=(n_channels, n_channels),
                      beam_fwhm_pixels_range=(3.0, 8.0), n_sources_range=(2, 8),
                      snr_range=(2.0, 50.0), source_fwhm_range=(0.0, 2.0))


def simulate_test_cube(index, size, n_channels, seed_base=TEST_SEED, full_psf=True):
    """Cube ``index`` of the test set (or of the calibration set, ``CALIBRATION_SEED``),
    with the PSF over twice the image (``psf_full``) unless ``full_psf=False``."""
    seed = np.random.SeedSequence([seed_base, index]).generate_state(1)[0]
    return simulate_alma_cube(test_config(size, n_channels), seed=int(seed), full_psf=full_psf)


def test_psf(sim, args):
    """The PSF that CLEAN and the PSF fits get: over twice the image, so that every
    source's sidelobes across the image are modelled, or with ``--image-psf`` over the
    image only (CASA's ``.psf``)."""
    return sim.psf if args.image_psf else sim.psf_full


def matching_geometry(sim):
    """Beam, pixel scale and channel width of a simulated cube, for score_catalog."""
    return dict(beam=sim.beam, pixel_scale=sim.pixel_scale,
                channel_width=abs(sim.header["CDELT3"]) * u.Hz)


def add_test_set_arguments(parser):
    """The options that choose the test cubes: how many, their size and channels."""
    parser.add_argument("--n-cubes", type=int, default=50)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--seed-base", type=int, default=TEST_SEED,
                        help=f"the cubes' first seed ({TEST_SEED}: the test set; "
                             f"{CALIBRATION_SEED}: the calibration cubes)")


def clean_baseline(sim, dirty, *, casa, psf):
    """CLEAN-deconvolved cube (Jy/beam, common beam) of a simulated dirty cube; CASA's
    ``deconvolve`` takes a PSF of the image's size, Hogbom ``psf``."""
    noise = np.asarray(sim.noise_rms, dtype=float)
    if casa:
        import tempfile

        from astropy.io import fits

        from deepfocus_radio.baselines.casa import casa_clean
        with tempfile.TemporaryDirectory() as tmp:
            path = casa_clean(sim.dirty, sim.psf, sim.product_header("dirty"), Path(tmp) / "c.fits",
                              threshold=1.5 * float(np.median(noise)) * u.Jy / u.beam,
                              restoring_beam=sim.beam)
            restored = fits.getdata(path)
    else:
        restored = hogbom_clean(sim.dirty, psf, sim.beam, sim.pixel_scale, noise=noise)
    return SpectralCube(restored * dirty.unit, dirty.wcs, beam=dirty.beam)


def run_cube(index, args):
    """Catalogues of every method and threshold for one test cube."""
    sim = simulate_test_cube(index, args.size, args.channels, args.seed_base)
    dirty = sim.to_spectral_cube("dirty")
    geometry = matching_geometry(sim)
    psf = test_psf(sim, args)
    times, found = {}, {}
    start = time.perf_counter()
    searched = {"deepfocus": deconvolve(dirty, args.model, progress=False)}
    times["deepfocus"] = time.perf_counter() - start
    searched["dirty"] = None
    searched["true-clean"] = sim.to_spectral_cube("clean")
    if args.clean:
        start = time.perf_counter()
        searched["clean"] = clean_baseline(sim, dirty, casa=args.casa, psf=psf)
        times["clean"] = time.perf_counter() - start
    psf_methods = {"deepfocus", "dirty", "clean"} if args.psf else set()
    deconvolution_time = dict(times)
    for method, cube in searched.items():
        for refine in (False, True) if method in psf_methods else (False,):
            name = f"{method}+psf" if refine else method
            for threshold in THRESHOLDS:
                start = time.perf_counter()
                found[name, threshold] = find_sources(
                    dirty, None if cube is None else args.model, deconvolved=cube,
                    threshold=threshold, psf=psf if refine else None, progress=False)
                if threshold == THRESHOLDS[0]:  # whole pipeline: deconvolution + one search
                    times[name] = (deconvolution_time.get(method, 0.0)
                                   + time.perf_counter() - start)
                if refine:  # what psf_min_snr would keep
                    found[f"{name}>={args.psf_min_snr:g}", threshold] = apply_psf_cuts(
                        found[name, threshold], args.psf_min_snr)
                    times[f"{name}>={args.psf_min_snr:g}"] = times[name]
    for method in ("deepfocus", "clean") if args.psf else ():
        if method not in searched:
            continue
        for threshold in THRESHOLDS:  # the same cuts and residual candidates for CLEAN
            start = time.perf_counter()
            found[f"{method}+psf+dirty", threshold] = find_sources(
                dirty, args.model, deconvolved=searched[method], threshold=threshold,
                psf=psf, psf_min_snr=args.psf_min_snr, dirty_candidates=args.dirty_candidates,
                progress=False)
            if threshold == THRESHOLDS[0]:
                times[f"{method}+psf+dirty"] = (deconvolution_time[method]
                                                + time.perf_counter() - start)
    for threshold in THRESHOLDS:
        start = time.perf_counter()
        found["moment0", threshold] = moment0_catalog(dirty, nsigma=threshold)
        times.setdefault("moment0", time.perf_counter() - start)
    return found, sim.truth_catalog(), geometry, times


def summarize(per_cube, purity_goal):
    """Score each method at each threshold and pick the threshold at the purity goal."""
    results = {}
    keys = per_cube[0][0].keys()
    for key in keys:
        pairs = [(found[key], truth, geometry) for found, truth, geometry, _ in per_cube]
        report = score_catalogs(pairs, snr_bins=SNR_BINS)
        results.setdefault(key[0], {})[key[1]] = report
    chosen = {}
    for method, by_threshold in results.items():
        passing = [t for t, r in sorted(by_threshold.items()) if r.purity >= purity_goal]
        chosen[method] = passing[0] if passing else max(by_threshold)
    return results, chosen


def bin_value(report, label, key):
    for b in report.bins:
        if b["label"] == label:
            return b[key]
    return float("nan")


def completeness_above(report, snr, *, separable=False):
    """Completeness of the true sources with SNR >= ``snr`` (a bin edge), over all of them
    or over those that no brighter true source blends (``separable``)."""
    bins = [b for b in report.bins if b["snr_min"] >= snr]
    found = sum(b["n_detected_separable" if separable else "n_detected"] for b in bins)
    total = sum(b["n_separable" if separable else "n_truth"] for b in bins)
    return found / total if total else float("nan")


def ours_method(chosen):
    """The row that stands for our pipeline: with the PSF and the dirty cube's candidates
    when they were run, else the network alone."""
    return "deepfocus+psf+dirty" if "deepfocus+psf+dirty" in chosen else "deepfocus"


def compare_with_ours(results, chosen):
    """Ours against every other method, each at its chosen threshold, source by source:
    ``{method: compare_reports(ours, method)}``."""
    ours = ours_method(chosen)
    return {method: compare_reports(results[ours][chosen[ours]], results[method][threshold])
            for method, threshold in chosen.items() if method != ours}


def paired_markdown(results, chosen, comparisons):
    """The table of :func:`compare_with_ours`'s ``comparisons``, and ours' intervals."""
    ours = ours_method(chosen)
    mine = results[ours][chosen[ours]]
    lines = [f"Source by source, at the thresholds above: ours (`{ours}`) against each method. "
             "Per truth-SNR bin, the true sources that only ours finds / only the other "
             "finds, and the exact McNemar p-value of that difference (small: more than "
             "chance); for fluxes, the SNR >= 10 sources both find, within 10% in only ours / "
             "only the other.", "",
             "| against | SNR 3-5 | p | SNR 5-10 | p | SNR >= 10 | p | all | p "
             "| flux within 10% (SNR >= 10) | p |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, table in comparisons.items():
        rows = {row["snr_bin"]: row for row in table}
        cells = []
        for label in ("3-5", "5-10", ">=10", "all"):
            row = rows[label]
            cells += [f"{row['only_first']} / {row['only_second']}", f"{row['p_value']:.2g}"]
        high = rows[">=10"]
        cells += [f"{high['flux_only_first']} / {high['flux_only_second']}",
                  f"{high['flux_p_value']:.2g}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    low = next(b for b in mine.bins if b["label"] == "3-5")
    flux = next(b for b in mine.bins if b["label"] == ">=10")["errors"]["flux"]
    pa = mine.errors["pa"]
    lines += ["", "Ours with 68% (Wilson) intervals: completeness SNR 3-5 "
              f"{_with_interval(low['completeness'], low['completeness_interval'])} "
              f"({low['n_detected']} of {low['n_truth']}), purity "
              f"{_with_interval(mine.purity, mine.purity_interval)}, flux within 10% at "
              f"SNR >= 10 {_with_interval(flux.fraction_within, flux.within_interval)} "
              f"({flux.n} sources), PA within 10 deg "
              f"{_with_interval(pa.fraction_within, pa.within_interval)} "
              f"({pa.n} resolved sources)."]
    return "\n".join(lines)


def _with_interval(value, interval):
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def write_catalogs(per_cube, folder):
    """Every method's catalogues at every threshold, and the truth, one ECSV file each: the
    test cubes stacked with a ``cube`` column and each cube's matching scales
    (``stack_catalogs``; :func:`read_catalogs` reads them back)."""
    folder.mkdir(parents=True, exist_ok=True)
    geometries = [geometry for *_, geometry, _ in per_cube]
    tables = {("truth",): [truth for _, truth, _, _ in per_cube]}
    for key in per_cube[0][0]:
        tables[key] = [found[key] for found, *_ in per_cube]
    for key, parts in tables.items():
        name = "_".join(str(part) for part in key).replace(">=", "ge")
        write_catalog(stack_catalogs(parts, geometries), folder / f"{name}.ecsv",
                      overwrite=True)


def read_catalogs(folder, name):
    """The (found, truth) pairs of one saved method and threshold (file stem ``name``,
    e.g. ``"deepfocus_4.0"``), ready for ``score_catalogs``."""
    return list(zip(split_catalogs(folder / f"{name}.ecsv"),
                    split_catalogs(folder / "truth.ecsv")))


def markdown(results, chosen, times, args):
    which = ("Held-out simulated ALMA test set" if args.seed_base == TEST_SEED
             else "Simulated ALMA cubes (not the test set)")
    lines = [f"{which}: {args.n_cubes} cubes of {args.size}x{args.size}"
             f"x{args.channels}, seeds from {args.seed_base}; each method at the lowest threshold "
             f"(dirty-cube sigma) with purity >= {args.purity}. CLEAN and the PSF fits get "
             + ("the PSF over the image only (CASA's .psf)." if args.image_psf else
                "the PSF over twice the image (every sidelobe within the image)."), "",
             "Completeness SNR >= 5 is given over all true sources / over the separable ones "
             "(not blended by a brighter true source within the matching limits).", "",
             "| method | threshold | completeness SNR 3-5 | SNR 5-10 | SNR >= 10 "
             "| SNR >= 5 all / separable | purity | F1 "
             "| flux within 10% (SNR>=10) | PA within 10 deg | median size err | median line err "
             "| position err (beam) | s per cube |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, threshold in chosen.items():
        r = results[method][threshold]
        high = next(b for b in r.bins if b["label"] == ">=10")
        lines.append(
            f"| {method} | {threshold} | {bin_value(r, '3-5', 'completeness'):.2f} "
            f"| {bin_value(r, '5-10', 'completeness'):.2f} | {bin_value(r, '>=10', 'completeness'):.2f} "
            f"| {completeness_above(r, 5):.2f} / {completeness_above(r, 5, separable=True):.2f} "
            f"| {r.purity:.2f} | {r.f1:.2f} | {high['errors']['flux'].fraction_within:.2f} "
            f"| {r.errors['pa'].fraction_within:.2f} "
            f"| {r.errors['fwhm_major'].median:+.3f} "
            f"| {r.errors['line_fwhm'].median:+.3f} | {r.errors['position'].median:.3f} "
            f"| {np.mean(times.get(method, [np.nan])):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_test_set_arguments(parser)
    parser.add_argument("--model", default="alma")
    parser.add_argument("--purity", type=float, default=0.95)
    parser.add_argument("--no-clean", dest="clean", action="store_false")
    parser.add_argument("--casa", action="store_true", help="CLEAN with CASA (bench extra)")
    parser.add_argument("--no-psf", dest="psf", action="store_false",
                        help="skip the <method>+psf rows (PSF refinement)")
    parser.add_argument("--psf-min-snr", type=float, default=4.0,
                        help="psf_snr cut of the <method>+psf>=K rows (default 4)")
    parser.add_argument("--dirty-candidates", type=float, default=4.0,
                        help="psf_snr that the detections in the residual of the PSF fits "
                             "need in the deepfocus+psf+dirty row (default 4)")
    parser.add_argument("--image-psf", action="store_true",
                        help="give CLEAN and the PSF fits the PSF over the image only (CASA's "
                             ".psf), not over twice the image: sidelobes from farther than "
                             "half the image are then not modelled")
    parser.add_argument("--out", default="results/alma_eval")
    parser.add_argument("--write-card", action="store_true",
                        help="record the scores in the shipped model's card (alma.json, alma.md)")
    parser.add_argument("--calibrate", type=int, default=0, metavar="N",
                        help="first calibrate flux_err on N other cubes and record it in the card")
    args = parser.parse_args(argv)
    if args.write_card and args.seed_base != TEST_SEED:
        parser.error(f"--write-card records the test set's scores: leave --seed-base at "
                     f"{TEST_SEED}")
    if args.calibrate:
        calibrate_flux_error(args)
    from tqdm import tqdm

    per_cube = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSourcesFoundWarning)
        for index in tqdm(range(args.n_cubes), desc="evaluate", unit="cube"):
            per_cube.append(run_cube(index, args))
    results, chosen = summarize(per_cube, args.purity)
    times = {}
    for *_, t in per_cube:
        for key, value in t.items():
            times.setdefault(key, []).append(value)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, chosen, times, args)
    comparisons = compare_with_ours(results, chosen)
    paired = paired_markdown(results, chosen, comparisons)
    (out / "results.md").write_text(table + "\n\n" + paired + "\n")
    write_catalogs(per_cube, out / "catalogs")
    (out / "results.json").write_text(json.dumps(
        {"args": vars(args), "chosen_thresholds": chosen,
         "paired": {"ours": ours_method(chosen), "against": {
             m: [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(c.colnames, row)}
                 for row in c] for m, c in comparisons.items()}},
         "scores": {m: {str(t): r.to_dict() for t, r in by.items()} for m, by in results.items()},
         "seconds_per_cube": {k: float(np.mean(v)) for k, v in times.items()}}, indent=1))
    print(table + "\n\n" + paired)
    print(f"\ndeepfocus at threshold {chosen['deepfocus']}:\n{results['deepfocus'][chosen['deepfocus']]}")
    if args.write_card:
        with_psf = (results["deepfocus+psf"][chosen["deepfocus+psf"]]
                    if "deepfocus+psf" in results else None)
        write_card(results["deepfocus"][chosen["deepfocus"]], chosen["deepfocus"],
                   table + "\n\n" + paired, args, with_psf=with_psf)
    return results, chosen


def calibrate_flux_error(args):
    """Measure the network's fractional flux error on calibration cubes (not the test set)
    and record it in the card: ``flux_err = hypot(noise term, f * flux)`` then holds about
    68% of the flux errors, as a 1-sigma error should."""
    import dataclasses

    from tqdm import tqdm

    from deepfocus_radio.models import get_pretrained_info
    from deepfocus_radio.models.pretrained import default_weights_dir

    card = get_pretrained_info(args.model)
    threshold = card.scores.get("threshold_sigma", THRESHOLDS[0])
    pairs, psf_pairs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSourcesFoundWarning)
        for index in tqdm(range(args.calibrate), desc="calibrate", unit="cube"):
            sim = simulate_test_cube(index, args.size, args.channels, CALIBRATION_SEED)
            dirty = sim.to_spectral_cube("dirty")
            found, searched = find_sources(dirty, args.model, threshold=threshold,
                                           return_deconvolved=True, progress=False)
            refined = find_sources(dirty, args.model, threshold=threshold, deconvolved=searched,
                                   psf=test_psf(sim, args), progress=False)
            geometry = matching_geometry(sim)
            pairs.append((found, sim.truth_catalog(), geometry))
            psf_pairs.append((refined, sim.truth_catalog(), geometry))
    fraction, n = fit_flux_fraction(pairs)
    psf_fraction, _ = fit_flux_fraction(psf_pairs, key="psf_flux_fractional_error")
    calibration = {"flux_fractional_error": round(fraction, 4),
                   "psf_flux_fractional_error": round(psf_fraction, 4),
                   "measured_on": f"{n} matched sources in {args.calibrate} simulated cubes "
                                  f"{args.size}x{args.size}x{args.channels}, seeds from "
                                  f"{CALIBRATION_SEED}, threshold {threshold} sigma "
                                  "(examples/evaluate_alma.py --calibrate); psf_: after "
                                  "find_sources(psf=...)"}
    card = dataclasses.replace(card, calibration=calibration)
    card.write(default_weights_dir() / f"{card.name}.json")
    print(f"flux_fractional_error = {fraction:.3f}, psf_flux_fractional_error = "
          f"{psf_fraction:.3f} ({n} sources)")
    return fraction


def fit_flux_fraction(pairs, coverage=0.6827, key="flux_fractional_error"):
    """The fraction ``f`` for which ``|flux - true| <= hypot(noise_err, f * flux)`` holds for
    ``coverage`` of the matched sources of ``pairs`` ((found, truth, geometry) tuples); the
    noise term is ``flux_err`` without the fractional term the catalogues already hold
    (``meta[key]``)."""
    report = score_catalogs(pairs, snr_bins=SNR_BINS)
    matches = report.matches
    which = matches["pair"] if "pair" in matches.colnames else np.zeros(len(matches), int)
    delta, noise, flux = [], [], []
    for k, t, f in zip(which, matches["truth_index"], matches["found_index"]):
        found, truth, _ = pairs[int(k)]
        measured = found["flux"][f].to_value(u.Jy * u.km / u.s)
        err = found["flux_err"][f].to_value(u.Jy * u.km / u.s)
        old = found.meta.get(key, 0.0) * abs(measured)
        delta.append(abs(measured - truth["flux"][t].to_value(u.Jy * u.km / u.s)))
        noise.append(np.sqrt(max(err**2 - old**2, 0.0)))
        flux.append(abs(measured))
    delta, noise, flux = (np.asarray(a) for a in (delta, noise, flux))
    good = np.isfinite(delta) & np.isfinite(noise) & np.isfinite(flux) & (flux > 0)
    # each source is covered from f_i = sqrt(delta^2 - noise^2) / flux on: f is a quantile
    needed = np.sqrt(np.clip(delta[good] ** 2 - noise[good] ** 2, 0, None)) / flux[good]
    return float(np.quantile(needed, coverage, method="higher")), int(good.sum())


def write_card(report, threshold, table, args, with_psf=None):
    """Put the held-out scores into the shipped model's card and its Markdown page
    (``with_psf``: the scores after the PSF refinement, as ``scores['with_psf']``)."""
    import dataclasses

    from deepfocus_radio.models import get_pretrained_info
    from deepfocus_radio.models.pretrained import default_weights_dir

    card = get_pretrained_info(args.model)
    high = next(b for b in report.bins if b["label"] == ">=10")
    scores = {"test_set": f"{args.n_cubes} simulated cubes {args.size}x{args.size}x{args.channels}, "
                          f"seeds from {TEST_SEED} (examples/evaluate_alma.py)",
              "threshold_sigma": threshold, "completeness": report.completeness,
              "purity": report.purity, "f1": report.f1,
              "completeness_snr_3_5": bin_value(report, "3-5", "completeness"),
              "completeness_snr_5_10": bin_value(report, "5-10", "completeness"),
              "completeness_snr_ge_10": bin_value(report, ">=10", "completeness"),
              "completeness_snr_ge_5": completeness_above(report, 5),
              "completeness_snr_ge_5_separable": completeness_above(report, 5, separable=True),
              "flux_within_10pct_snr_ge_10": high["errors"]["flux"].fraction_within,
              "flux_median_relative_error": report.errors["flux"].median,
              "pa_within_10deg_resolved": report.errors["pa"].fraction_within,
              "line_fwhm_median_relative_error": report.errors["line_fwhm"].median,
              "position_error_median_beam": report.errors["position"].median}
    scores = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
    if with_psf is not None:
        high_psf = next(b for b in with_psf.bins if b["label"] == ">=10")
        mid_psf = next(b for b in with_psf.bins if b["label"] == "5-10")
        scores["with_psf"] = {k: round(float(v), 4) for k, v in {
            "purity": with_psf.purity,
            "completeness_snr_ge_5": completeness_above(with_psf, 5),
            "flux_within_10pct_snr_ge_10": high_psf["errors"]["flux"].fraction_within,
            "flux_within_10pct_snr_5_10": mid_psf["errors"]["flux"].fraction_within,
            "flux_within_1_flux_err": with_psf.errors["flux_within_err"].fraction_within,
            "flux_median_relative_error": with_psf.errors["flux"].median,
            "pa_within_10deg_resolved": with_psf.errors["pa"].fraction_within,
            "size_median_relative_error": with_psf.errors["fwhm_major"].median,
            "position_error_median_beam": with_psf.errors["position"].median}.items()}
    card = dataclasses.replace(card, scores=scores)
    folder = default_weights_dir()
    card.write(folder / f"{card.name}.json")
    from deepfocus_radio.models import load_model

    meta = getattr(load_model(args.model), "metadata", {}) or {}
    best = meta.get("best_val_loss")
    training = (f"{meta.get('training_seconds', '?')} s of training over "
                f"{meta.get('epochs', '?')} epochs; best validation L1 "
                f"{'?' if best is None else format(float(best), '.4g')}.")
    template = (Path(__file__).with_name("model_card_template.md")).read_text()
    (folder / f"{card.name}.md").write_text(template.format(
        name=card.name, sha256=card.sha256, training=training,
        config=json.dumps(card.config, indent=1),
        ranges=json.dumps(card.training_ranges, indent=1), table=table, report=str(report),
        calibration=json.dumps(card.calibration, indent=1)))


if __name__ == "__main__":
    main()
