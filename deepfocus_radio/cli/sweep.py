"""``deepfocus sweep``: architecture and hyper-parameter search with optuna."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "sweep"
HELP = "Search architectures and hyper-parameters with optuna (resumable SQLite study)."
EXAMPLE = """examples:
  deepfocus sweep examples/configs/alma_sweep.yaml
  deepfocus sweep sweep.yaml --trials 40      # run until the study holds 40 finished trials
  deepfocus train runs/sweep/best_config.yaml # train the best configuration found

The 'sweep' section of the configuration declares n_trials, storage, pruner and the
search space (see deepfocus_radio.training.sweep). Running the same command again
resumes the study from its SQLite file.
"""


def add_arguments(parser):
    """Add the options of ``deepfocus sweep`` to ``parser``."""
    parser.add_argument("config", help="configuration with a 'sweep' section (.yaml, .toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a setting (repeatable)")
    parser.add_argument("--trials", type=int, default=None, metavar="N",
                        help="total number of finished trials wanted (default: sweep.n_trials)")


def run(args):
    """Run the sweep; print the best value, parameters and exported config."""
    from deepfocus_radio.training import sweep

    result = sweep(args.config, overrides=args.overrides, n_trials=args.trials)
    print(f"best validation loss {result.best_value:.6g} with:")
    for key, value in result.best_params.items():
        print(f"  {key} = {value}")
    print(f"best configuration: {result.best_config_path}")
    return 0
