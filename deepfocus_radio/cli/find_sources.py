"""``deepfocus find-sources``: dirty cube -> deconvolution -> detection -> catalogue."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "find-sources"
HELP = "Deconvolve a dirty cube, detect and characterize its sources, write a catalogue."
EXAMPLE = """examples:
  deepfocus find-sources dirty.fits --out catalogue.ecsv
  deepfocus find-sources dirty.fits --out cat.xml --model my_model.safetensors --threshold 5
  deepfocus find-sources dirty.fits --out cat.reg --format ds9 --model none   # no network
  deepfocus find-sources big.zarr --out cat.ecsv --pb dirty.pb --device cuda
  deepfocus find-sources dirty.image --out cat.ecsv --psf dirty.psf   # refit on the dirty cube
  deepfocus find-sources dirty.image --out cat.ecsv --psf dirty.psf --psf-min-snr 4 \\
      --dirty-candidates 4     # drop artefacts; add faint sources the network lost

Thresholds and SNRs are in units of the dirty cube's noise (robust, per channel). Formats:
ecsv (default), votable, csv, ds9, crtf, sdc2 (from the suffix unless --format is given).
"""


def add_arguments(parser):
    """Add the options of ``deepfocus find-sources`` to ``parser``."""
    parser.add_argument("input", help="dirty cube: FITS (2D-4D), CASA image or zarr store")
    parser.add_argument("--out", required=True, help="output catalogue")
    parser.add_argument("--model", default="alma",
                        help="shipped model name, model file, or 'none' to search the dirty "
                             "cube itself (default: alma)")
    parser.add_argument("--threshold", type=float, default=4.0,
                        help="detection threshold in dirty-cube noise rms (default: 4)")
    parser.add_argument("--format", default=None,
                        help="ecsv, votable, csv, ds9, crtf or sdc2 (default: from --out)")
    parser.add_argument("--pb", default=None, help="primary-beam cube for corrected fluxes")
    parser.add_argument("--psf", default=None,
                        help="the cube's PSF (CASA .psf or FITS, peak 1): refit fluxes, "
                             "positions, sizes and PAs on the dirty cube with PSF-convolved "
                             "models (more accurate; recommended when you have it); best: "
                             "image the field twice as large and search its central part "
                             "with that image's .psf, which holds every source's sidelobes")
    parser.add_argument("--psf-min-snr", type=float, default=None,
                        help="with --psf: drop sources whose PSF fit to the dirty cube (the "
                             "channels weighted by the line) is below this many sigma (PSF "
                             "sidelobes, deconvolution artefacts)")
    parser.add_argument("--dirty-candidates", type=float, default=None, metavar="SNR",
                        help="with --psf: search the residual of the PSF fits (the dirty cube "
                             "minus the fitted sources) and add the detections that the "
                             "network's catalogue lacks, when their PSF fit reaches this SNR")
    parser.add_argument("--deblend", choices=["auto", "on", "off"], default="auto",
                        help="split touching sources (default auto: on, except in HI 21 cm "
                             "cubes, where it would split rotating discs)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--tile", type=int, nargs=3, metavar=("CHAN", "Y", "X"), default=None,
                        help="inference tile size")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or table")


def run(args):
    """Run the pipeline and write the catalogue; returns 0."""
    from deepfocus_radio.sources import find_sources, write_catalog
    from deepfocus_radio.sources.catalog import _resolve_format, check_output

    _resolve_format(args.out, args.format)  # fail on a bad format before the long work
    check_output(args.out, overwrite=args.overwrite)
    model = None if str(args.model).lower() == "none" else args.model
    table = find_sources(args.input, model=model, threshold=args.threshold, pb=args.pb,
                         psf=args.psf, psf_min_snr=args.psf_min_snr,
                         dirty_candidates=args.dirty_candidates,
                         deblend={"on": True, "off": False}.get(args.deblend, "auto"),
                         device=args.device, tile=args.tile, progress=not args.quiet)
    path = write_catalog(table, args.out, format=args.format, overwrite=args.overwrite)
    if not args.quiet:
        columns = ["id", "ra", "dec", "freq", "flux", "snr"]
        table[columns].pprint(max_lines=30, max_width=120)
    print(f"{len(table)} sources written to {path}")
    return 0
