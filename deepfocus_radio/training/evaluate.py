"""Run a trained network on a split (Test by default): predictions, report, plots.

This is the ``deepfocus test`` command; the function is called ``evaluate`` so that
pytest does not collect it.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.exceptions import CheckpointError, ConfigError, OutputExistsError
from deepfocus_radio.training import checkpoint as ckpt
from deepfocus_radio.training.config import load_config, resolve_config
from deepfocus_radio.training.data import NoiseCache, find_cubes, open_cube_array
from deepfocus_radio.training.loop import resolve_device
from deepfocus_radio.training.metrics import (
    classification_metrics,
    image_metrics,
    regression_metrics,
)
from deepfocus_radio.training.plots import (
    plot_confusion_matrix,
    plot_cube_panels,
    plot_error_histograms,
    plot_learning_curves,
    plot_scatter,
    plot_spectra,
)
from deepfocus_radio.training.prepare import build_datasets, split_dir
from deepfocus_radio.training.records import atomic_write_text, read_history
from deepfocus_radio.training.scaling import TargetScaler

__all__ = ["EvaluationResult", "evaluate", "write_prediction_cube"]

_CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


@dataclass
class EvaluationResult:
    """What :func:`evaluate` produced.

    Attributes
    ----------
    output_dir : `~pathlib.Path`
        Folder of the outputs.
    metrics : dict
        Summary metrics (see :func:`evaluate`).
    rows : list of dict
        Per-cube (deconvolver) or per-source (regressor, classifier) results, as in
        ``report.csv``.
    predictions : list of `~pathlib.Path`
        Prediction files (FITS cubes, or ``predictions.csv``).
    plots : list of `~pathlib.Path`
        PNG files.
    report : `~pathlib.Path`
        ``report.json``.
    """

    output_dir: Path
    metrics: dict
    rows: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    plots: list = field(default_factory=list)
    report: Path | None = None


def evaluate(checkpoint, *, data_root=None, output_dir=None, split="Test", device="auto",
             n_plots=3, overwrite=False, progress=True):
    """Run a checkpoint on a split and write predictions, a report and plots.

    Parameters
    ----------
    checkpoint : str, `~pathlib.Path` or Mapping
        A ``.safetensors`` file written by :func:`~deepfocus_radio.training.train`, a run
        directory (its ``best.safetensors`` is used), a training configuration (file or
        mapping; its ``output.dir`` is the run directory), or a shipped deconvolver name
        such as ``"alma"`` (then ``data_root`` and ``output_dir`` are required).
    data_root : str or `~pathlib.Path`, optional
        Data folder (default: the training configuration's ``data.root``).
    output_dir : str or `~pathlib.Path`, optional
        Output folder (default: ``<run dir>/eval_<split>``).
    split : {'Test', 'Validation', 'Train'}, optional
        Split to evaluate.
    device : str, optional
        ``auto`` (CUDA when present), ``cpu``, ``cuda``...
    n_plots : int, optional
        Number of cubes (deconvolver) drawn as moment-0 panels and spectra.
    overwrite : bool, optional
        Allow writing into a non-empty ``output_dir``.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    EvaluationResult
        Deconvolver: ``prediction_cube_<ID>.fits`` (the dirty cube's WCS and beam, Jy/beam);
        metrics ``l1``, ``mse`` (Jy/beam), ``ssim``, ``psnr`` (dB), ``flux_recovery`` (over
        the voxels where the clean cube exceeds 3 times the dirty cube's channel noise)
        against the clean cube, for the prediction, the dirty cube and, when
        ``tclean_cube_<ID>.fits`` exists, the CLEAN baseline (mean over cubes under
        ``metrics[method]``).
        Regressor: ``predictions.csv``; per-parameter bias, scatter, median relative error,
        fraction within 10%. Classifier: ``predictions.csv``; accuracy, per-class precision
        and recall, confusion matrix.

    Raises
    ------
    CheckpointError
        The checkpoint was not written by training and is not a deconvolver.
    ConfigError, InputDataError
        Missing data folder, empty split, missing params columns.
    OutputExistsError
        ``output_dir`` is not empty and ``overwrite`` is false.
    """
    model, cfg, training, run_dir = _load(checkpoint, data_root)
    out = _output_dir(output_dir, run_dir, split, overwrite)
    device = resolve_device(device)
    model = model.to(device).eval()
    if cfg["model"]["dmode"] == "deconvolver":
        result = _evaluate_deconvolver(model, cfg, split, out, device, n_plots, progress)
    else:
        result = _evaluate_sources(model, cfg, training, split, out, device)
    if run_dir is not None and read_history(run_dir):
        result.plots.append(plot_learning_curves(read_history(run_dir),
                                                 out / "learning_curves.png"))
    _write_report(result, checkpoint, split)
    return result


def _load(checkpoint, data_root):
    from deepfocus_radio.models import load_model

    run_dir = None
    if isinstance(checkpoint, Mapping) or Path(str(checkpoint)).suffix in _CONFIG_SUFFIXES:
        run_dir = Path(load_config(checkpoint)["output"]["dir"]).expanduser()
        checkpoint = run_dir / ckpt.BEST_NAME
    elif Path(str(checkpoint)).is_dir():
        run_dir = Path(checkpoint)
        checkpoint = run_dir / ckpt.BEST_NAME
    elif Path(str(checkpoint)).is_file():
        run_dir = Path(checkpoint).parent
    model = load_model(checkpoint, device="cpu")
    training = ckpt.training_metadata(getattr(model, "metadata", None))
    if training:
        raw = dict(training["config"])
    elif model.config.get("dmode") == "deconvolver":
        card = getattr(model, "card", None)
        raw = {"model": {"dmode": "deconvolver"},
               "data": {"normalization": getattr(card, "normalization", None) or "channel_noise"}}
    else:
        raise CheckpointError(f"{checkpoint} holds no training metadata; evaluating a "
                              f"{model.config.get('dmode')} needs a checkpoint written by train")
    raw.setdefault("data", {})
    if data_root is not None:
        raw["data"]["root"] = str(data_root)
    if raw["data"].get("root") is None:
        raise ConfigError("no data root: pass data_root (deepfocus test --data ROOT)")
    raw["model"] = {**raw.get("model", {}), "dmode": model.config["dmode"]}
    return model, resolve_config(raw), training, run_dir


def _output_dir(output_dir, run_dir, split, overwrite):
    if output_dir is None:
        if run_dir is None:
            raise ConfigError("output_dir is required when evaluating a shipped model")
        output_dir = run_dir / f"eval_{split.lower()}"
    out = Path(output_dir).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output directory {str(out)!r} is not empty; pass "
                                "overwrite=True (--overwrite) or choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


@torch.no_grad()
def predict_cube(model, normalized, *, device, batch_size=8):
    """Run a deconvolver on a whole normalized (chan, y, x) cube.

    Parameters
    ----------
    model : `torch.nn.Module`
        2D (applied channel by channel) or 3D deconvolver, in eval mode.
    normalized : ndarray, shape (chan, y, x)
        Input divided by its noise; NaNs are fed as 0. The cube is processed whole (test
        cubes); use :func:`deepfocus_radio.deconvolve` for cubes larger than memory.
    device : `torch.device`
    batch_size : int, optional
        Channels per batch of a 2D model.

    Returns
    -------
    ndarray, shape (chan, y, x), float32
    """
    data = np.nan_to_num(np.asarray(normalized, dtype=np.float32), nan=0.0, posinf=0.0,
                         neginf=0.0)
    data = torch.from_numpy(np.ascontiguousarray(data))
    if model.config.get("spatial_dims", 3) == 3:
        return model(data[None, None].to(device))[0, 0].float().cpu().numpy()
    planes = [model(data[i:i + batch_size, None].to(device))[:, 0].float().cpu()
              for i in range(0, len(data), batch_size)]
    return torch.cat(planes).numpy()


def write_prediction_cube(data, reference, path):
    """Write a cube with the WCS, beam and unit of a reference FITS cube, atomically.

    Parameters
    ----------
    data : ndarray, shape (chan, y, x)
        Values in the reference's brightness unit.
    reference : str or `~pathlib.Path`
        FITS cube read by spectral-cube (degenerate Stokes dropped; several beams are
        replaced by their common beam, which a deconvolved cube is restored to).
    path : str or `~pathlib.Path`
        Output FITS file.

    Returns
    -------
    `~pathlib.Path`
    """
    from spectral_cube import SpectralCube

    cube = SpectralCube.read(str(reference))
    beam = cube.beam if hasattr(cube, "beam") else cube.beams.common_beam()
    out = SpectralCube(data=np.asarray(data, dtype=np.float32) * cube.unit, wcs=cube.wcs,
                       beam=beam, meta=dict(cube.meta))
    return atomic_write(path, lambda tmp: out.write(str(tmp), format="fits"))


def _evaluate_deconvolver(model, cfg, split, out, device, n_plots, progress):
    records = find_cubes(split_dir(cfg, split))
    if not records:
        raise ConfigError(f"split {split} in data.root is empty: no dirty/clean cube pair")
    noise_cache = NoiseCache(cfg["data"]["normalization"], scale=cfg["data"]["scale"])
    dirty_noise = NoiseCache("channel_noise")
    result = EvaluationResult(output_dir=out, metrics={})
    for index, record in enumerate(tqdm(records, desc=f"evaluate {split}", disable=not progress)):
        factors = noise_cache.factors(record)
        noise = dirty_noise.factors(record)  # flux-recovery mask: clean > 3 x dirty noise
        dirty = np.asarray(open_cube_array(record.dirty), dtype=np.float32)
        prediction = predict_cube(model, dirty / factors[:, None, None], device=device,
                                  batch_size=cfg["train"]["batch_size"]) * factors[:, None, None]
        clean = np.asarray(open_cube_array(record.clean), dtype=np.float32)
        cubes = {"prediction": prediction, "dirty": dirty}
        if record.tclean is not None:
            cubes["tclean"] = np.asarray(open_cube_array(record.tclean), dtype=np.float32)
        for method, cube in cubes.items():
            row = {"ID": record.cube_id, "method": method}
            row.update(image_metrics(cube, clean, noise=noise))
            result.rows.append(row)
        result.predictions.append(write_prediction_cube(
            prediction, record.dirty, out / f"prediction_cube_{record.cube_id}.fits"))
        if index < n_plots:
            result.plots += _cube_plots(record, cubes, clean, out)
    result.metrics = _mean_by_method(result.rows)
    return result


def _cube_plots(record, cubes, clean, out):
    panels = {"dirty": cubes["dirty"], "target (clean)": clean,
              "prediction": cubes["prediction"], "residual (prediction - target)":
              cubes["prediction"] - clean}
    if "tclean" in cubes:
        panels["tclean"] = cubes["tclean"]
    paths = [plot_cube_panels(panels, out / f"panels_{record.cube_id}.png",
                              title=f"cube {record.cube_id}")]
    _, y, x = np.unravel_index(int(np.argmax(clean)), clean.shape)
    spectra = {"dirty": cubes["dirty"][:, y, x], "target (clean)": clean[:, y, x],
               "prediction": cubes["prediction"][:, y, x]}
    if "tclean" in cubes:
        spectra["tclean"] = cubes["tclean"][:, y, x]
    paths.append(plot_spectra(spectra, out / f"spectrum_{record.cube_id}.png",
                              title=f"cube {record.cube_id}, brightest pixel x={x}, y={y}"))
    return paths


def _mean_by_method(rows):
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        chosen = [r for r in rows if r["method"] == method]
        keys = [k for k in chosen[0] if k not in ("ID", "method")]
        summary[method] = {k: _nanmean([r[k] for r in chosen]) for k in keys}
        summary[method]["n_cubes"] = len(chosen)
    return summary


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


@torch.no_grad()
def _network_outputs(model, dataset, device, batch_size):
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    outputs, targets = [], []
    for inputs, target in loader:
        outputs.append(model(inputs.to(device)).float().cpu())
        targets.append(target)
    return torch.cat(outputs).numpy(), torch.cat(targets).numpy()


def _evaluate_sources(model, cfg, training, split, out, device):
    dmode = cfg["model"]["dmode"]
    scaler = TargetScaler.from_dict(training["target_scaler"]) if dmode == "regressor" else None
    bundle = build_datasets(cfg, splits=(split,), scaler=scaler, classes=training.get("classes"),
                            augment=False)
    dataset = bundle.datasets[split]
    outputs, targets = _network_outputs(model, dataset, device, cfg["train"]["batch_size"])
    result = EvaluationResult(output_dir=out, metrics={})
    if dmode == "regressor":
        _regression_outputs(result, dataset, scaler, outputs)
    else:
        _classification_outputs(result, dataset, outputs, targets)
    path = out / "predictions.csv"
    _write_csv(result.rows, path)
    result.predictions.append(path)
    return result


def _source_row(dataset, index):
    row = dataset.table[index]
    return {"ID": row["ID"], "x": float(row["x"]), "y": float(row["y"]), "z": float(row["z"])}


def _regression_outputs(result, dataset, scaler, outputs):
    columns = dataset.targets
    predicted = scaler.inverse(outputs)
    true = np.array([[dataset.raw_parameters(i)[c] for c in columns] for i in range(len(dataset))])
    origin = {"z": 0, "y": 1, "x": 2}
    for i in range(len(dataset)):
        row = _source_row(dataset, i)
        corner = dataset.cutout_origin(i)
        for j, column in enumerate(columns):
            shift = corner[origin[column]] if column in origin else 0.0
            row[f"true_{column}"] = float(true[i, j] + shift)
            row[f"pred_{column}"] = float(predicted[i, j] + shift)
        result.rows.append(row)
    result.metrics = regression_metrics(true, predicted, columns)
    result.plots.append(plot_scatter(true, predicted, columns, result.output_dir / "scatter.png"))
    errors = {c: _wrapped(c, predicted[:, j] - true[:, j]) for j, c in enumerate(columns)}
    result.plots.append(plot_error_histograms(errors, result.output_dir / "errors.png"))


def _wrapped(column, error):
    return np.mod(error + 90.0, 180.0) - 90.0 if column == "pa" else error


def _classification_outputs(result, dataset, outputs, targets):
    classes = dataset.classes
    probabilities = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    for i in range(len(dataset)):
        row = _source_row(dataset, i)
        row.update({"true": classes[int(targets[i])], "predicted": classes[int(predicted[i])]})
        row.update({f"p_{c}": float(p) for c, p in zip(classes, probabilities[i])})
        result.rows.append(row)
    result.metrics = classification_metrics(targets, predicted, classes)
    result.plots.append(plot_confusion_matrix(result.metrics["confusion_matrix"], classes,
                                              result.output_dir / "confusion_matrix.png"))


def _write_csv(rows, path):
    import csv
    import io

    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _write_report(result, checkpoint, split):
    report = {"checkpoint": str(checkpoint) if not isinstance(checkpoint, Mapping) else None,
              "split": split, "metrics": result.metrics, "rows": result.rows,
              "predictions": [str(p) for p in result.predictions],
              "plots": [str(p) for p in result.plots]}
    result.report = result.output_dir / "report.json"
    atomic_write_text(result.report, json.dumps(report, indent=1, default=float))
    _write_csv(result.rows, result.output_dir / "report.csv")
