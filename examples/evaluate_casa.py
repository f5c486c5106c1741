"""Score the shipped "alma" model on cubes made by CASA (simobserve + tclean), not by us.

    python examples/evaluate_casa.py                          # 10 cubes of 128x128x32
    python examples/evaluate_casa.py --n-cubes 1 --size 64    # what the CASA test runs

Needs CASA from PyPI (``pip install -e ".[bench]"``: casatasks + casadata; runs offline).
For each cube:

1. a sky model (Jy/pixel, 4D with Stokes) of Gaussian sources with Gaussian lines, random
   but seeded, at 0.05" pixels and 2 MHz channels near 230 GHz;
2. CASA ``simobserve``: ALMA configuration 8.5 (built into casadata), 30 minutes, thermal
   noise from the atmosphere model (``tsys-atm``, 1 mm PWV);
3. CASA ``tclean``: dirty cube (``niter=0``), Briggs 0.5, common restoring beam, exported
   with CASA's own 4D FITS header (Stokes axis, LSRK, OBSGEO);
4. ``find_sources`` on that FITS file with the shipped model, at the card's threshold and
   higher ones (CASA's PSF is not our simulator's: its sidelobes may need more), without
   and with CASA's ``.psf`` (exported to FITS) for the PSF refinement, and with it the
   sources of ``psf_snr >= 4`` only (``psf_min_snr=4``); then the same on the central
   part of the field imaged twice as large, with that image's ``.psf``, which holds every
   source's sidelobes across the central part (``+widepsf``), also with the candidates
   of the fits' residual (``+widepsf+dirty``: ``psf_min_snr=4, dirty_candidates=4``);
   and CASA's own CLEAN of that wide field (``tclean`` Hogbom down to 1.5 sigma of each
   plane), its centre searched instead of the network's cube (``+clean``), with the same
   fits and cut (``+clean+widepsf>=4``) and candidates (``+clean+widepsf+dirty``);
5. the truth from the sky model: integrated line flux (Jy km/s), the peak of the sky
   convolved with the restoring beam (Jy/beam), sizes, PA east of north, line width.

Scores at each threshold go to ``--out`` (``results.md``, ``results.json``).
"""

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from astropy.wcs import FITSFixedWarning
from scipy.signal import fftconvolve

from deepfocus_radio.baselines.casa import casa_available, run_casa
from deepfocus_radio.baselines.clean import restoring_kernel
from deepfocus_radio.conventions import FWHM_TO_SIGMA, channel_width_kms, pixel_angle_to_pa
from deepfocus_radio.exceptions import NoSourcesFoundWarning, OutOfTrainingRangeWarning
from deepfocus_radio.inference import deconvolve
from deepfocus_radio.io import open_cube
from deepfocus_radio.models import get_pretrained_info
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.simulation.cube import CATALOG_UNITS
from deepfocus_radio.sources import find_sources, score_catalogs
from deepfocus_radio.sources.psf_fit import apply_psf_cuts

SEED = 4242
CELL_ARCSEC = 0.05
CHANNEL_HZ = 2e6
SNR_BINS = (0, 3, 5, 10, np.inf)

_CASA_SCRIPT = """\
import json, os, sys
import casadata
from casatasks import exportfits, simobserve, tclean
opts = json.loads(sys.argv[1])
config = os.path.join(os.path.dirname(casadata.__file__), "__data__", "alma", "simmos",
                      "alma.cycle8.5.cfg")
simobserve(project="sim", skymodel=opts["sky"], inbright="", indirection=opts["direction"],
           incell=opts["cell"], incenter=opts["center"], inwidth=opts["width"],
           setpointings=True, integration="60s", totaltime="1800s", antennalist=config,
           thermalnoise="tsys-atm", user_pwv=1.0, graphics="none", overwrite=True,
           obsmode="int", mapsize=["", ""])
ms = [f for f in os.listdir("sim") if f.endswith(".noisy.ms")][0]
tclean(vis=os.path.join("sim", ms), imagename="dirty", imsize=opts["size"], cell=opts["cell"],
       specmode="cube", niter=0, weighting="briggs", robust=0.5, restoringbeam="common",
       gridder="standard", phasecenter=opts["direction"])
exportfits(imagename="dirty.image", fitsimage=opts["out"], overwrite=True)
exportfits(imagename="dirty.psf", fitsimage=opts["psf"], overwrite=True)
# the field imaged twice as large: its .psf holds every offset between two pixels of the
# image's central part (Briggs weights depend on the uv cell, so a .psf made alone at
# twice the size would not be the PSF of the smaller image)
if opts.get("wide"):
    tclean(vis=os.path.join("sim", ms), imagename="wide", imsize=2 * opts["size"],
           cell=opts["cell"], specmode="cube", niter=0, weighting="briggs", robust=0.5,
           restoringbeam="common", gridder="standard", phasecenter=opts["direction"])
    exportfits(imagename="wide.image", fitsimage=opts["wide"], overwrite=True)
    exportfits(imagename="wide.psf", fitsimage=opts["wide_psf"], overwrite=True)
# CASA's CLEAN of the same wide field (Hogbom, down to 1.5 sigma of each plane)
if opts.get("wide_clean"):
    tclean(vis=os.path.join("sim", ms), imagename="wideclean", imsize=2 * opts["size"],
           cell=opts["cell"], specmode="cube", niter=100000, nsigma=1.5,
           deconvolver="hogbom", weighting="briggs", robust=0.5, restoringbeam="common",
           gridder="standard", phasecenter=opts["direction"])
    exportfits(imagename="wideclean.image", fitsimage=opts["wide_clean"], overwrite=True)
"""


def gaussian_image(shape, x, y, major, minor, theta):
    """An elliptical Gaussian (FWHM in pixels, ``theta`` of the major axis counter-clockwise
    from +x, rad) on a (ny, nx) grid, summing to 1."""
    yy, xx = np.indices(shape, dtype=float)
    sx, sy = major * FWHM_TO_SIGMA, minor * FWHM_TO_SIGMA
    cos, sin = np.cos(theta), np.sin(theta)
    u_ = (xx - x) * cos + (yy - y) * sin
    v_ = -(xx - x) * sin + (yy - y) * cos
    image = np.exp(-0.5 * ((u_ / sx) ** 2 + (v_ / sy) ** 2))
    return image / image.sum()


def make_sky(rng, size, nchan):
    """Sky cube (chan, y, x) in Jy/pixel and its sources (pixel units, channels)."""
    sky = np.zeros((nchan, size, size))
    sources = []
    margin = max(6, size // 8)
    for _ in range(int(rng.integers(3, 8))):
        major = rng.uniform(1.0, 10.0)
        source = dict(x=rng.uniform(margin, size - margin), y=rng.uniform(margin, size - margin),
                      z=rng.uniform(6, nchan - 6), line_fwhm=rng.uniform(3.0, 7.0),
                      major=major, minor=major * rng.uniform(0.4, 1.0),
                      theta=rng.uniform(0, np.pi), flux=10 ** rng.uniform(-2.3, -1.0))
        image = gaussian_image((size, size), source["x"], source["y"], source["major"],
                               source["minor"], source["theta"])
        spectrum = np.exp(-0.5 * ((np.arange(nchan) - source["z"])
                                  / (source["line_fwhm"] * FWHM_TO_SIGMA)) ** 2)
        sky += source["flux"] * spectrum[:, None, None] * image[None]
        sources.append(source)
    return sky.astype(np.float32), sources


def sky_header(size, direction):
    header = fits.Header()
    header.update(BUNIT="Jy/pixel", CTYPE1="RA---SIN", CRVAL1=direction[0],
                  CDELT1=-CELL_ARCSEC / 3600, CRPIX1=size // 2 + 1, CUNIT1="deg",
                  CTYPE2="DEC--SIN", CRVAL2=direction[1], CDELT2=CELL_ARCSEC / 3600,
                  CRPIX2=size // 2 + 1, CUNIT2="deg", CTYPE3="FREQ", CRVAL3=230e9,
                  CDELT3=CHANNEL_HZ, CRPIX3=1, CUNIT3="Hz", CTYPE4="STOKES", CRVAL4=1,
                  CDELT4=1, CRPIX4=1)
    return header


def truth_table(sources, cube, noise):
    """The sky model's sources in the catalogue schema, in the dirty cube's frame."""
    with warnings.catch_warnings():  # astropy completes CASA's OBSGEO keywords, and says so
        warnings.simplefilter("ignore", FITSFixedWarning)
        header = cube.header
        wcs = cube.wcs.celestial
    beam = cube.beam
    cell = abs(header["CDELT2"]) * 3600
    freqs = cube.spectral_axis.to_value(u.Hz)
    kernel = restoring_kernel(beam, cell * u.arcsec)  # the beam, peak 1: Jy/pixel -> Jy/beam
    rows = []
    for index, s in enumerate(sources):
        freq = float(np.interp(s["z"], np.arange(len(freqs)), freqs))
        dv = channel_width_kms(CHANNEL_HZ * u.Hz, freq * u.Hz).to_value(u.km / u.s)
        ra, dec = wcs.pixel_to_world_values(s["x"], s["y"])
        image = gaussian_image(cube.shape[1:], s["x"], s["y"], s["major"], s["minor"],
                               s["theta"])
        peak = s["flux"] * fftconvolve(image, kernel, mode="same").max()
        rows.append(dict(id=index + 1, x=s["x"], y=s["y"], z=s["z"], ra=float(ra),
                         dec=float(dec), freq=freq, peak=peak,
                         flux=s["flux"] * s["line_fwhm"] * FWHM_TO_SIGMA * np.sqrt(2 * np.pi) * dv,
                         pa=float(np.mod(pixel_angle_to_pa(np.degrees(s["theta"])), 180.0)),
                         snr=peak / noise, fwhm_major=s["major"] * cell,
                         fwhm_minor=s["minor"] * cell, line_fwhm=s["line_fwhm"] * dv))
    table = QTable()
    for name, unit in CATALOG_UNITS.items():
        values = np.array([row[name] for row in rows], dtype=float)
        table[name] = values if unit is None else values * unit
    table.meta.update(beam_major=beam.major.to(u.arcsec), beam_minor=beam.minor.to(u.arcsec),
                      beam_pa=beam.pa.to(u.deg))
    return table


def run_cube(index, args, thresholds):
    """({threshold: found}, truth, geometry, seconds) for one CASA-made cube."""
    rng = np.random.default_rng([SEED, index])
    direction = (150.0, -30.0)
    sky, sources = make_sky(rng, args.size, args.channels)
    with tempfile.TemporaryDirectory(prefix="deepfocus-casa-eval-") as tmp:
        work = Path(tmp)
        fits.writeto(work / "sky.fits", sky[None], sky_header(args.size, direction))
        opts = {"sky": str(work / "sky.fits"), "out": str(work / "dirty.fits"),
                "psf": str(work / "dirty.psf.fits"), "wide": str(work / "wide.fits"),
                "wide_psf": str(work / "wide.psf.fits"),
                "wide_clean": str(work / "wideclean.fits"),
                "direction": "J2000 10h00m00 -30d00m00", "cell": f"{CELL_ARCSEC}arcsec",
                "center": "230GHz", "width": f"{CHANNEL_HZ / 1e6}MHz", "size": args.size}
        run_casa(_CASA_SCRIPT, opts, work, what="simobserve + tclean",
                 expect=[work / "dirty.fits", work / "dirty.psf.fits", work / "wide.fits",
                         work / "wide.psf.fits", work / "wideclean.fits"])
        cube = open_cube(work / "dirty.fits")
        noise = float(np.nanmedian(channel_noise(np.asarray(cube.unmasked_data[:].value))))
        truth = truth_table(sources, cube, noise)
        wide = open_cube(work / "wide.fits")  # its central part (the slice moves the WCS)
        y0, x0 = (n // 2 - args.size // 2 for n in wide.shape[1:])
        centre = (slice(None), slice(y0, y0 + args.size), slice(x0, x0 + args.size))
        wide = wide[centre]
        wide_clean = open_cube(work / "wideclean.fits")[centre]
        wide_deconvolved = deconvolve(wide, args.model, progress=False)
        start = time.perf_counter()
        deconvolved = deconvolve(cube, args.model, progress=False)
        found, seconds = {}, None
        for t in thresholds:
            found[t] = find_sources(cube, args.model, deconvolved=deconvolved, threshold=t,
                                    progress=False)
            seconds = seconds or time.perf_counter() - start  # deconvolution + one search
            # CASA's own PSF (dirty.psf, 4D FITS) refines the same catalogue
            found[f"{t}+psf"] = find_sources(cube, args.model, deconvolved=deconvolved,
                                             threshold=t, psf=work / "dirty.psf.fits",
                                             progress=False)
            found[f"{t}+psf>=4"] = apply_psf_cuts(found[f"{t}+psf"], 4.0)  # psf_min_snr=4
            # the central part of the field imaged twice as large, with its .psf
            found[f"{t}+widepsf"] = find_sources(wide, args.model, deconvolved=wide_deconvolved,
                                                 threshold=t, psf=work / "wide.psf.fits",
                                                 progress=False)
            found[f"{t}+widepsf>=4"] = apply_psf_cuts(found[f"{t}+widepsf"], 4.0)
            # and with the candidates of the fits' residual (ours as the test set scores it)
            found[f"{t}+widepsf+dirty"] = find_sources(
                wide, args.model, deconvolved=wide_deconvolved, threshold=t,
                psf=work / "wide.psf.fits", psf_min_snr=4.0, dirty_candidates=4.0,
                progress=False)
            # CASA's CLEAN of the wide field searched instead of the network's cube: alone,
            # with the same fits and cut, and with the residual's candidates too
            found[f"{t}+clean"] = find_sources(wide, args.model, deconvolved=wide_clean,
                                               threshold=t, progress=False)
            refined = find_sources(wide, args.model, deconvolved=wide_clean, threshold=t,
                                   psf=work / "wide.psf.fits", progress=False)
            found[f"{t}+clean+widepsf>=4"] = apply_psf_cuts(refined, 4.0)
            found[f"{t}+clean+widepsf+dirty"] = find_sources(
                wide, args.model, deconvolved=wide_clean, threshold=t,
                psf=work / "wide.psf.fits", psf_min_snr=4.0, dirty_candidates=4.0,
                progress=False)
        geometry = dict(beam=cube.beam, pixel_scale=CELL_ARCSEC * u.arcsec,
                        channel_width=CHANNEL_HZ * u.Hz)
    return found, truth, geometry, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cubes", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--model", default="alma")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None,
                        help="detection thresholds (dirty-cube sigma); default the card's, "
                             "+1 and +2")
    parser.add_argument("--out", default="results/casa_eval")
    args = parser.parse_args(argv)
    if not casa_available():
        raise SystemExit("CASA is not installed: pip install -e '.[bench]' (casatasks, casadata)")
    from tqdm import tqdm

    card = get_pretrained_info(args.model).scores.get("threshold_sigma", 4.0)
    thresholds = args.thresholds or [card, card + 1.0, card + 2.0]
    per_cube = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSourcesFoundWarning)
        warnings.simplefilter("ignore", OutOfTrainingRangeWarning)
        for index in tqdm(range(args.n_cubes), desc="CASA cubes", unit="cube"):
            per_cube.append(run_cube(index, args, thresholds))
    keys = list(per_cube[0][0])  # every threshold and variant that run_cube made
    reports = {k: score_catalogs([(f[k], truth, g) for f, truth, g, _ in per_cube],
                                 snr_bins=SNR_BINS) for k in keys}
    seconds = float(np.mean([s for *_, s in per_cube]))
    text = (f"CASA simobserve + tclean dirty cubes: {args.n_cubes} of {args.size}x{args.size}x"
            f"{args.channels}, seeds from {SEED}; model {args.model!r}; deconvolution + one "
            f"search {seconds:.1f} s per cube.\n")
    for key, report in reports.items():
        threshold, _, variant = str(key).partition("+")
        refined = {"psf": " + PSF refinement with CASA's .psf",
                   "psf>=4": " + PSF refinement, psf_snr >= 4",
                   "widepsf": " + the field imaged twice as large: its centre, PSF refinement "
                              "with its .psf",
                   "widepsf>=4": " + the field imaged twice as large, psf_snr >= 4",
                   "widepsf+dirty": " + the field imaged twice as large, psf_snr >= 4, with "
                                    "the candidates of the fits' residual",
                   "clean": ": CASA's CLEAN (Hogbom, 1.5 sigma) of the field imaged twice as "
                            "large searched, its centre",
                   "clean+widepsf>=4": ": CASA's CLEAN, PSF refinement, psf_snr >= 4",
                   "clean+widepsf+dirty": ": CASA's CLEAN, PSF refinement, psf_snr >= 4, with "
                                          "the candidates of the fits' residual",
                   }.get(variant, "")
        text += f"\n### threshold {threshold} sigma{refined}\n\n{report}\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(
        {"args": vars(args), "thresholds": thresholds, "seconds_per_cube": seconds,
         "scores": {str(t): r.to_dict() for t, r in reports.items()}}, indent=1, default=float))
    print(text)
    return reports


if __name__ == "__main__":
    main()
