"""``build_model``: from a configuration mapping to a network carrying its configuration."""

import torch

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models.cae import ConvAutoencoder
from deepfocus_radio.models.config import resolve_config
from deepfocus_radio.models.densenet import DenseNet
from deepfocus_radio.models.resnet import ResNet
from deepfocus_radio.models.unet import UNet
from deepfocus_radio.models.vgg import VGG

__all__ = ["build_model", "count_parameters", "predict_proba"]

# Network class of each arch, and the configuration keys it does not take as arguments
# (fixed by the architecture, kept in the configuration for the record).
_NETWORKS = {
    "cae": (ConvAutoencoder, ("arch", "dmode")),
    "unet": (UNet, ("arch", "dmode")),
    "resnet": (ResNet, ("arch", "dmode")),
    "densenet": (DenseNet, ("arch", "dmode", "skip_connections")),
    "vgg": (VGG, ("arch", "dmode", "block", "skip_connections")),
}


def build_model(config, *, seed=None):
    """Build a network from a configuration mapping.

    Parameters
    ----------
    config : Mapping
        Model configuration (DESIGN.md "Model configuration"); see the table in
        :mod:`deepfocus_radio.models` for the keys of each ``arch``. Not modified.
    seed : int, optional
        Seed of the random weight initialization; ``None`` uses torch's global generator.
        The global generator's state is left untouched when a seed is given.

    Returns
    -------
    torch.nn.Module
        The network, in training mode, on the current default device (use
        ``with torch.device("meta"):`` to build without allocating memory). Its
        ``config`` attribute is a plain JSON-serializable dict with every default filled
        in, so that ``build_model(model.config)`` rebuilds the same architecture.

    Raises
    ------
    ConfigError
        If the configuration is invalid; the message names the key and allowed values.
    """
    resolved = resolve_config(config)
    network, fixed = _NETWORKS[resolved["arch"]]
    options = {key: value for key, value in resolved.items() if key not in fixed}
    if seed is None:
        model = network(**options)
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer or None; got {seed!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = network(**options)
    # Weights stay in the default (contiguous) layout: channels-last is ~2x faster for
    # CPU inference but torch 2.13 corrupts the heap in the backward pass of a strided 1x1
    # convolution with channels-last weights on CPU (the ResNet projection shortcut).
    model.config = resolved
    return model


def count_parameters(model, *, trainable_only=False):
    """Count the parameters of a network, or of the network a configuration describes.

    Parameters
    ----------
    model : torch.nn.Module or Mapping
        A network, or a configuration (built on the ``meta`` device: no memory used).
    trainable_only : bool, optional
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        Number of scalar parameters.
    """
    if not isinstance(model, torch.nn.Module):
        with torch.device("meta"):
            model = build_model(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def predict_proba(model, inputs):
    """Class probabilities of a classifier: softmax of its logits, in eval mode, no gradient.

    Parameters
    ----------
    model : torch.nn.Module
        A network built with ``dmode="classifier"``.
    inputs : torch.Tensor
        Batch of shape (batch, in_channels, *spatial).

    Returns
    -------
    torch.Tensor
        Shape (batch, n_classes); each row sums to 1. The model's training mode is restored.

    Raises
    ------
    ConfigError
        If the model is not a classifier.
    """
    dmode = (getattr(model, "config", None) or {}).get("dmode")
    if dmode != "classifier":
        raise ConfigError(f"predict_proba needs a model with dmode 'classifier'; this one has "
                          f"dmode {dmode!r}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.softmax(model(inputs), dim=1)
    finally:
        model.train(was_training)
