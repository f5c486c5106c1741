"""Deconvolvers (CAE, U-Net): fully convolutional, any size, tiles equal the whole."""

import pytest
import torch
from torch import nn

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models import ARCHITECTURES, build_model, create_model


def _tiny(arch, **keys):
    config = {"arch": arch, "spatial_dims": 3, "block_sizes": [4, 6, 8], **keys}
    return build_model(config, seed=0)


@pytest.mark.parametrize("arch", ["cae", "unet"])
def test_same_weights_run_on_different_sizes(arch):
    model = _tiny(arch).eval()
    with torch.no_grad():
        for shape in [(13, 21, 19), (8, 16, 16), (1, 2, 3), (24, 17, 40)]:
            out = model(torch.randn(1, 1, *shape))
            assert out.shape == (1, 1, *shape)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


@pytest.mark.parametrize("arch", ["cae", "unet"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_tiled_output_equals_whole_image_output(arch, norm):
    model = build_model({"arch": arch, "spatial_dims": 2, "block_sizes": [4, 8], "norm": norm,
                         "skip_connections": True}, seed=0).eval()
    if norm == "batch":  # give the batch norms non-trivial running statistics
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 1, 32, 32) * 3 + 1)
        model.eval()
    image = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model(image)
        # A tile whose origin is a multiple of size_multiple, with a 12-pixel halo.
        origin = 16
        assert origin % model.size_multiple[0] == 0
        tile = model(image[..., origin:, origin:])
    margin = 12
    torch.testing.assert_close(tile[..., margin:, margin:],
                               whole[..., origin + margin:, origin + margin:],
                               rtol=1e-5, atol=1e-5)
    # Without the halo the tile edge differs: the check above is not vacuous.
    assert not torch.allclose(tile[..., :2, :2], whole[..., origin:origin + 2, origin:origin + 2])


@pytest.mark.parametrize("arch", ["cae", "unet"])
def test_deconvolvers_contain_no_per_sample_normalization(arch):
    spec = ARCHITECTURES[arch]
    per_sample = (nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)
    for norm in spec.norms:
        for block in spec.blocks:
            model = _tiny(arch, norm=norm, block=block)
            assert not any(isinstance(m, per_sample) for m in model.modules())
    assert set(spec.norms) == {"none", "batch"}
    assert build_model({"arch": arch}).config["norm"] == "none"


@pytest.mark.parametrize("norm", ["instance", "group", "layer"])
def test_per_sample_norm_is_refused_with_the_reason(norm):
    with pytest.raises(ConfigError, match=r"'norm'.*tiled.*allowed values: \['none', 'batch'\]"):
        build_model({"arch": "unet", "norm": norm})


def test_pool_channels_false_keeps_the_spectral_axis():
    model = _tiny("unet", pool_channels=False)
    assert model.size_multiple == (1, 4, 4)
    pooled = _tiny("unet")
    assert pooled.size_multiple == (4, 4, 4)
    features = {}

    def record(module, inputs, output):
        features["deep"] = output.shape

    model.encoder[2].register_forward_hook(record)
    out = model(torch.randn(1, 1, 3, 16, 12))
    assert out.shape == (1, 1, 3, 16, 12)
    assert features["deep"][2:] == (3, 4, 3)


def test_pool_channels_needs_3d():
    with pytest.raises(ConfigError, match="'pool_channels' = False needs spatial_dims = 3"):
        build_model({"arch": "cae", "spatial_dims": 2, "pool_channels": False})


def test_anisotropic_kernel_per_axis():
    model = _tiny("cae", kernel_size=[1, 3, 5])
    conv = model.encoder[0][0].conv1[0]
    assert conv.kernel_size == (1, 3, 5) and conv.padding == (0, 1, 2)
    assert model(torch.randn(1, 1, 5, 9, 11)).shape == (1, 1, 5, 9, 11)


@pytest.mark.parametrize("pad_mode", ["reflect", "replicate", "constant"])
def test_pad_modes_give_the_input_shape(pad_mode):
    model = _tiny("unet", pad_mode=pad_mode)
    # 2 < padding needed on the first axis: reflect falls back to replicate there.
    for shape in [(13, 21, 19), (2, 5, 7)]:
        assert model(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)


def test_unet_concatenates_and_cae_adds_skip_features():
    unet = _tiny("unet")
    cae = _tiny("cae", skip_connections=True)
    # Decoder level 1 of the U-Net sees 2 x 6 channels; the CAE's sees 6.
    assert unet.decoder[0][0].conv1[0].in_channels == 12
    assert cae.decoder[0][0].conv1[0].in_channels == 6
    assert isinstance(unet.down[0], nn.MaxPool3d)
    assert cae.down[0][0].stride == (2, 2, 2)


def test_skip_connections_change_the_output():
    unet = _tiny("unet").eval()
    inputs = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        reference = unet(inputs)
        # Zeroing the finest encoder features changes the output only through the skip.
        unet.encoder[0].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        assert not torch.allclose(unet(inputs), reference)


def test_default_unet_preset():
    model = create_model("unet")
    assert model.config["block_sizes"] == [8, 16, 32, 64]
    assert model.config["spatial_dims"] == 3 and model.config["norm"] == "none"
    assert model.size_multiple == (8, 8, 8)
    assert sum(p.numel() for p in model.parameters()) == 350_457


def test_output_channels_and_final_activation():
    model = _tiny("unet", out_channels=3, final_activation="softplus", in_channels=2)
    out = model(torch.randn(1, 2, 5, 6, 7))
    assert out.shape == (1, 3, 5, 6, 7) and (out > 0).all()


def test_dropout_at_the_coarsest_level():
    model = _tiny("unet", dropout=0.3)
    assert model.dropout.p == 0.3


def test_receptive_field_of_the_default_unet_reaches_about_90_pixels():
    # Same level structure in 2D, double precision: the gradient of one output pixel
    # is non-zero over the receptive field.
    model = build_model({"arch": "unet", "spatial_dims": 2, "block_sizes": [8, 16, 32, 64],
                         "pad_mode": "constant"}, seed=0).double()
    image = torch.randn(1, 1, 161, 161, dtype=torch.double, requires_grad=True)
    model(image)[0, 0, 80, 80].backward()
    seen = (image.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    assert 80 <= int(seen.max() - seen.min()) + 1 <= 110

