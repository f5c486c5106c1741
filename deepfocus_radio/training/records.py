"""Per-epoch metrics files of a run: ``metrics.csv`` and ``metrics.json``."""

import csv
import io
import json
from pathlib import Path

from deepfocus_radio._atomic import atomic_write

__all__ = ["write_history", "read_history", "atomic_write_text"]


def atomic_write_text(path, text):
    """Write text to a temporary file next to ``path``, then rename it over ``path``."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_history(history, directory):
    """Write the epoch records as ``metrics.csv`` and ``metrics.json`` in ``directory``.

    ``metrics.json`` holds ``{"history": [records], "best_epoch": int,
    "best_val_loss": float}``; ``metrics.csv`` one row per epoch.

    Parameters
    ----------
    history : list of dict
        Records with the same or growing sets of keys (missing values left empty); each
        has ``epoch`` and ``val_loss``.
    directory : str or `~pathlib.Path`
        Run directory.
    """
    directory = Path(directory)
    columns = []
    for record in history:
        columns += [key for key in record if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(directory / "metrics.csv", buffer.getvalue())
    best = min(history, key=lambda r: r["val_loss"]) if history else None
    summary = {"history": history, "best_epoch": best["epoch"] if best else None,
               "best_val_loss": best["val_loss"] if best else None}
    atomic_write_text(directory / "metrics.json", json.dumps(summary, indent=1))


def read_history(directory):
    """Epoch records of a run directory (from ``metrics.json``); empty when absent."""
    path = Path(directory) / "metrics.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text())["history"])
