"""Layer factories keyed by spatial_dims."""

import pytest
import torch
from torch import nn

from deepfocus_radio.models.blocks import make_final_activation
from deepfocus_radio.models.layers import (
    as_tuple,
    init_weights,
    layer_type,
    make_activation,
    make_norm,
    same_padding,
)


@pytest.mark.parametrize("kind,dims,expected", [
    ("conv", 2, nn.Conv2d), ("conv", 3, nn.Conv3d), ("conv_transpose", 3, nn.ConvTranspose3d),
    ("batch", 2, nn.BatchNorm2d), ("max_pool", 3, nn.MaxPool3d),
    ("adaptive_avg_pool", 2, nn.AdaptiveAvgPool2d), ("avg_pool", 3, nn.AvgPool3d),
])
def test_layer_type(kind, dims, expected):
    assert layer_type(kind, dims) is expected


def test_layer_type_errors():
    with pytest.raises(ValueError, match="unknown layer kind 'dense'"):
        layer_type("dense", 2)
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 1"):
        layer_type("conv", 1)


def test_make_norm():
    assert isinstance(make_norm("none", 4, 3), nn.Identity)
    assert isinstance(make_norm("batch", 4, 3), nn.BatchNorm3d)
    instance = make_norm("instance", 4, 2)
    assert isinstance(instance, nn.InstanceNorm2d) and instance.affine
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4, 2)


def test_activations():
    assert isinstance(make_activation("leaky_relu"), nn.LeakyReLU)
    assert isinstance(make_final_activation("softplus"), nn.Softplus)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        make_activation("swish")
    with pytest.raises(ValueError, match="unknown final activation 'exp'"):
        make_final_activation("exp")


def test_tuples_and_padding():
    assert as_tuple(3, 3) == (3, 3, 3)
    assert as_tuple([1, 3, 5], 3) == (1, 3, 5)
    assert same_padding([1, 3, 5], 3) == (0, 1, 2)
    with pytest.raises(ValueError, match="expected 2 values, got 3"):
        as_tuple([1, 3, 5], 2)


def test_init_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 64, 3), nn.BatchNorm3d(64))
    nn.init.constant_(net[1].weight, 5.0)
    init_weights(net)
    std = net[0].weight.std().item()
    # He-normal, fan_out = 64 * 27: std = sqrt(2 / 1728) = 0.034
    assert std == pytest.approx((2 / (64 * 27)) ** 0.5, rel=0.1)
    assert torch.equal(net[0].bias, torch.zeros(64))
    assert torch.equal(net[1].weight, torch.ones(64))
