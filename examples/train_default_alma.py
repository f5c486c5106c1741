"""Retrain the shipped default model ``"alma"`` from scratch, exactly as shipped.

    python examples/train_default_alma.py            # simulate, train 3 phases, export (~1 h CPU)
    python examples/train_default_alma.py --export-only runs/alma_phase3

Steps: (1) simulate a training set with wide randomization (beam 3-8 px per FWHM, noise,
channel width, crowding) with a fixed seed; (2) train ``examples/configs/alma_default.yaml``
in three phases (:data:`PHASES`, each from the previous phase's best weights);
(3) write ``deepfocus_radio/models/weights/alma.safetensors`` and its card ``alma.json``
(training ranges, config, training time). Scores are added to the card by
``examples/evaluate_alma.py``.
"""

import argparse
import json
from pathlib import Path

from deepfocus_radio.models import load_model, save_pretrained
from deepfocus_radio.simulation import AlmaConfig, simulate_dataset
from deepfocus_radio.training import train

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "alma_default.yaml"

#: The simulated training distribution of the shipped model.
TRAINING_SIMULATION = dict(
    image_shape=(96, 96),
    n_channels_range=(24, 48),
    channel_width_range=(0.5e6, 4.0e6),
    start_frequency_range=(85.0e9, 360.0e9),
    beam_fwhm_pixels_range=(3.0, 8.0),
    noise_rms_range=(1.0e-4, 2.0e-3),
    n_sources_range=(0, 8),
)
SEED = 20261125

#: The three training phases of the shipped model; each starts from the previous best.
PHASES = [
    ("alma_default", []),
    ("alma_phase2", ["data.samples_per_cube=2", "optim.lr=1.0e-3", "optim.warmup_epochs=0"]),
    ("alma_phase3", ["data.samples_per_cube=2", "optim.lr=1.0e-3", "optim.warmup_epochs=0",
                     "train.epochs=10", "train.early_stopping=3"]),
]


def simulate(root, n_train, n_valid):
    """Write the training and validation cubes (skipped when already there)."""
    config = AlmaConfig(**TRAINING_SIMULATION)
    if (Path(root) / "Train" / "train_params.csv").exists():
        return config
    simulate_dataset(root, n_train=n_train, n_valid=n_valid, n_test=0, kind="alma",
                     config=config, seed=SEED)
    return config


def training_ranges(config, root):
    """Card ranges, in the keys that ``deconvolve`` checks, measured on the training cubes
    (the beam major axis in pixels spreads beyond the simulator's nominal FWHM range)."""
    from astropy import constants
    from astropy.io import fits

    majors = [fits.getheader(path)["BMAJ"] / abs(fits.getheader(path)["CDELT2"])
              for path in sorted((Path(root) / "Train").glob("dirty_cube_*.fits"))]
    c_kms = constants.c.to_value("km/s")
    lo_w, hi_w = config.channel_width_range
    lo_f, hi_f = config.start_frequency_range
    return {
        "beam_fwhm_pix": [round(min(majors), 2), round(max(majors), 2)],
        "channel_width_kms": [c_kms * lo_w / hi_f, c_kms * hi_w / lo_f],
        "noise_jy_beam": list(config.noise_rms_range),
    }


def _phase_history(run_dir):
    """Training records of a run and of the runs it started from (``train.init_from``)."""
    import yaml

    records = []
    while run_dir is not None:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        records = (metrics["history"] if isinstance(metrics, dict) else metrics) + records
        start = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())["train"].get("init_from")
        run_dir = Path(start).parent if start and (Path(start).parent / "metrics.json").exists() else None
    return records


def export(run_dir, config, root):
    """Write the best checkpoint of ``run_dir`` as the shipped model "alma"; the training
    time and epochs count every phase that led to it."""
    model = load_model(Path(run_dir) / "best.safetensors")
    history = _phase_history(run_dir)
    seconds = sum(record["seconds"] for record in history)
    epochs = len(history)
    card = save_pretrained(
        model, "alma", overwrite=True,
        training_ranges=training_ranges(config, root),
        tiling={"tile": [32, 96, 96], "halo": [8, 24, 24]},
        description="3D U-Net deconvolver for ALMA-like spectral-line cubes, trained on "
                    "the deepfocus_radio simulator (examples/train_default_alma.py)",
        metadata={"training_seconds": round(seconds), "epochs": epochs,
                  "best_val_loss": min(record["val_loss"] for record in history),
                  "simulation": json.dumps({k: list(v) if isinstance(v, tuple) else v
                                            for k, v in TRAINING_SIMULATION.items()}),
                  "retrain": "python examples/train_default_alma.py"},
    )
    print(f"wrote shipped model {card.name!r} ({card.sha256[:12]}...)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/alma_default")
    parser.add_argument("--n-train", type=int, default=240)
    parser.add_argument("--n-valid", type=int, default=24)
    parser.add_argument("--runs", default="runs", help="folder of the three phases' run folders")
    parser.add_argument("--export-only", metavar="RUN_DIR")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting applied to every phase")
    args = parser.parse_args()
    config = simulate(args.data, args.n_train, args.n_valid)
    if args.export_only:
        export(args.export_only, config, args.data)
        return
    previous = None
    for name, settings in PHASES:
        overrides = [f"data.root={args.data}", f"output.dir={Path(args.runs) / name}", *settings]
        if previous is not None:
            overrides.append(f"train.init_from={previous}")
        result = train(CONFIG, overrides=[*overrides, *args.set])
        previous = result.best_checkpoint
    export(result.output_dir, config, args.data)


if __name__ == "__main__":
    main()
