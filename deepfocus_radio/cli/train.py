"""``deepfocus train``: train a network from a YAML/TOML configuration."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "train"
HELP = "Train a deconvolver, regressor or classifier from a YAML/TOML configuration."
EXAMPLE = """examples:
  deepfocus train examples/configs/alma_deconvolver.yaml
  deepfocus train run.yaml --set optim.lr=3e-4 --set train.epochs=50
  deepfocus train run.yaml --resume          # continue from output.dir/last_state.pt

The configuration sections (model, data, optim, loss, train, output) are documented in
deepfocus_radio.training.config; outputs: best.safetensors, last.safetensors,
last_state.pt, metrics.csv, metrics.json, learning_curves.png, config.yaml.
"""


def add_arguments(parser):
    """Add the options of ``deepfocus train`` to ``parser``."""
    parser.add_argument("config", help="training configuration (.yaml, .yml, .toml, .json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a setting, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the last checkpoint in output.dir")
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="run directory (same as --set output.dir=DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Train; print the best epoch, its validation loss and the checkpoint path."""
    from deepfocus_radio.training import train

    overrides = list(args.overrides)
    if args.output is not None:
        overrides.append(f"output.dir={args.output}")
    if args.quiet:
        overrides.append("train.progress=false")
    result = train(args.config, overrides=overrides, resume=True if args.resume else None)
    print(f"best epoch {result.best_epoch + 1}: validation loss {result.best_val_loss:.6g}")
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"metrics: {result.output_dir / 'metrics.csv'}")
    return 0
