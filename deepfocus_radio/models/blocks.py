"""Building blocks shared by the architectures: conv units, residual blocks, heads.

Every block takes ``spatial_dims`` and builds its layers through
:func:`~deepfocus_radio.models.layers.layer_type`, so the same code serves images
(2D) and cubes (3D).
"""

import torch
from torch import nn

from deepfocus_radio.models.layers import (
    as_tuple,
    layer_type,
    make_activation,
    make_norm,
    same_padding,
)

__all__ = [
    "FINAL_ACTIVATIONS",
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "PredictionHead",
    "make_final_activation",
]

_FINAL_ACTIVATIONS = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}

#: Names accepted for ``final_activation`` (applied to the network output).
FINAL_ACTIVATIONS = tuple(_FINAL_ACTIVATIONS)


def make_final_activation(name):
    """Build the output activation by name (one of :data:`FINAL_ACTIVATIONS`)."""
    if name not in _FINAL_ACTIVATIONS:
        raise ValueError(f"unknown final activation {name!r}; allowed: {list(_FINAL_ACTIVATIONS)}")
    return _FINAL_ACTIVATIONS[name]()


def _conv(spatial_dims, in_channels, out_channels, kernel_size, *, stride=1, bias):
    return layer_type("conv", spatial_dims)(
        in_channels,
        out_channels,
        kernel_size=as_tuple(kernel_size, spatial_dims),
        stride=stride,
        padding=same_padding(kernel_size, spatial_dims),
        bias=bias,
    )


class ConvNormAct(nn.Sequential):
    """Convolution, normalization, activation (the convolution has a bias only without norm).

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Feature channels in and out.
    kernel_size : int or sequence of int
        Odd kernel size, one value or one per spatial axis (pixels).
    stride : int or sequence of int, optional
        Convolution stride.
    norm : str
        ``"none"``, ``"batch"`` or ``"instance"``.
    activation : str or None
        Activation name; ``None`` for no activation.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, kernel_size, *, stride=1,
                 norm, activation):
        layers = [
            _conv(spatial_dims, in_channels, out_channels, kernel_size, stride=stride,
                  bias=norm == "none"),
            make_norm(norm, out_channels, spatial_dims),
        ]
        if activation is not None:
            layers.append(make_activation(activation))
        super().__init__(*layers)


def _shortcut(spatial_dims, in_channels, out_channels, stride, norm):
    strides = as_tuple(stride, spatial_dims)
    if in_channels == out_channels and all(s == 1 for s in strides):
        return nn.Identity()
    return ConvNormAct(spatial_dims, in_channels, out_channels, 1, stride=stride, norm=norm,
                       activation=None)


class BasicBlock(nn.Module):
    """Two ``kernel_size`` convolutions, with an identity/projection shortcut if residual.

    The ResNet-18/34 block when ``residual=True``; the classic U-Net "double conv" when
    ``residual=False``.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Feature channels in and out.
    stride : int or sequence of int
        Stride of the first convolution.
    kernel_size : int or sequence of int
        Odd kernel size (pixels).
    norm, activation : str
        Layer names (see :mod:`deepfocus_radio.models.layers`).
    residual : bool
        Add the shortcut before the last activation.
    """

    def __init__(self, spatial_dims, in_channels, out_channels, *, stride=1, kernel_size=3,
                 norm, activation, residual):
        super().__init__()
        self.conv1 = ConvNormAct(spatial_dims, in_channels, out_channels, kernel_size,
                                 stride=stride, norm=norm, activation=activation)
        self.conv2 = ConvNormAct(spatial_dims, out_channels, out_channels, kernel_size,
                                 norm=norm, activation=None)
        self.shortcut = (_shortcut(spatial_dims, in_channels, out_channels, stride, norm)
                         if residual else None)
        self.act = make_activation(activation)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Bottleneck(nn.Module):
    """1x1 reduce, ``kernel_size`` convolution (strided), 1x1 expand, plus a shortcut.

    The ResNet-50 (v1.5, stride on the middle convolution) block when
    ``out_channels = 4 * mid_channels``.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, mid_channels, out_channels : int
        Feature channels in, inside the bottleneck, and out.
    stride : int or sequence of int
        Stride of the middle convolution.
    kernel_size : int or sequence of int
        Odd kernel size of the middle convolution (pixels).
    norm, activation : str
        Layer names.
    residual : bool
        Add the shortcut before the last activation.
    """

    def __init__(self, spatial_dims, in_channels, mid_channels, out_channels, *, stride=1,
                 kernel_size=3, norm, activation, residual):
        super().__init__()
        self.conv1 = ConvNormAct(spatial_dims, in_channels, mid_channels, 1, norm=norm,
                                 activation=activation)
        self.conv2 = ConvNormAct(spatial_dims, mid_channels, mid_channels, kernel_size,
                                 stride=stride, norm=norm, activation=activation)
        self.conv3 = ConvNormAct(spatial_dims, mid_channels, out_channels, 1, norm=norm,
                                 activation=None)
        self.shortcut = (_shortcut(spatial_dims, in_channels, out_channels, stride, norm)
                         if residual else None)
        self.act = make_activation(activation)

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class PredictionHead(nn.Module):
    """Global pooling and fully connected layers mapping features to outputs.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_features : int
        Feature channels entering the head.
    out_features : int
        Number of regressed values or class logits.
    pool_size : int, optional
        Side of the adaptive average pooling grid (1 = global average).
    hidden_features : sequence of int, optional
        Widths of hidden fully connected layers (VGG uses ``[4096, 4096]``).
    activation : str, optional
        Activation between hidden layers.
    dropout : float, optional
        Dropout probability before every fully connected layer after the first hidden
        one, or before the only layer when there is no hidden layer.
    final_activation : str, optional
        Activation applied to the outputs (``"none"`` for logits).
    """

    def __init__(self, spatial_dims, in_features, out_features, *, pool_size=1,
                 hidden_features=(), activation="relu", dropout=0.0, final_activation="none"):
        super().__init__()
        self.pool = layer_type("adaptive_avg_pool", spatial_dims)(pool_size)
        width = in_features * pool_size**spatial_dims
        layers = []
        for hidden in hidden_features:
            layers += [nn.Linear(width, hidden), make_activation(activation), nn.Dropout(dropout)]
            width = hidden
        if not hidden_features:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width, out_features), make_final_activation(final_activation)]
        self.fc = nn.Sequential(*layers)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))
