"""The training loop: :func:`train` and its result."""

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from deepfocus_radio.exceptions import ConfigError, InputDataError, OutputExistsError
from deepfocus_radio.training import checkpoint as ckpt
from deepfocus_radio.training.config import dump_config, load_config
from deepfocus_radio.training.losses import build_loss
from deepfocus_radio.training.plots import plot_learning_curves
from deepfocus_radio.training.prepare import build_datasets, model_config_for
from deepfocus_radio.training.records import write_history
from deepfocus_radio.training.schedule import LearningRateSchedule

__all__ = ["TrainResult", "train", "resolve_device"]


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    model : `torch.nn.Module`
        The model with the best validation loss (on CPU, in eval mode).
    output_dir : `~pathlib.Path`
        Run directory (checkpoints, ``config.yaml``, ``metrics.csv``, ``metrics.json``).
    best_checkpoint, last_checkpoint : `~pathlib.Path`
        ``best.safetensors`` and ``last.safetensors``.
    best_epoch : int
        0-based epoch of the best validation loss.
    best_val_loss : float
        Best validation loss (weighted loss in normalized units).
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``seconds``,
        ``samples_per_second`` (training throughput, validation excluded) and the mean of
        each loss term over the epoch (``train_<term>``).
    stopped_early : bool
        Early stopping (or a callback) ended the run before ``train.epochs``.
    """

    model: torch.nn.Module
    output_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_loss: float
    history: list = field(default_factory=list)
    stopped_early: bool = False


def resolve_device(name):
    """A `torch.device` from ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...

    Raises
    ------
    ConfigError
        CUDA requested but not available, or an unknown device name.
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"configuration key 'train.device' {name!r} is not a device: {exc}"
                          ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("configuration key 'train.device' asks for CUDA, which is not "
                          "available here; use 'auto' or 'cpu'")
    return device


def train(config, *, overrides=(), resume=None, callback=None):
    """Train a network from a configuration.

    Everything is checked (configuration keys, data folders and files, params columns,
    output directory, checkpoints to resume or start from) before the first step.

    Parameters
    ----------
    config : str, `~pathlib.Path` or Mapping
        YAML/TOML file or nested mapping (see :mod:`deepfocus_radio.training.config`).
    overrides : sequence of str, optional
        ``"section.key=value"`` settings applied on top of ``config``.
    resume : bool, optional
        Overrides ``train.resume``: continue from ``output.dir/last_state.pt``, exactly
        (same weights as an uninterrupted run on CPU with a fixed seed).
    callback : callable, optional
        ``callback(epoch, record) -> bool`` called after each epoch with its history
        record; returning True stops training after that epoch (used by sweeps).

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError, InputDataError, ModelMismatchError, CheckpointError, OutputExistsError
        Invalid configuration or data, detected before training starts.
    InputDataError
        Also when training diverges (non-finite training loss).
    """
    cfg = load_config(config, overrides=overrides)
    if resume is not None:
        cfg["train"]["resume"] = bool(resume)
    run = _Run(cfg)
    return run.fit(callback)


class _Run:
    """State of one training run (built and checked in ``__init__``)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.device = resolve_device(cfg["train"]["device"])
        amp = cfg["train"]["amp"]
        self.amp = self.device.type == "cuda" and amp in ("auto", True)
        self.bundle = build_datasets(cfg)
        self.model_config = model_config_for(cfg, self.bundle)
        self.output_dir = Path(cfg["output"]["dir"]).expanduser()
        self._check_output()
        from deepfocus_radio.models import build_model

        torch.manual_seed(cfg["train"]["seed"])  # dropout and other in-training draws
        self.model = build_model(self.model_config, seed=cfg["train"]["seed"])
        self._init_from(cfg["train"]["init_from"])
        self.memory_format = _memory_format(self.device, self.model_config)
        self.model.to(self.device, memory_format=self.memory_format)
        self.loss_fn = build_loss(cfg["loss"])
        self.optimizer = _make_optimizer(self.model, cfg["optim"])
        steps = math.ceil(len(self.bundle.datasets["Train"]) / cfg["train"]["batch_size"])
        self.schedule = LearningRateSchedule(
            self.optimizer, base_lr=cfg["optim"]["lr"], kind=cfg["optim"]["scheduler"],
            epochs=cfg["train"]["epochs"], steps_per_epoch=steps,
            warmup_epochs=cfg["optim"]["warmup_epochs"], min_lr=cfg["optim"]["min_lr"],
            plateau_factor=cfg["optim"]["plateau_factor"],
            plateau_patience=cfg["optim"]["plateau_patience"])
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.start_epoch, self.history = 0, []
        self.best_val_loss, self.best_epoch, self.bad_epochs = math.inf, -1, 0
        if cfg["train"]["resume"]:
            self._load_last()

    def _check_output(self):
        out = self.output_dir
        if self.cfg["train"]["resume"]:
            for name in (ckpt.LAST_NAME, ckpt.STATE_NAME):
                if not (out / name).is_file():
                    raise ConfigError(f"configuration key 'train.resume' is true but "
                                      f"{out / name} does not exist; train without resume first")
            return
        if out.exists() and any(out.iterdir()) and not self.cfg["output"]["overwrite"]:
            raise OutputExistsError(f"output.dir {str(out)!r} exists and is not empty; set "
                                    "output.overwrite: true, train.resume: true, or another dir")

    def _init_from(self, path):
        if path is None:
            return
        from deepfocus_radio.models import load_model

        source = load_model(path, device="cpu")
        ckpt.check_same_architecture(self.model_config, source.config, source=str(path))
        self.model.load_state_dict(source.state_dict())

    def _load_last(self):
        from deepfocus_radio.models import load_model

        last = load_model(self.output_dir / ckpt.LAST_NAME, device="cpu")
        ckpt.check_same_architecture(self.model_config, last.config,
                                     source=str(self.output_dir / ckpt.LAST_NAME))
        state = ckpt.load_state(self.output_dir / ckpt.STATE_NAME)
        self.model.load_state_dict(last.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.grad_scaler.load_state_dict(state["grad_scaler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.start_epoch = int(state["epoch"]) + 1
        self.history = list(state["history"])
        self.best_val_loss = float(state["best_val_loss"])
        self.best_epoch, self.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])

    def fit(self, callback):
        """Run the remaining epochs and return a :class:`TrainResult`."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        dump_config(self.cfg, self.output_dir / "config.yaml")
        stopped = False
        for epoch in range(self.start_epoch, self.cfg["train"]["epochs"]):
            record = self._epoch(epoch)
            stopped = self._after_epoch(epoch, record)
            if callback is not None and callback(epoch, record):
                stopped = True
            if stopped:
                break
        if self.history:
            plot_learning_curves(self.history, self.output_dir / "learning_curves.png")
        return self._result(stopped)

    def _epoch(self, epoch):
        started = time.perf_counter()
        train_loss, terms, n_samples = self._train_epoch(epoch)
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise InputDataError(
                f"training diverged in epoch {epoch + 1}: the training loss is {train_loss}; "
                "lower optim.lr, set optim.grad_clip, or check the data for NaNs")
        val_loss = self._validate()
        self.schedule.end_epoch(val_loss)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - started,
                  "samples_per_second": n_samples / train_seconds}
        record.update({f"train_{name}": value for name, value in terms.items()})
        self.history.append(record)
        return record

    def _loader(self, dataset, order):
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.cfg["train"]["batch_size"], sampler=order,
            num_workers=self.cfg["data"]["num_workers"], pin_memory=self.device.type == "cuda")

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.float16)

    def _train_epoch(self, epoch):
        dataset = self.bundle.datasets["Train"]
        dataset.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.cfg["train"]["seed"] * 100003 + epoch)
        order = torch.randperm(len(dataset), generator=generator).tolist()
        self.model.train()
        total, count, terms = 0.0, 0, {}
        progress = tqdm(self._loader(dataset, order), desc=f"epoch {epoch + 1}", leave=False,
                        disable=not self.cfg["train"]["progress"])
        for step, (inputs, targets) in enumerate(progress):
            self.schedule.step(epoch, step)
            loss = self._step(inputs, targets)
            total += loss * len(inputs)
            count += len(inputs)
            for name, value in self.loss_fn.last_terms.items():
                terms[name] = terms.get(name, 0.0) + value * len(inputs)
            progress.set_postfix(loss=f"{loss:.4g}")
        return total / count, {k: v / count for k, v in terms.items()}, count

    def _inputs(self, inputs):
        return inputs.to(self.device, memory_format=self.memory_format)

    def _step(self, inputs, targets):
        inputs, targets = self._inputs(inputs), targets.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = self.model(inputs)
        loss = self.loss_fn(outputs.float(), targets)
        self.grad_scaler.scale(loss).backward()
        clip = self.cfg["optim"]["grad_clip"]
        if clip:
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def _validate(self):
        dataset = self.bundle.datasets["Validation"]
        self.model.eval()
        total, count = 0.0, 0
        for inputs, targets in self._loader(dataset, list(range(len(dataset)))):
            inputs, targets = self._inputs(inputs), targets.to(self.device)
            with self._autocast():
                outputs = self.model(inputs)
            total += float(self.loss_fn(outputs.float(), targets)) * len(inputs)
            count += len(inputs)
        return total / count

    def _after_epoch(self, epoch, record):
        improved = record["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = record["val_loss"], epoch, 0
            ckpt.save_weights(self.model, self.output_dir / ckpt.BEST_NAME,
                              training=self._metadata(epoch, record))
        else:
            self.bad_epochs += 1
        ckpt.save_weights(self.model, self.output_dir / ckpt.LAST_NAME,
                          training=self._metadata(epoch, record))
        ckpt.save_state(self.output_dir / ckpt.STATE_NAME, self._state(epoch))
        write_history(self.history, self.output_dir)
        patience = self.cfg["train"]["early_stopping"]
        return patience is not None and self.bad_epochs >= patience

    def _metadata(self, epoch, record):
        bundle = self.bundle
        return {"config": self.cfg, "epoch": epoch, "val_loss": record["val_loss"],
                "normalization": self.cfg["data"]["normalization"],
                "scale": self.cfg["data"]["scale"],
                "target_scaler": bundle.scaler.to_dict() if bundle.scaler else None,
                "classes": bundle.classes}

    def _state(self, epoch):
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {"epoch": epoch, "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "grad_scaler": self.grad_scaler.state_dict(),
                "torch_rng": torch.get_rng_state(), "cuda_rng": cuda,
                "history": self.history, "best_val_loss": self.best_val_loss,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def _result(self, stopped):
        from deepfocus_radio.models import load_model

        best_path = self.output_dir / ckpt.BEST_NAME
        model = load_model(best_path, device="cpu").eval()
        return TrainResult(model=model, output_dir=self.output_dir, best_checkpoint=best_path,
                           last_checkpoint=self.output_dir / ckpt.LAST_NAME,
                           best_epoch=self.best_epoch, best_val_loss=self.best_val_loss,
                           history=list(self.history), stopped_early=stopped)


def _memory_format(device, model_config):
    """channels_last_3d for 3D networks on CPU: oneDNN's 3D convolution backward is several
    times faster in that layout than in the default one (measured with torch 2.13)."""
    if device.type == "cpu" and model_config.get("spatial_dims", 3) == 3:
        return torch.channels_last_3d
    return torch.preserve_format


def _make_optimizer(model, optim):
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, decay = optim["name"], optim["lr"], optim["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=optim["momentum"], weight_decay=decay)
    betas = tuple(float(b) for b in optim["betas"])
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"configuration key 'optim.betas' must be two numbers in [0, 1), "
                          f"got {optim['betas']!r}")
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, weight_decay=decay)
