"""Fully convolutional encoder-decoders (deconvolvers) and the U-Net.

:class:`EncoderDecoder` maps an image or cube to images or cubes of the same spatial
shape. It pads the input internally (reflect, or replicate on axes too short to reflect)
to a multiple of :attr:`EncoderDecoder.size_multiple` and crops the output back, so it
accepts any input size, and it has no dense layer, so weights trained on one tile size
run on any other. Normalization is ``"none"`` or ``"batch"`` only: no per-sample
normalization, so that a cube processed in tiles gives the same result as in one piece.
"""

import torch
import torch.nn.functional as F
from torch import nn

from deepfocus_radio.models.blocks import (
    BasicBlock,
    Bottleneck,
    ConvNormAct,
    make_final_activation,
)
from deepfocus_radio.models.layers import init_weights, layer_type

__all__ = ["EncoderDecoder", "UNet", "make_level"]


def make_level(spatial_dims, in_channels, out_channels, depth, *, block, kernel_size, norm,
               activation):
    """Build ``depth`` blocks at one resolution level of a deconvolver.

    ``block="basic"`` is the plain double convolution of the U-Net; ``"bottleneck"`` is a
    residual bottleneck block (inner width ``out_channels // 2``) with a projection
    shortcut where the width changes.

    Returns
    -------
    torch.nn.Sequential
    """
    blocks, width = [], in_channels
    for _ in range(depth):
        if block == "bottleneck":
            blocks.append(Bottleneck(spatial_dims, width, max(1, out_channels // 2),
                                     out_channels, kernel_size=kernel_size, norm=norm,
                                     activation=activation, residual=True))
        else:
            blocks.append(BasicBlock(spatial_dims, width, out_channels, kernel_size=kernel_size,
                                     norm=norm, activation=activation, residual=False))
        width = out_channels
    return nn.Sequential(*blocks)


class EncoderDecoder(nn.Module):
    """Encoder-decoder deconvolver with optional skip connections.

    Parameters
    ----------
    spatial_dims : int
        2 (images, (y, x)) or 3 (cubes, (chan, y, x)).
    in_channels, out_channels : int
        Channels of the input and of the output maps.
    block : {"basic", "bottleneck"}
        Block type (see :func:`make_level`).
    depths : sequence of int
        Blocks per resolution level (encoder, and again in the decoder).
    block_sizes : sequence of int
        Channels per level; level ``i`` has ``2**i`` times coarser sampling.
    kernel_size : int or sequence of int
        Odd convolution kernel, one value or one per axis (pixels).
    activation, norm, final_activation : str
        Layer names; ``norm`` is ``"none"`` or ``"batch"``.
    skip_connections : bool
        Pass encoder features to the decoder at each level.
    dropout : float
        Dropout probability at the coarsest level.
    pool_channels : bool
        In 3D, also downsample the channel (spectral) axis; ``False`` downsamples only
        (y, x), for cubes with few channels.
    pad_mode : {"reflect", "replicate", "constant"}
        How the input is padded to :attr:`size_multiple`.
    downsample : {"pool", "stride"}
        Max pooling (U-Net) or a strided convolution (CAE) between levels.
    merge : {"concat", "add"}
        How a skip connection joins the decoder (used when ``skip_connections``).

    Attributes
    ----------
    size_multiple : tuple of int
        Per spatial axis, the size the input is padded to a multiple of. Tiles whose
        origins are multiples of it see the same pooling grid as the whole cube.
    """

    def __init__(self, *, spatial_dims, in_channels, out_channels, block, depths, block_sizes,
                 kernel_size, activation, norm, skip_connections, dropout, pool_channels,
                 pad_mode, final_activation, downsample, merge):
        super().__init__()
        levels = len(block_sizes)
        factor = (1, 2, 2) if spatial_dims == 3 and not pool_channels else (2,) * spatial_dims
        self.size_multiple = tuple(f ** (levels - 1) for f in factor)
        self.pad_mode = pad_mode
        self.merge = merge if skip_connections else None
        level = dict(block=block, kernel_size=kernel_size, norm=norm, activation=activation)
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        width = in_channels
        for index, (depth, size) in enumerate(zip(depths, block_sizes)):
            if index > 0 and downsample == "stride":
                self.down.append(ConvNormAct(spatial_dims, width, size, kernel_size,
                                             stride=factor, norm=norm, activation=activation))
                width = size
            elif index > 0:
                self.down.append(layer_type("max_pool", spatial_dims)(factor, stride=factor))
            self.encoder.append(make_level(spatial_dims, width, size, depth, **level))
            width = size
        self.dropout = nn.Dropout(dropout)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        transpose = layer_type("conv_transpose", spatial_dims)
        for index in reversed(range(levels - 1)):
            size = block_sizes[index]
            self.up.append(transpose(width, size, kernel_size=factor, stride=factor))
            merged = 2 * size if self.merge == "concat" else size
            self.decoder.append(make_level(spatial_dims, merged, size, depths[index], **level))
            width = size
        self.output = nn.Sequential(
            layer_type("conv", spatial_dims)(width, out_channels, kernel_size=1),
            make_final_activation(final_activation),
        )
        init_weights(self)

    def _pad(self, x):
        sizes = x.shape[2:]
        extra = [(-n) % m for n, m in zip(sizes, self.size_multiple)]
        if not any(extra):
            return x
        mode = self.pad_mode
        if mode == "reflect" and any(e >= n for e, n in zip(extra, sizes)):
            mode = "replicate"  # reflection needs the axis to be longer than the padding
        pad = []
        for e in reversed(extra):  # F.pad lists the last axis first
            pad += [0, e]
        return F.pad(x, pad, mode=mode)

    def forward(self, x):
        sizes = x.shape[2:]
        out = self._pad(x)
        skips = []
        for index, level in enumerate(self.encoder):
            if index > 0:
                out = self.down[index - 1](out)
            out = level(out)
            skips.append(out)
        out = self.dropout(out)
        for up, level, skip in zip(self.up, self.decoder, reversed(skips[:-1])):
            out = up(out)
            if self.merge == "concat":
                out = torch.cat([out, skip], 1)
            elif self.merge == "add":
                out = out + skip
            out = level(out)
        out = self.output(out)
        return out[(..., *(slice(0, n) for n in sizes))]


class UNet(EncoderDecoder):
    """U-Net (Ronneberger et al. 2015): max pooling and concatenated skip connections.

    With ``block="bottleneck"`` it is a residual U-Net; with ``skip_connections=False``
    a plain encoder-decoder. Parameters are those of :class:`EncoderDecoder` except
    ``downsample`` and ``merge``.
    """

    def __init__(self, **options):
        super().__init__(downsample="pool", merge="concat", **options)
