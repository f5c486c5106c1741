"""build_model: every supported combination builds, runs forward and backward, and the
canonical presets have the reference parameter counts."""

import itertools

import pytest
import torch
from torch import nn

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models import (
    ARCHITECTURES,
    build_model,
    count_parameters,
    create_model,
    predict_proba,
)

# Tiny widths so that the 44 combinations below run in seconds on one CPU thread.
TINY = {
    "cae": {"block_sizes": [4, 6, 8], "depths": [1, 1, 1]},
    "unet": {"block_sizes": [4, 6, 8], "depths": [1, 2, 1]},
    "resnet": {"block_sizes": [4, 8], "depths": [1, 2], "init_features": 4},
    "densenet": {"depths": [2, 2], "growth_rate": 4, "bn_size": 2, "init_features": 8},
    "vgg": {"block_sizes": [4, 8], "depths": [1, 2], "head_features": [16]},
}
ODD_SHAPES = {2: (37, 29), 3: (13, 21, 19)}


def _combinations():
    for arch, spec in ARCHITECTURES.items():
        for dims, dmode, block, skip in itertools.product(
                (2, 3), spec.dmodes, spec.blocks, spec.skip_connections):
            yield arch, dims, dmode, block, skip


COMBINATIONS = list(_combinations())


def test_combination_table_covers_the_promised_architectures():
    deconvolvers = {c[0] for c in COMBINATIONS if c[2] == "deconvolver"}
    heads = {c[0] for c in COMBINATIONS if c[2] in ("regressor", "classifier")}
    assert deconvolvers == {"cae", "unet"}
    assert heads == {"resnet", "densenet", "vgg"}
    # cae/unet: 2 dims x 2 blocks x 2 skips; resnet: 2 x 2 dmodes x 2 x 2;
    # densenet: 2 x 2 x 2 blocks; vgg: 2 x 2.
    assert len(COMBINATIONS) == 16 + 16 + 8 + 4


@pytest.mark.parametrize("arch,dims,dmode,block,skip", COMBINATIONS,
                         ids=["-".join(map(str, c)) for c in COMBINATIONS])
def test_every_combination_runs_forward_and_backward(arch, dims, dmode, block, skip):
    out_channels = 3
    config = {"arch": arch, "dmode": dmode, "spatial_dims": dims, "in_channels": 2,
              "out_channels": out_channels, "block": block, "skip_connections": skip,
              **TINY[arch]}
    model = build_model(config, seed=0)
    inputs = torch.randn(2, 2, *ODD_SHAPES[dims], generator=torch.Generator().manual_seed(1))
    outputs = model(inputs)
    if dmode == "deconvolver":
        assert outputs.shape == (2, out_channels, *ODD_SHAPES[dims])
    else:
        assert outputs.shape == (2, out_channels)
    outputs.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert model.config["block"] == block and model.config["skip_connections"] is skip


@pytest.mark.parametrize("name,expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("densenet121", 7_978_856), ("vgg11", 132_863_336), ("vgg16", 138_357_544),
])
def test_canonical_presets_have_reference_parameter_counts(name, expected):
    with torch.device("meta"):
        model = create_model(name)
    assert model.config["spatial_dims"] == 2
    assert model.config["in_channels"] == 3 and model.config["out_channels"] == 1000
    assert count_parameters(model) == expected


def test_3d_vgg16_pools_to_one_voxel_before_the_head():
    config = {"arch": "vgg", "spatial_dims": 3, "in_channels": 1, "out_channels": 5,
              "depths": [2, 2, 3, 3, 3], "block_sizes": [64, 128, 256, 512, 512]}
    with torch.device("meta"):
        model = build_model(config)
    assert model.config["pool_size"] == 1
    assert model.head.fc[0].in_features == 512
    # 3D convolutions (27 taps) plus a 512-4096-4096-5 head: far from ~700 M.
    assert count_parameters(model) < 70_000_000


def test_plain_resnet_has_no_shortcut_and_same_layers_otherwise():
    residual = build_model({"arch": "resnet", "spatial_dims": 2, **TINY["resnet"]})
    plain = build_model({"arch": "resnet", "spatial_dims": 2, "skip_connections": False,
                         **TINY["resnet"]})
    assert all(block.shortcut is None for stage in plain.stages for block in stage)
    assert any(block.shortcut is not None for stage in residual.stages for block in stage)


def test_config_is_complete_json_and_rebuilds_the_same_network():
    model = create_model("unet", seed=0)
    rebuilt = build_model(model.config, seed=0)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()}
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), rebuilt.parameters()))


def test_seed_makes_initialization_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = build_model({"arch": "cae", **TINY["cae"]}, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    second = build_model({"arch": "cae", **TINY["cae"]}, seed=3)
    other = build_model({"arch": "cae", **TINY["cae"]}, seed=4)
    pairs = list(zip(first.parameters(), second.parameters(), other.parameters()))
    assert all(torch.equal(a, b) for a, b, _ in pairs)
    assert not all(torch.equal(a, c) for a, _, c in pairs)


def test_seed_must_be_an_integer():
    with pytest.raises(ConfigError, match="seed must be an integer"):
        build_model({"arch": "cae"}, seed="1")


def test_input_config_is_not_modified():
    config = {"arch": "unet", "block_sizes": (4, 8)}
    build_model(config)
    assert config == {"arch": "unet", "block_sizes": (4, 8)}


def test_count_parameters_of_a_config_and_trainable_only():
    config = {"arch": "unet", "spatial_dims": 2, "block_sizes": [4, 8]}
    model = build_model(config)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(config) == total
    model.output[0].weight.requires_grad_(False)
    frozen = model.output[0].weight.numel()
    assert count_parameters(model, trainable_only=True) == total - frozen


def test_predict_proba_gives_softmax_and_restores_mode():
    model = build_model({"arch": "resnet", "dmode": "classifier", "spatial_dims": 2,
                         "out_channels": 4, **TINY["resnet"]}, seed=0)
    inputs = torch.randn(3, 1, 17, 15)
    probabilities = predict_proba(model, inputs)
    assert model.training
    model.eval()
    expected = torch.softmax(model(inputs), dim=1)
    torch.testing.assert_close(probabilities, expected)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(3))


def test_predict_proba_rejects_a_regressor():
    model = build_model({"arch": "vgg", "spatial_dims": 2, **TINY["vgg"]})
    with pytest.raises(ConfigError, match="dmode 'classifier'.*'regressor'"):
        predict_proba(model, torch.randn(1, 1, 8, 8))


def test_final_activation_is_applied_to_regressor_outputs():
    model = build_model({"arch": "resnet", "spatial_dims": 2, "out_channels": 6,
                         "final_activation": "sigmoid", **TINY["resnet"]}, seed=0)
    outputs = model(torch.randn(2, 1, 11, 11) * 100)
    assert ((outputs > 0) & (outputs < 1)).all()
    assert isinstance(model.head.fc[-1], nn.Sigmoid)


@pytest.mark.parametrize("arch", ["resnet", "densenet", "vgg"])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_heads_with_every_norm(arch, norm):
    model = build_model({"arch": arch, "spatial_dims": 2, "norm": norm, **TINY[arch]}, seed=0)
    kinds = {type(m).__name__ for m in model.modules()}
    expected = {"batch": "BatchNorm2d", "instance": "InstanceNorm2d"}.get(norm)
    assert (expected in kinds) if expected else not any(k.endswith("Norm2d") for k in kinds)
    assert model(torch.randn(2, 1, 19, 17)).shape == (2, 1)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "silu"])
def test_activations_are_used(activation):
    model = build_model({"arch": "unet", "spatial_dims": 2, "block_sizes": [4, 8],
                         "activation": activation})
    names = {type(m).__name__.lower() for m in model.modules()}
    assert activation.replace("_", "") in names
    assert model(torch.randn(1, 1, 9, 9)).shape == (1, 1, 9, 9)


def test_small_stem_keeps_the_resolution_of_the_first_stage():
    features = {}

    def record(module, inputs, output):
        features["stem"] = output.shape

    for stem, size in [("small", (20, 18)), ("imagenet", (5, 5))]:
        model = build_model({"arch": "resnet", "spatial_dims": 2, "stem": stem,
                             **TINY["resnet"]})
        model.stem.register_forward_hook(record)
        model(torch.randn(2, 1, 20, 18))
        assert features["stem"][2:] == size
