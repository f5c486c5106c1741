"""DenseNet regressors and classifiers in 2D and 3D (Huang et al. 2017; torchvision layout).

With ``block="bottleneck"`` (DenseNet-BC), ``growth_rate=32``, ``bn_size=4``,
``compression=0.5`` and ``depths=[6, 12, 24, 16]`` this is DenseNet-121.
``block="basic"`` drops the 1x1 bottleneck convolution of each dense layer.
"""

import torch
from torch import nn

from deepfocus_radio.models.blocks import PredictionHead
from deepfocus_radio.models.layers import (
    as_tuple,
    init_weights,
    layer_type,
    make_activation,
    make_norm,
    same_padding,
)
from deepfocus_radio.models.resnet import make_stem

__all__ = ["DenseNet"]


def _norm_act_conv(spatial_dims, in_channels, out_channels, kernel_size, *, norm, activation):
    conv = layer_type("conv", spatial_dims)(
        in_channels, out_channels, kernel_size=as_tuple(kernel_size, spatial_dims),
        padding=same_padding(kernel_size, spatial_dims), bias=norm == "none")
    return [make_norm(norm, in_channels, spatial_dims), make_activation(activation), conv]


class _DenseLayer(nn.Sequential):
    """Pre-activation layer producing ``growth_rate`` new feature maps."""

    def __init__(self, spatial_dims, in_channels, *, growth_rate, bn_size, bottleneck,
                 kernel_size, norm, activation):
        layers = []
        if bottleneck:
            layers += _norm_act_conv(spatial_dims, in_channels, bn_size * growth_rate, 1,
                                     norm=norm, activation=activation)
            in_channels = bn_size * growth_rate
        layers += _norm_act_conv(spatial_dims, in_channels, growth_rate, kernel_size,
                                 norm=norm, activation=activation)
        super().__init__(*layers)


class _DenseBlock(nn.Module):
    """Layers each seeing the concatenation of all previous feature maps."""

    def __init__(self, spatial_dims, in_channels, depth, **layer_options):
        super().__init__()
        growth = layer_options["growth_rate"]
        self.layers = nn.ModuleList(
            _DenseLayer(spatial_dims, in_channels + i * growth, **layer_options)
            for i in range(depth)
        )

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


def _transition(spatial_dims, in_channels, out_channels, *, norm, activation):
    # ceil_mode keeps a 1-pixel axis at 1 pixel instead of 0, so small inputs pass.
    return nn.Sequential(
        *_norm_act_conv(spatial_dims, in_channels, out_channels, 1, norm=norm,
                        activation=activation),
        layer_type("avg_pool", spatial_dims)(kernel_size=2, stride=2, ceil_mode=True),
    )


class DenseNet(nn.Module):
    """Densely connected network with a fully connected head.

    Parameters
    ----------
    spatial_dims : int
        2 (images) or 3 (cubes).
    in_channels, out_channels : int
        Input channels; regressed values or class logits.
    block : {"basic", "bottleneck"}
        Dense layer type (``"bottleneck"`` = DenseNet-BC).
    depths : sequence of int
        Dense layers per block; each transition halves each spatial axis.
    growth_rate : int
        Feature maps added by each dense layer.
    bn_size : int
        Bottleneck width as a multiple of ``growth_rate``.
    compression : float
        Fraction of feature maps kept by each transition, in (0, 1].
    init_features : int
        Width of the stem.
    stem : {"imagenet", "small"}
        Stem type (see :func:`~deepfocus_radio.models.resnet.make_stem`).
    kernel_size : int or sequence of int
        Odd kernel of the dense layers (pixels).
    activation, norm, final_activation : str
        Layer names.
    dropout : float
        Dropout probability before the fully connected layer.
    """

    def __init__(self, *, spatial_dims, in_channels, out_channels, block, depths, growth_rate,
                 bn_size, compression, init_features, stem, kernel_size, activation, norm,
                 dropout, final_activation):
        super().__init__()
        self.stem = make_stem(spatial_dims, in_channels, init_features, stem=stem,
                              kernel_size=kernel_size, norm=norm, activation=activation)
        layer_options = dict(growth_rate=growth_rate, bn_size=bn_size,
                             bottleneck=block == "bottleneck", kernel_size=kernel_size,
                             norm=norm, activation=activation)
        stages, width = [], init_features
        for index, depth in enumerate(depths):
            stages.append(_DenseBlock(spatial_dims, width, depth, **layer_options))
            width += depth * growth_rate
            if index < len(depths) - 1:
                reduced = max(1, int(width * compression))
                stages.append(_transition(spatial_dims, width, reduced, norm=norm,
                                          activation=activation))
                width = reduced
        stages += [make_norm(norm, width, spatial_dims), make_activation(activation)]
        self.features = nn.Sequential(*stages)
        self.head = PredictionHead(spatial_dims, width, out_channels, dropout=dropout,
                                   final_activation=final_activation)
        init_weights(self)

    def forward(self, x):
        return self.head(self.features(self.stem(x)))
