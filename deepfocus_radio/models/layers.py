"""Layer factories keyed by ``spatial_dims``, so one network class serves 2D and 3D.

In the manner of MONAI's ``Conv[Conv.CONV, spatial_dims]``: :func:`layer_type` returns the
torch class for a kind of layer and a number of spatial dimensions, and the ``make_*``
helpers build normalization and activation layers from the names used in model
configurations.
"""

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "LAYER_KINDS",
    "NORMS",
    "as_tuple",
    "init_weights",
    "layer_type",
    "make_activation",
    "make_norm",
    "same_padding",
]

_LAYERS = {
    "conv": {2: nn.Conv2d, 3: nn.Conv3d},
    "conv_transpose": {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d},
    "batch": {2: nn.BatchNorm2d, 3: nn.BatchNorm3d},
    "instance": {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d},
    "max_pool": {2: nn.MaxPool2d, 3: nn.MaxPool3d},
    "avg_pool": {2: nn.AvgPool2d, 3: nn.AvgPool3d},
    "adaptive_avg_pool": {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
}

#: Kinds of layer that :func:`layer_type` knows.
LAYER_KINDS = tuple(_LAYERS)

#: Normalization names accepted by :func:`make_norm`.
NORMS = ("none", "batch", "instance")

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}

#: Activation names accepted by :func:`make_activation`.
ACTIVATIONS = tuple(_ACTIVATIONS)


def layer_type(kind, spatial_dims):
    """Return the torch layer class of a kind for 2 or 3 spatial dimensions.

    Parameters
    ----------
    kind : str
        One of :data:`LAYER_KINDS` (``"conv"``, ``"conv_transpose"``, ``"batch"``,
        ``"instance"``, ``"max_pool"``, ``"avg_pool"``, ``"adaptive_avg_pool"``).
    spatial_dims : int
        2 for images (y, x), 3 for cubes (chan, y, x).

    Returns
    -------
    type
        A subclass of :class:`torch.nn.Module`, e.g. :class:`torch.nn.Conv3d`.

    Raises
    ------
    ValueError
        If ``kind`` or ``spatial_dims`` is not supported.
    """
    if kind not in _LAYERS:
        raise ValueError(f"unknown layer kind {kind!r}; allowed: {list(_LAYERS)}")
    if spatial_dims not in _LAYERS[kind]:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return _LAYERS[kind][spatial_dims]


def make_norm(norm, channels, spatial_dims):
    """Build a normalization layer, or :class:`torch.nn.Identity` for ``"none"``.

    Parameters
    ----------
    norm : {"none", "batch", "instance"}
        Normalization name; instance norm is affine.
    channels : int
        Number of feature channels.
    spatial_dims : int
        2 or 3.

    Returns
    -------
    torch.nn.Module
    """
    if norm == "none":
        return nn.Identity()
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {list(NORMS)}")
    if norm == "instance":
        return layer_type("instance", spatial_dims)(channels, affine=True)
    return layer_type(norm, spatial_dims)(channels)


def make_activation(name):
    """Build an activation layer by name (one of :data:`ACTIVATIONS`)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def as_tuple(value, spatial_dims):
    """Return ``value`` as a tuple of length ``spatial_dims`` (an int is repeated)."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(int(v) for v in value)
    if len(value) != spatial_dims:
        raise ValueError(f"expected {spatial_dims} values, got {len(value)}: {value}")
    return value


def same_padding(kernel_size, spatial_dims):
    """Padding that keeps the size for an odd kernel at stride 1 (``k // 2`` per axis)."""
    return tuple(k // 2 for k in as_tuple(kernel_size, spatial_dims))


@torch.no_grad()
def init_weights(module):
    """Initialize a network as torchvision does: He-normal convolutions, unit norms.

    Convolutions get ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` and zero
    bias; affine normalization layers get weight 1 and bias 0; linear layers keep
    PyTorch's default initialization.

    Parameters
    ----------
    module : torch.nn.Module
        Network to initialize in place.
    """
    conv_types = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    norm_types = (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    for sub in module.modules():
        if isinstance(sub, conv_types):
            nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, norm_types) and sub.weight is not None:
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
