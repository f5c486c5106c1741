"""VGG regressors and classifiers in 2D and 3D (Simonyan & Zisserman 2015; torchvision layout).

``depths=[1, 1, 2, 2, 2]`` is VGG-11 and ``[2, 2, 3, 3, 3]`` VGG-16, with
``block_sizes=[64, 128, 256, 512, 512]``. The 2D reference head pools to 7x7 and has two
4096-wide hidden layers; in 3D the features are pooled to one voxel before the head
(``pool_size=1``), since a 7x7x7 grid would give a ~700 M parameter VGG-16.
"""

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

__all__ = ["VGG"]


class VGG(nn.Module):
    """Stacks of convolutions separated by max pooling, and a fully connected head.

    Parameters
    ----------
    spatial_dims : int
        2 (images) or 3 (cubes).
    in_channels, out_channels : int
        Input channels; regressed values or class logits.
    depths : sequence of int
        Convolutions per stage; every stage ends with a 2-pixel max pooling (in ceil mode,
        so a 1-pixel axis stays 1 pixel and any input size passes).
    block_sizes : sequence of int
        Channels of each stage.
    kernel_size : int or sequence of int
        Odd convolution kernel (pixels).
    activation, norm, final_activation : str
        Layer names; the reference VGG has ``norm="none"``. Convolutions keep their bias
        with batch norm, as in torchvision's ``vgg*_bn``.
    head_features : sequence of int
        Widths of the hidden fully connected layers.
    pool_size : int
        Side of the adaptive average pooling grid before the head.
    dropout : float
        Dropout probability after each hidden fully connected layer.
    """

    def __init__(self, *, spatial_dims, in_channels, out_channels, depths, block_sizes,
                 kernel_size, activation, norm, head_features, pool_size, dropout,
                 final_activation):
        super().__init__()
        conv = layer_type("conv", spatial_dims)
        layers, width = [], in_channels
        for depth, size in zip(depths, block_sizes):
            for _ in range(depth):
                layers += [
                    conv(width, size, kernel_size=as_tuple(kernel_size, spatial_dims),
                         padding=same_padding(kernel_size, spatial_dims)),
                    make_norm(norm, size, spatial_dims),
                    make_activation(activation),
                ]
                width = size
            layers.append(layer_type("max_pool", spatial_dims)(kernel_size=2, stride=2,
                                                               ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.head = PredictionHead(spatial_dims, width, out_channels, pool_size=pool_size,
                                   hidden_features=head_features, activation=activation,
                                   dropout=dropout, final_activation=final_activation)
        init_weights(self)

    def forward(self, x):
        return self.head(self.features(x))
