"""Shipped models: cards, sha256 verification, name resolution in a weights folder."""

import json

import pytest
import torch

from deepfocus_radio.exceptions import (
    CheckpointError,
    ConfigError,
    OutOfTrainingRangeWarning,
    OutputExistsError,
)
from deepfocus_radio.models import (
    PretrainedInfo,
    build_model,
    default_weights_dir,
    get_pretrained_info,
    list_pretrained,
    load_model,
    model_provenance,
    save_pretrained,
)
from deepfocus_radio.models.pretrained import file_sha256

CONFIG = {"arch": "unet", "block_sizes": [4, 8]}
RANGES = {"beam_fwhm_pix": [2.0, 6.0], "channel_width_kms": [5.0, 40.0]}


@pytest.fixture
def shipped(tmp_path):
    """A weights folder with one shipped model, 'alma'."""
    model = build_model(CONFIG, seed=0).eval()
    card = save_pretrained(model, "alma", weights_dir=tmp_path, training_ranges=RANGES,
                           scores={"f1": 0.9}, description="test model")
    return tmp_path, model, card


def test_save_pretrained_writes_weights_and_card(shipped):
    folder, model, card = shipped
    assert sorted(p.name for p in folder.iterdir()) == ["alma.json", "alma.safetensors"]
    assert card.sha256 == file_sha256(folder / "alma.safetensors")
    assert card.config == model.config and card.file == "alma.safetensors"
    assert PretrainedInfo.read(folder / "alma.json") == card
    assert json.loads((folder / "alma.json").read_text())["normalization"] == "channel_noise"


def test_load_by_name(shipped):
    folder, model, card = shipped
    loaded = load_model("alma", weights_dir=folder, device="cpu")
    inputs = torch.randn(1, 1, 6, 10, 9)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model(inputs))
    assert loaded.name == "alma" and loaded.card == card and loaded.sha256 == card.sha256
    provenance = model_provenance(loaded)
    assert provenance["card"]["scores"] == {"f1": 0.9} and provenance["name"] == "alma"


def test_list_and_get_pretrained(shipped):
    folder, _, card = shipped
    assert list_pretrained(weights_dir=folder) == [card]
    assert get_pretrained_info("alma", weights_dir=folder) == card
    assert list_pretrained(weights_dir=folder / "absent") == []


def test_default_weights_folder_cards_are_all_readable():
    folder = default_weights_dir()
    assert folder.is_dir() and (folder / "__init__.py").is_file()
    cards = list_pretrained()
    assert [c.name for c in cards] == sorted(p.stem for p in folder.glob("*.json"))


def test_unknown_name_lists_shipped_names_and_paths(shipped):
    folder = shipped[0]
    with pytest.raises(ConfigError, match=r"unknown model 'ska': shipped models are \['alma'\]; "
                                          r"a path to a '.safetensors' or '.pt' model file"):
        load_model("ska", weights_dir=folder)


def test_tampered_shipped_weights_fail_the_sha256(shipped):
    folder, _, card = shipped
    path = folder / "alma.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"sha256 of .* but its card says {card.sha256}"):
        load_model("alma", weights_dir=folder)


def test_missing_shipped_weights(shipped):
    folder = shipped[0]
    (folder / "alma.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights of shipped model 'alma' .* are missing"):
        load_model("alma", weights_dir=folder)


@pytest.mark.parametrize("file", ["../alma.safetensors", "alma.pt"])
def test_card_file_must_be_a_safetensors_name_in_the_folder(shipped, file):
    folder, _, card = shipped
    PretrainedInfo(**{**card.to_dict(), "file": file}).write(folder / "alma.json")
    with pytest.raises(CheckpointError, match=f"names the file '{file}': it must be a "
                                              f"'.safetensors' file name"):
        load_model("alma", weights_dir=folder)


def test_card_config_must_match_weights(shipped):
    folder, _, card = shipped
    other = PretrainedInfo(**{**card.to_dict(), "config": {**card.config, "dropout": 0.2}})
    other.write(folder / "alma.json")
    with pytest.raises(CheckpointError, match="configuration in .* differs from the one in the "
                                              "card alma.json"):
        load_model("alma", weights_dir=folder)


def test_invalid_cards(shipped):
    folder, _, card = shipped
    path = folder / "alma.json"
    path.write_text(json.dumps({**card.to_dict(), "pixel_scale": 0.1}))
    with pytest.raises(CheckpointError, match=r"not a valid model card: unknown fields "
                                              r"\['pixel_scale'\], missing fields \[\]"):
        list_pretrained(weights_dir=folder)
    path.write_text(json.dumps({"name": "alma"}))
    with pytest.raises(CheckpointError, match=r"missing fields \['config', 'file', 'sha256'\]"):
        get_pretrained_info("alma", weights_dir=folder)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="model card .* is not valid JSON"):
        load_model("alma", weights_dir=folder)
    path.write_text("[1]")
    with pytest.raises(CheckpointError, match="must hold a JSON object; got list"):
        load_model("alma", weights_dir=folder)
    path.write_text(json.dumps({**card.to_dict(), "name": "ska"}))
    with pytest.raises(CheckpointError, match="is for model 'ska', not 'alma'"):
        load_model("alma", weights_dir=folder)


def test_save_pretrained_errors(shipped):
    folder, model, _ = shipped
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        save_pretrained(model, "alma", weights_dir=folder)
    with pytest.raises(ConfigError, match="name 'my model' must use only letters"):
        save_pretrained(model, "my model", weights_dir=folder)
    card = save_pretrained(model, "alma", weights_dir=folder, overwrite=True, scores={"f1": 1})
    assert get_pretrained_info("alma", weights_dir=folder).scores == {"f1": 1} == card.scores


def test_check_ranges_warns_outside_training_range(shipped):
    card = shipped[2]
    assert card.check_ranges(beam_fwhm_pix=3.0, channel_width_kms=10.0, unknown_key=1e9) == []
    with pytest.warns(OutOfTrainingRangeWarning, match=r"beam_fwhm_pix = 9.0 is outside the "
                                                       r"range \[2.0, 6.0\]"):
        problems = card.check_ranges(beam_fwhm_pix=9.0)
    assert len(problems) == 1
    assert len(card.check_ranges(warn=False, channel_width_kms=1.0)) == 1
