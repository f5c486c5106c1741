"""``deepfocus demo``: the whole pipeline on a simulated cube, no input needed."""

NAME = "demo"
HELP = ("Simulate an ALMA-like cube, find its sources with the shipped model, print the "
        "catalogue and its score against the truth, and save PNGs.")
EXAMPLE = """example:
  deepfocus demo                       # writes demo_output/
  deepfocus demo --seed 3 --out /tmp/demo --model my_model.safetensors
"""


def add_arguments(parser):
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--model", default="alma", help="shipped model name or model file (default: alma)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated cube (default: 7)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    parser.add_argument("--channels", type=int, default=64, help="number of channels (default: 64)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args):
    from deepfocus_radio.demo import run_demo

    result = run_demo(args.out, model=args.model, seed=args.seed, image_size=args.size,
                      n_channels=args.channels, progress=not args.no_progress)
    columns = [c for c in ("id", "x", "y", "z", "ra", "dec", "freq", "peak", "flux",
                           "fwhm_major", "fwhm_minor", "pa", "line_fwhm", "snr")
               if c in result.catalog.colnames]
    shown = result.catalog[columns]
    for name in columns:
        if shown[name].dtype.kind == "f":
            shown[name].info.format = ".4g"
    print(f"{len(result.catalog)} sources found in {result.seconds:.1f} s "
          f"(deconvolution, detection, characterization):\n")
    shown.pprint(max_lines=-1, max_width=-1)
    print(f"\nscore against the {len(result.truth)} true sources:\n{result.report}\n")
    for label, path in result.files.items():
        print(f"{label:>20}: {path}")
    return 0
