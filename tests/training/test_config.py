import pytest
import yaml

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.training.config import (
    apply_overrides,
    default_config,
    dump_config,
    load_config,
    parse_override,
    resolve_config,
)


def minimal(**data):
    return {"model": {"dmode": "deconvolver", "arch": "unet", "spatial_dims": 3},
            "data": {"root": "somewhere", **data}}


def test_defaults_filled_and_loss_default_per_dmode():
    config = resolve_config(minimal())
    assert config["optim"]["name"] == "adam"
    assert config["loss"]["terms"] == {"l1": 1.0}
    regressor = resolve_config({"model": {"dmode": "regressor", "spatial_dims": 2},
                                "data": {"root": "x", "targets": ["fwhm_x"]}})
    assert regressor["loss"]["terms"] == {"mse": 1.0}
    assert regressor["data"]["targets"] == ["fwhm_major"]
    assert default_config()["train"]["device"] == "auto"


def test_unknown_section_and_key_are_named():
    with pytest.raises(ConfigError, match="unknown configuration section 'optimiser'"):
        resolve_config({**minimal(), "optimiser": {}})
    with pytest.raises(ConfigError, match="'optim.learning_rate'"):
        resolve_config({**minimal(), "optim": {"learning_rate": 0.1}})


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", 0, "'train.epochs' must be a positive integer"),
    ("train", "batch_size", 2.5, "'train.batch_size' must be a positive integer"),
    ("optim", "name", "rmsprop", "'optim.name' must be one of"),
    ("optim", "lr", 0.0, "'optim.lr' must be positive"),
    ("optim", "weight_decay", -1, "'optim.weight_decay' must be a non-negative"),
    ("optim", "plateau_factor", 2.0, "'optim.plateau_factor' must lie in"),
    ("data", "normalization", "minmax", "'data.normalization' must be one of"),
    ("data", "crop_size", [8, 8], "'data.crop_size' must be a list of 3"),
    ("data", "line_width", -2, "'data.line_width' must be 'auto'"),
    ("train", "early_stopping", 0, "'train.early_stopping' must be null"),
    ("train", "seed", -1, "'train.seed' must be a non-negative"),
    ("output", "dir", 3, "'output.dir' must be a directory path"),
    ("loss", "terms", {"l2": 1.0}, "'loss.terms.l2' is not a known loss"),
    ("loss", "terms", {"l1": -1.0}, "'loss.terms.l1' weight must be"),
    ("loss", "terms", {"l1": 0.0}, "'loss.terms' needs at least one positive"),
    ("loss", "terms", {"ce": 1.0}, "'loss.terms.ce' .* needs dmode classifier"),
    ("loss", "terms", [], "'loss.terms' must map"),
])
def test_invalid_values_are_named(section, key, value, message):
    raw = minimal()
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=message):
        resolve_config(raw)


def test_model_and_data_requirements():
    with pytest.raises(ConfigError, match="'model.dmode' must be one of"):
        resolve_config({"data": {"root": "x"}})
    with pytest.raises(ConfigError, match="'data.root' is required"):
        resolve_config({"model": {"dmode": "deconvolver"}})
    regressor = {"model": {"dmode": "regressor", "spatial_dims": 2}, "data": {"root": "x"}}
    with pytest.raises(ConfigError, match="'data.targets' must list"):
        resolve_config(regressor)
    regressor["data"]["targets"] = ["flux"]
    regressor["model"]["out_channels"] = 2
    with pytest.raises(ConfigError, match="'model.out_channels' is 2 but data.targets"):
        resolve_config(regressor)
    regressor["model"]["out_channels"] = 1
    regressor["data"]["target_scaling"] = {"peak": "log"}
    with pytest.raises(ConfigError, match="'data.target_scaling.peak' names a column"):
        resolve_config(regressor)
    regressor["data"]["target_scaling"] = {"flux": "sqrt"}
    with pytest.raises(ConfigError, match="'data.target_scaling.flux' must be one of"):
        resolve_config(regressor)
    regressor["data"]["target_scaling"] = {"flux": "log"}
    regressor["loss"] = {"terms": {"ssim": 1.0}}
    with pytest.raises(ConfigError, match="'loss.terms.ssim' applies to images"):
        resolve_config(regressor)
    classifier = {"model": {"dmode": "classifier", "spatial_dims": 2}, "data": {"root": "x"},
                  "loss": {"terms": {"l1": 1.0}}}
    with pytest.raises(ConfigError, match="classifier must be"):
        resolve_config(classifier)
    with pytest.raises(ConfigError, match="'data.scale' must be a positive"):
        resolve_config(minimal(normalization="fixed", scale=0))


def test_overrides_are_typed_and_nested():
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 0.001)
    assert parse_override("model.depths=[1, 2]") == ("model.depths", [1, 2])
    assert parse_override("train.amp=false") == ("train.amp", False)
    assert parse_override("optim.name=sgd") == ("optim.name", "sgd")
    with pytest.raises(ConfigError, match="must look like 'section.key=value'"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match="cannot parse the value"):
        parse_override("model.depths=[1, 2")
    config = {"train": {"epochs": 2}}
    apply_overrides(config, [("train.epochs", 5), ("loss.terms.ssim", 0.5)])
    assert config == {"train": {"epochs": 5}, "loss": {"terms": {"ssim": 0.5}}}
    with pytest.raises(ConfigError, match="'epochs' is not a section"):
        apply_overrides(config, {"train.epochs.x": 1})


def test_load_yaml_toml_and_mapping_untouched(tmp_path):
    raw = minimal()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, overrides=["train.epochs=3"])
    assert config["train"]["epochs"] == 3
    assert raw == minimal()  # the user's mapping is not modified
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\ndmode = "deconvolver"\nspatial_dims = 2\n'
                    '[data]\nroot = "x"\ncrop_size = [8, 8]\n')
    assert load_config(toml)["data"]["crop_size"] == [8, 8]
    dump_config(config, tmp_path / "out" / "again.yaml")
    assert load_config(tmp_path / "out" / "again.yaml") == config


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="cannot parse configuration file"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(listed)
    with pytest.raises(ConfigError, match="section 'data' must be a mapping"):
        resolve_config({"model": {"dmode": "deconvolver"}, "data": [1]})


@pytest.mark.parametrize("name", ["alma_deconvolver.yaml", "alma_sweep.yaml",
                                  "alma_flux_regressor.yaml"])
def test_example_configs_are_valid(name):
    from pathlib import Path

    from deepfocus_radio.models import build_model
    from deepfocus_radio.training.sweep import check_space

    path = Path(__file__).resolve().parents[2] / "examples" / "configs" / name
    config = load_config(path)
    build_model(config["model"])
    if name == "alma_sweep.yaml":
        check_space(config["sweep"]["space"])
