"""resolve_config / build_model: clear ConfigError for every kind of bad configuration."""

import json

import pytest

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models import (
    ARCHITECTURES,
    build_model,
    read_config_file,
    resolve_config,
    supported_combinations,
)


def test_defaults_are_filled_and_json_serializable():
    config = resolve_config({"arch": "resnet"})
    assert config == {
        "arch": "resnet", "dmode": "regressor", "spatial_dims": 3, "in_channels": 1,
        "out_channels": 1, "block": "basic", "depths": [2, 2, 2, 2],
        "block_sizes": [64, 128, 256, 512], "init_features": 64, "stem": "imagenet",
        "skip_connections": True, "kernel_size": 3, "activation": "relu", "norm": "batch",
        "final_activation": "none", "dropout": 0.0}
    assert json.loads(json.dumps(config)) == config


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_arch_resolves_to_allowed_keys_only(arch):
    config = resolve_config({"arch": arch})
    assert set(config) == {"arch", "dmode", "spatial_dims", "in_channels", "out_channels",
                           *ARCHITECTURES[arch].keys}
    assert resolve_config(config) == config


def test_dependent_defaults():
    assert resolve_config({"arch": "resnet", "depths": [1, 1]})["block_sizes"] == [64, 128]
    assert resolve_config({"arch": "unet", "block_sizes": [8, 16]})["depths"] == [1, 1]
    assert resolve_config({"arch": "vgg", "depths": [1] * 6})["block_sizes"] == [
        64, 128, 256, 512, 512, 512]
    assert resolve_config({"arch": "vgg", "spatial_dims": 2})["pool_size"] == 7
    assert resolve_config({"arch": "vgg"})["pool_size"] == 1
    assert resolve_config({"arch": "densenet", "growth_rate": 12})["init_features"] == 24
    assert resolve_config({"arch": "resnet", "dmode": "classifier"})["out_channels"] == 2
    assert resolve_config({"arch": "unet", "dropout": 0})["dropout"] == 0.0


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'depth' for arch 'unet' "
                                          r"\(did you mean 'depths'\?\); allowed keys: \["):
        build_model({"arch": "unet", "depth": [1, 1]})


def test_key_of_another_arch_is_unknown():
    with pytest.raises(ConfigError, match="unknown config key 'growth_rate' for arch 'resnet'"):
        build_model({"arch": "resnet", "growth_rate": 12})


def test_missing_or_unknown_arch():
    with pytest.raises(ConfigError, match=r"'arch' is required; allowed values: \['cae', "):
        build_model({"dmode": "deconvolver"})
    with pytest.raises(ConfigError, match=r"'arch' = 'transformer' is not allowed; allowed "):
        build_model({"arch": "transformer"})


def test_config_must_be_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping.*got list"):
        build_model(["unet"])


def test_unsupported_arch_dmode_lists_supported_combinations():
    with pytest.raises(ConfigError, match=r"arch 'unet' does not support dmode 'classifier'; "
                                          r"supported .*resnet/regressor"):
        build_model({"arch": "unet", "dmode": "classifier"})
    with pytest.raises(ConfigError, match="arch 'vgg' does not support dmode 'deconvolver'"):
        build_model({"arch": "vgg", "dmode": "deconvolver"})
    with pytest.raises(ConfigError, match=r"'dmode' = 'segmenter' is not allowed; allowed "
                                          r"values: \['deconvolver', 'regressor', 'classifier'\]"):
        build_model({"arch": "vgg", "dmode": "segmenter"})
    assert ("densenet", "classifier") in supported_combinations()
    assert ("cae", "regressor") not in supported_combinations()


@pytest.mark.parametrize("config,pattern", [
    ({"arch": "vgg", "block": "bottleneck"},
     r"'block' = 'bottleneck' is not allowed for arch 'vgg'; allowed values: \['basic'\]"),
    ({"arch": "densenet", "skip_connections": False},
     r"'skip_connections' = False is not allowed for arch 'densenet'; allowed values: \[True\]"),
    ({"arch": "vgg", "skip_connections": True},
     r"'skip_connections' = True .*allowed values: \[False\]"),
    ({"arch": "unet", "skip_connections": 1}, r"'skip_connections' = 1 is not allowed"),
    ({"arch": "unet", "spatial_dims": 4}, r"'spatial_dims' = 4 .*allowed values: \[2, 3\]"),
    ({"arch": "unet", "activation": "swish"}, r"'activation' = 'swish' .*'relu', 'leaky_relu'"),
    ({"arch": "unet", "final_activation": "exp"}, r"'final_activation' = 'exp' .*'softplus'"),
    ({"arch": "resnet", "dmode": "classifier", "final_activation": "sigmoid"},
     r"'final_activation' = 'sigmoid' .*logits.*allowed values: \['none'\]"),
    ({"arch": "unet", "pad_mode": "circular"}, r"'pad_mode' = 'circular'.*'reflect'"),
    ({"arch": "resnet", "stem": "big"}, r"'stem' = 'big'.*\['imagenet', 'small'\]"),
    ({"arch": "resnet", "norm": "group"}, r"'norm' = 'group'.*\['batch', 'instance', 'none'\]"),
    ({"arch": "unet", "in_channels": 0}, r"'in_channels' must be an integer >= 1; got 0 \(int\)"),
    ({"arch": "unet", "in_channels": "1"}, r"'in_channels' must be an integer >= 1; got '1' "),
    ({"arch": "unet", "out_channels": True}, r"'out_channels' must be an integer >= 1"),
    ({"arch": "vgg", "dmode": "classifier", "out_channels": 1},
     r"'out_channels' must be an integer >= 2; got 1"),
    ({"arch": "unet", "depths": 2}, r"'depths' must be a non-empty list of integers >= 1"),
    ({"arch": "unet", "block_sizes": []}, r"'block_sizes' must be a non-empty list"),
    ({"arch": "unet", "block_sizes": [8, 0]}, r"'block_sizes' must be a non-empty list"),
    ({"arch": "vgg", "head_features": [0]}, r"'head_features' must be a list of integers"),
    ({"arch": "unet", "dropout": 1.0}, r"'dropout' must be a number in \[0.0, 1.0\); got 1.0"),
    ({"arch": "unet", "dropout": "0.1"}, r"'dropout' must be a number .*\(str\)"),
    ({"arch": "densenet", "compression": 0}, r"'compression' must be a number in \(0.0, 1.0\]"),
    ({"arch": "unet", "kernel_size": 4}, r"'kernel_size' must be an odd integer >= 1 or a list "
                                         r"of 3 odd integers"),
    ({"arch": "unet", "kernel_size": [3, 3]}, r"'kernel_size' must be .*list of 3"),
    ({"arch": "unet", "pool_channels": "no"}, r"'pool_channels' must be true or false"),
    ({"arch": "densenet", "growth_rate": 2.5}, r"'growth_rate' must be an integer >= 1"),
    ({"arch": "vgg", "pool_size": 0}, r"'pool_size' must be an integer >= 1"),
])
def test_ill_typed_or_disallowed_values_name_key_and_allowed(config, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model(config)


def test_depths_and_block_sizes_lengths_must_match():
    with pytest.raises(ConfigError, match=r"'depths' and 'block_sizes' must have the same "
                                          r"length .*depths=\[1, 1\] and block_sizes=\[8\]"):
        build_model({"arch": "unet", "depths": [1, 1], "block_sizes": [8]})


@pytest.mark.parametrize("suffix,text", [
    (".json", '{"arch": "unet", "block_sizes": [4, 8]}'),
    (".yaml", "arch: unet\nblock_sizes: [4, 8]\n"),
    (".yml", "arch: unet\nblock_sizes:\n  - 4\n  - 8\n"),
    (".toml", 'arch = "unet"\nblock_sizes = [4, 8]\n'),
])
def test_read_config_file_formats(tmp_path, suffix, text):
    path = tmp_path / f"model{suffix}"
    path.write_text(text)
    config = read_config_file(path)
    assert config == {"arch": "unet", "block_sizes": [4, 8]}
    assert build_model(config).config["block_sizes"] == [4, 8]


def test_read_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="must end in .json, .yaml, .yml or .toml"):
        read_config_file(tmp_path / "model.ini")
    with pytest.raises(FileNotFoundError):
        read_config_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{arch: unet")
    with pytest.raises(ConfigError, match="cannot parse model configuration"):
        read_config_file(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- unet\n")
    with pytest.raises(ConfigError, match="must hold a mapping of keys; got list"):
        read_config_file(listing)
