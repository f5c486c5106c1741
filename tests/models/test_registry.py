"""Preset registry: create_model, list_models, register_model."""

import pytest
import torch

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.models import create_model, get_preset, list_models, register_model
from deepfocus_radio.models import registry


def test_list_models_has_the_promised_presets():
    assert {"resnet18", "resnet34", "resnet50", "densenet121", "vgg11", "vgg16", "unet",
            "cae"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_create_model_with_radio_overrides():
    model = create_model("resnet18", spatial_dims=3, in_channels=1, out_channels=5,
                         dmode="regressor", seed=0)
    assert model.config["depths"] == [2, 2, 2, 2] and model.config["spatial_dims"] == 3
    assert model(torch.randn(2, 1, 9, 16, 16)).shape == (2, 5)


def test_unknown_preset_lists_names():
    with pytest.raises(ConfigError, match=r"unknown model preset 'resnet101'; available "
                                          r"presets: \['cae', 'densenet121'"):
        create_model("resnet101")


def test_invalid_override_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown config key 'width' for arch 'unet'"):
        create_model("unet", width=3)


def test_get_preset_returns_a_fresh_dict():
    preset = get_preset("vgg16", spatial_dims=3)
    preset["depths"].append(9)
    assert get_preset("vgg16")["depths"] == [2, 2, 3, 3, 3]
    assert preset["spatial_dims"] == 3


def test_register_model(monkeypatch):
    monkeypatch.setattr(registry, "_PRESETS", dict(registry._PRESETS))

    @register_model
    def tiny_unet():
        return {"arch": "unet", "block_sizes": [4, 8]}

    assert "tiny_unet" in list_models()
    assert create_model("tiny_unet").config["block_sizes"] == [4, 8]
    with pytest.raises(ConfigError, match="preset named 'tiny_unet' is already registered"):
        register_model(tiny_unet)
