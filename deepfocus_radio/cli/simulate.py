"""``deepfocus simulate``: write a simulated ALMA-like or SKA-like training data set."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run", "load_config_file"]

NAME = "simulate"
HELP = "Simulate a Train/Validation/Test data set of dirty/clean cubes with truth tables."
EXAMPLE = """examples:
  deepfocus simulate data/alma --n-train 200 --n-valid 20 --n-test 20 --seed 1
  deepfocus simulate data/ska --kind ska --n-train 50 --n-valid 5 --n-test 5 \\
      --config ska.yaml --quicklook ska.png

--config takes a YAML (or JSON) mapping of AlmaConfig / SkaConfig settings, e.g.
  image_shape: [64, 64]
  n_channels_range: [32, 64]
  weighting: uniform
Re-running an interrupted command with the same arguments finishes the missing cubes.
"""


def load_config_file(path):
    """Read a YAML/JSON mapping of simulator settings.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, or holds no mapping.
    """
    import yaml

    from deepfocus_radio.exceptions import ConfigError

    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            mapping = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config: cannot read {path!r}: {exc}") from None
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"--config: {path!r} must hold a mapping of settings, not {type(mapping).__name__}")
    return mapping


def add_arguments(parser):
    """Add the options of ``deepfocus simulate`` to ``parser``."""
    parser.add_argument("outdir", help="output directory (Train/, Validation/, Test/ are made in it)")
    parser.add_argument("--kind", choices=("alma", "ska"), default="alma", help="simulator (default alma)")
    parser.add_argument("--n-train", type=int, default=10, metavar="N", help="training cubes (default 10)")
    parser.add_argument("--n-valid", type=int, default=2, metavar="N", help="validation cubes (default 2)")
    parser.add_argument("--n-test", type=int, default=2, metavar="N", help="test cubes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data-set seed (default 0)")
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML/JSON file of simulator settings")
    parser.add_argument("--quicklook", metavar="PNG", default=None,
                        help="save moment-0 maps of the first cube's dirty, clean and sky cubes")
    parser.add_argument("--workers", type=int, default=None, help="FFT threads per cube")
    parser.add_argument("--overwrite", action="store_true", help="re-make all cubes, replacing files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Simulate the data set, optionally save the quick-look PNG, print the output path."""
    from deepfocus_radio.simulation import simulate_dataset
    from deepfocus_radio.simulation.quicklook import save_quicklook

    config = load_config_file(args.config)
    root = simulate_dataset(
        args.outdir, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test, kind=args.kind,
        config=config, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet, workers=args.workers,
    )
    if args.quicklook:
        first = next(((root / split, 0) for split, count in
                      (("Train", args.n_train), ("Validation", args.n_valid), ("Test", args.n_test)) if count > 0),
                     None)
        if first is None:
            from deepfocus_radio.exceptions import ConfigError

            raise ConfigError("--quicklook needs at least one cube (all of --n-train/--n-valid/--n-test are 0)")
        save_quicklook(*first, args.quicklook, title=f"{args.kind} cube 0 of {first[0].name}")
    print(root)
    return 0
