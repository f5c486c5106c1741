"""ResNet regressors and classifiers in 2D and 3D (He et al. 2016; torchvision layout).

With the default stem, ``block="basic"`` and ``depths=[2, 2, 2, 2]`` this is ResNet-18,
``[3, 4, 6, 3]`` ResNet-34, and ``block="bottleneck"`` with ``[3, 4, 6, 3]`` ResNet-50
(v1.5: stride on the 3x3 convolution). ``skip_connections=False`` gives the "plain"
network of the same depth, without identity shortcuts.
"""

from torch import nn

from deepfocus_radio.models.blocks import BasicBlock, Bottleneck, ConvNormAct, PredictionHead
from deepfocus_radio.models.layers import init_weights, layer_type

__all__ = ["ResNet", "make_stem"]

#: Output channels of a bottleneck block relative to its inner width.
BOTTLENECK_EXPANSION = 4


def make_stem(spatial_dims, in_channels, out_channels, *, stem, kernel_size, norm, activation):
    """Build the input stem of ResNet and DenseNet.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Input channels and stem width.
    stem : {"imagenet", "small"}
        ``"imagenet"``: 7-pixel convolution at stride 2 and 3-pixel max pooling at
        stride 2 (reduces each axis by 4, as the reference networks). ``"small"``: one
        ``kernel_size`` convolution at stride 1, no pooling, for small cut-outs.
    kernel_size : int or sequence of int
        Kernel of the ``"small"`` stem (pixels).
    norm, activation : str
        Layer names.

    Returns
    -------
    torch.nn.Sequential
    """
    if stem == "small":
        return nn.Sequential(ConvNormAct(spatial_dims, in_channels, out_channels, kernel_size,
                                         norm=norm, activation=activation))
    return nn.Sequential(
        ConvNormAct(spatial_dims, in_channels, out_channels, 7, stride=2, norm=norm,
                    activation=activation),
        layer_type("max_pool", spatial_dims)(kernel_size=3, stride=2, padding=1),
    )


class ResNet(nn.Module):
    """Residual network with a fully connected head (regressor or classifier).

    Parameters
    ----------
    spatial_dims : int
        2 (images, (y, x)) or 3 (cubes, (chan, y, x)).
    in_channels : int
        Input channels.
    out_channels : int
        Regressed values or class logits.
    block : {"basic", "bottleneck"}
        Residual block type.
    depths : sequence of int
        Blocks per stage; stage ``i > 0`` halves each spatial axis.
    block_sizes : sequence of int
        Inner width of each stage (bottleneck stages output 4x this).
    init_features : int
        Width of the stem.
    stem : {"imagenet", "small"}
        Stem type (see :func:`make_stem`).
    kernel_size : int or sequence of int
        Odd kernel of the block convolutions (pixels).
    activation, norm, final_activation : str
        Layer names.
    skip_connections : bool
        Identity shortcuts (``False`` gives the plain network).
    dropout : float
        Dropout probability before the fully connected layer.
    """

    def __init__(self, *, spatial_dims, in_channels, out_channels, block, depths, block_sizes,
                 init_features, stem, kernel_size, activation, norm, skip_connections, dropout,
                 final_activation):
        super().__init__()
        common = dict(kernel_size=kernel_size, norm=norm, activation=activation,
                      residual=skip_connections)
        self.stem = make_stem(spatial_dims, in_channels, init_features, stem=stem,
                              kernel_size=kernel_size, norm=norm, activation=activation)
        stages, width = [], init_features
        for index, (depth, size) in enumerate(zip(depths, block_sizes)):
            blocks = []
            for position in range(depth):
                stride = 2 if index > 0 and position == 0 else 1
                if block == "bottleneck":
                    out = size * BOTTLENECK_EXPANSION
                    blocks.append(Bottleneck(spatial_dims, width, size, out, stride=stride,
                                             **common))
                else:
                    out = size
                    blocks.append(BasicBlock(spatial_dims, width, out, stride=stride, **common))
                width = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = PredictionHead(spatial_dims, width, out_channels, dropout=dropout,
                                   final_activation=final_activation)
        init_weights(self)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))
