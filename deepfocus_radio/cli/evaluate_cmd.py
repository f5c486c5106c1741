"""``deepfocus test``: run a trained network on the Test split; report and plots."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "test"
HELP = "Evaluate a trained network on the Test split: predictions, metrics report, plots."
EXAMPLE = """examples:
  deepfocus test runs/alma                       # run directory written by 'deepfocus train'
  deepfocus test runs/alma/best.safetensors --data other_data --output eval_other
  deepfocus test run.yaml                        # the run directory of a training config
  deepfocus test alma --data data --output eval  # a shipped deconvolver

Outputs: report.json and report.csv (metrics), predictions (FITS cubes with the input's
WCS and beam, or predictions.csv), PNG plots.
"""


def add_arguments(parser):
    """Add the options of ``deepfocus test`` to ``parser``."""
    parser.add_argument("checkpoint",
                        help="checkpoint (.safetensors), run directory, training config, or "
                             "shipped model name")
    parser.add_argument("--data", metavar="ROOT", default=None,
                        help="data folder with Train/ Validation/ Test/ (default: the one "
                             "used in training)")
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="output folder (default: <run dir>/eval_<split>)")
    parser.add_argument("--split", default="Test", choices=["Test", "Validation", "Train"],
                        help="split to evaluate (default: Test)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--plots", type=int, default=3, metavar="N",
                        help="number of cubes drawn as panels and spectra (default: 3)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Evaluate; print the summary metrics and where the report is."""
    import json

    from deepfocus_radio.training import evaluate

    result = evaluate(args.checkpoint, data_root=args.data, output_dir=args.output,
                      split=args.split, device=args.device, n_plots=args.plots,
                      overwrite=args.overwrite, progress=not args.quiet)
    print(json.dumps(result.metrics, indent=1, default=float))
    print(f"report: {result.report}")
    return 0
