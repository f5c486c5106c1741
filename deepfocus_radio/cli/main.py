"""The ``deepfocus`` command: a thin argparse front end over the library.

Each subcommand lives in its own module ``deepfocus_radio.cli.<name>`` exposing
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; library
imports happen inside ``run`` so that ``--help`` stays instant.
"""

import argparse
import importlib
import sys

from deepfocus_radio import __version__
from deepfocus_radio.exceptions import DeepFocusError

__all__ = ["main", "build_parser"]

#: Subcommand modules, in the order ``deepfocus --help`` lists them.
COMMAND_MODULES = [
    "simulate",
    "train",
    "evaluate_cmd",
    "sweep",
    "to_zarr",
    "deconvolve",
    "find_sources",
    "score",
    "demo",
    "models",
]


def _command_modules():
    for name in COMMAND_MODULES:
        yield importlib.import_module(f"deepfocus_radio.cli.{name}")


def build_parser():
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="deepfocus",
        description="Deep learning deconvolution and source finding for radio spectral cubes.",
        epilog="Run 'deepfocus COMMAND --help' for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EXAMPLE", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    """Run the ``deepfocus`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except DeepFocusError as exc:
        print(f"deepfocus {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, FileExistsError, PermissionError) as exc:
        print(f"deepfocus {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepfocus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
