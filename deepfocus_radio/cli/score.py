"""``deepfocus score``: compare a found catalogue with a truth catalogue."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "score"
HELP = "Score a source catalogue against the truth: completeness, purity, F1, parameter errors."
EXAMPLE = """examples:
  deepfocus score found.ecsv Test/truth.ecsv
  deepfocus score found.ecsv truth.ecsv --plot score.png --json score.json
  deepfocus score found.ecsv truth.ecsv --beam 0.5 --channel-width-kms 1.3
  deepfocus score found.ecsv truth.ecsv --against clean.ecsv
  deepfocus score eval/catalogs/deepfocus_4.0.ecsv eval/catalogs/truth.ecsv   # a test set

Sources match one-to-one, greedily from the highest true SNR, within max(beam FWHM, true
major axis) on the sky and max(2 channels, true line FWHM) in frequency. The beam, pixel
scale and channel width come from the catalogues' metadata unless given. --against scores
a second catalogue of the same cube and compares the two source by source: per SNR bin, the
true sources that only one of them finds, and the exact McNemar p-value of the difference.
Catalogues of many cubes stacked with a 'cube' column and each cube's scales in
meta['cubes'] (deepfocus_radio.sources.stack_catalogs; examples/evaluate_alma.py writes
them) are matched cube by cube and scored as one sample.
"""


def add_arguments(parser):
    """Add the options of ``deepfocus score`` to ``parser``."""
    parser.add_argument("found", help="catalogue to score (.ecsv, .xml/.vot, .csv)")
    parser.add_argument("truth", help="truth catalogue in the same schema")
    parser.add_argument("--plot", metavar="PNG", help="save completeness and purity vs SNR")
    parser.add_argument("--json", metavar="FILE", help="save the full report as JSON")
    parser.add_argument("--beam", type=float, metavar="ARCSEC",
                        help="beam FWHM in arcsec (default: from the catalogue metadata)")
    parser.add_argument("--beam-pixels", type=float, metavar="PIX",
                        help="beam FWHM in pixels (instead of --beam)")
    parser.add_argument("--pixel-scale", type=float, metavar="ARCSEC",
                        help="pixel side in arcsec (default: from the metadata)")
    parser.add_argument("--channel-width-kms", type=float, metavar="KMS",
                        help="channel width in km/s (default: from the metadata)")
    parser.add_argument("--against", metavar="OTHER",
                        help="another catalogue of the same cube to compare with, source by "
                             "source")
    parser.add_argument("--snr-bins", type=float, nargs="+", metavar="EDGE",
                        default=[0, 3, 5, 10, float("inf")], help="SNR bin edges")


def run(args):
    """Score and print the report; returns 0."""
    from astropy import units as u

    from deepfocus_radio.exceptions import ConfigError
    from deepfocus_radio.sources import compare_reports, read_catalog

    if args.beam is not None and args.beam_pixels is not None:
        raise ConfigError("give either --beam (arcsec) or --beam-pixels, not both")
    beam = args.beam * u.arcsec if args.beam is not None else args.beam_pixels
    truth = read_catalog(args.truth)
    found = read_catalog(args.found)
    against = read_catalog(args.against) if args.against else None  # fail before any output
    geometry = dict(
        beam=beam, pixel_scale=None if args.pixel_scale is None else args.pixel_scale * u.arcsec,
        channel_width=None if args.channel_width_kms is None else
        args.channel_width_kms * u.km / u.s)
    report = _score(found, truth, geometry, args.snr_bins)
    print(report)
    if against is not None:
        other = _score(against, truth, geometry, args.snr_bins)
        table = compare_reports(report, other)
        print(f"\n{args.found} (first) against {args.against} (second), source by source:")
        for name in ("completeness_first", "completeness_second", "p_value", "flux_p_value"):
            table[name].info.format = ".3f"
        table.pprint(max_lines=-1, max_width=-1)
    if args.plot:
        report.plot(args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        report.to_json(args.json)
        print(f"report: {args.json}")
    return 0


def _score(found, truth, geometry, snr_bins):
    """One catalogue against the truth, or a test set's stacked catalogues cube by cube."""
    from deepfocus_radio.exceptions import InputDataError
    from deepfocus_radio.sources import score_catalog, score_catalogs, split_catalogs

    stacked = ["cube" in table.colnames for table in (found, truth)]
    if not any(stacked):
        return score_catalog(found, truth, snr_bins=snr_bins, **geometry)
    if not all(stacked):
        raise InputDataError("one catalogue is stacked over cubes (a 'cube' column) and the "
                             "other is not: score a test set's catalogue against its own "
                             "stacked truth")
    found_cubes, truth_cubes = split_catalogs(found), split_catalogs(truth)
    if len(found_cubes) != len(truth_cubes):
        raise InputDataError(f"the found catalogue holds {len(found_cubes)} cubes and the "
                             f"truth {len(truth_cubes)}: they are not of the same test set")
    return score_catalogs([(f, t, geometry) for f, t in zip(found_cubes, truth_cubes)],
                          snr_bins=snr_bins)
