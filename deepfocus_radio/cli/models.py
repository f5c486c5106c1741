"""``deepfocus models``: list the architecture presets and the shipped pretrained models."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run"]

NAME = "models"
HELP = "List the network presets (with parameter counts) and the shipped pretrained models."
EXAMPLE = """examples:
  deepfocus models                      # presets and shipped models
  deepfocus models --architectures      # presets only, with their parameter counts
  deepfocus models --pretrained         # shipped models: training ranges, scores, licence
  deepfocus models --show resnet18      # the full configuration of one preset (JSON)
"""


def add_arguments(parser):
    """Add the options of ``deepfocus models`` to ``parser``."""
    parser.add_argument("--architectures", action="store_true",
                        help="list the presets of create_model with their parameter counts")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the shipped pretrained models (names usable as --model)")
    parser.add_argument("--show", metavar="PRESET",
                        help="print the full configuration of a preset as JSON")
    parser.add_argument("--weights-dir", metavar="DIR", default=None,
                        help="folder of shipped models (default: the package's own)")


def _print_architectures():
    from deepfocus_radio.models import ARCHITECTURES

    print("Architectures (build_model config 'arch'; first value = default):")
    print(f"  {'arch':<9} {'dmode':<22} {'block':<18} {'skip_connections':<17} norm")
    for arch, spec in ARCHITECTURES.items():
        print(f"  {arch:<9} {', '.join(spec.dmodes):<22} {', '.join(spec.blocks):<18} "
              f"{', '.join(map(str, spec.skip_connections)):<17} {', '.join(spec.norms)}")


def _print_presets():
    from deepfocus_radio.models import count_parameters, get_preset, list_models, resolve_config

    print("Presets (create_model(name, **overrides); parameters in the default form):")
    print(f"  {'name':<12} {'arch':<9} {'dmode':<12} {'dims':>4} {'in':>3} {'out':>5} "
          f"{'parameters':>12}")
    for name in list_models():
        config = resolve_config(get_preset(name))
        print(f"  {name:<12} {config['arch']:<9} {config['dmode']:<12} "
              f"{config['spatial_dims']:>4} {config['in_channels']:>3} "
              f"{config['out_channels']:>5} {count_parameters(config):>12,}")


def _print_pretrained(weights_dir):
    from deepfocus_radio.models import list_pretrained

    cards = list_pretrained(weights_dir=weights_dir)
    if not cards:
        print("Shipped models: none installed (load_model also accepts a path to a "
              ".safetensors or .pt file).")
        return
    print("Shipped models (load_model(name) or --model NAME):")
    for card in cards:
        config = card.config
        print(f"  {card.name}: {card.description or '(no description)'}")
        print(f"    arch {config.get('arch')} / {config.get('dmode')}, "
              f"{config.get('spatial_dims')}D, normalization {card.normalization}, "
              f"licence {card.licence or 'unspecified'}, sha256 {card.sha256[:12]}...")
        for key, (low, high) in sorted(card.training_ranges.items()):
            print(f"    trained on {key} in [{low}, {high}]")
        if card.scores:
            scores = ", ".join(f"{k} {v}" for k, v in sorted(card.scores.items()))
            print(f"    scores: {scores}")


def run(args):
    """Print the requested listings; returns 0."""
    if args.show:
        import json

        from deepfocus_radio.models import get_preset, resolve_config

        print(json.dumps(resolve_config(get_preset(args.show)), indent=2))
        return 0
    both = not (args.architectures or args.pretrained)
    if args.architectures or both:
        _print_architectures()
        _print_presets()
    if args.pretrained or both:
        _print_pretrained(args.weights_dir)
    return 0
