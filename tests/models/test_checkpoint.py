"""save_model / load_model: safetensors round trip, .pt dicts, tampering, wrong weights."""

import json

import pytest
import torch
from safetensors.torch import save_file

from deepfocus_radio.exceptions import CheckpointError, ConfigError, OutputExistsError
from deepfocus_radio.models import (
    build_model,
    create_model,
    load_model,
    model_provenance,
    save_model,
)
from deepfocus_radio.models.checkpoint import tensors_digest
from deepfocus_radio.models.pretrained import file_sha256

SMALL_UNET = {"arch": "unet", "block_sizes": [4, 8], "norm": "batch"}
SMALL_RESNET = {"arch": "resnet", "spatial_dims": 2, "block_sizes": [4, 8], "depths": [1, 1],
                "init_features": 4, "out_channels": 3}


def _trained(config):
    """A model whose batch-norm statistics differ from their initial values."""
    model = build_model(config, seed=0)
    shape = (4, 1, 8, 10, 12) if model.config["spatial_dims"] == 3 else (4, 1, 16, 16)
    with torch.no_grad():
        model(torch.randn(*shape) * 2 + 1)
    return model.eval()


@pytest.mark.parametrize("config", [SMALL_UNET, SMALL_RESNET], ids=["unet", "resnet"])
def test_safetensors_round_trip_is_bit_exact(tmp_path, config):
    model = _trained(config)
    path = save_model(model, tmp_path / "model.safetensors", metadata={"epochs": 3})
    loaded = load_model(path, device="cpu")
    inputs = torch.randn(2, 1, 9, 11, 13) if config is SMALL_UNET else torch.randn(2, 1, 20, 18)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model(inputs))
    assert loaded.config == model.config
    assert loaded.metadata == {"epochs": 3}
    assert loaded.card is None and loaded.name == str(path)
    assert loaded.sha256 == file_sha256(path)
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left


def test_pt_checkpoint_dict_round_trip(tmp_path):
    model = _trained(SMALL_RESNET)
    path = tmp_path / "epoch3.pt"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"state_dict": model.state_dict(), "config": model.config,
                "optimizer": optimizer.state_dict(), "epoch": 3,
                "metadata": {"loss": 0.5}}, path)
    loaded = load_model(path, device=torch.device("cpu"))
    inputs = torch.randn(2, 1, 20, 18)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model(inputs))
    assert loaded.metadata == {"loss": 0.5} and loaded.sha256 == file_sha256(path)


class _Payload:
    """Unpickling this runs code (creates a file): weights_only must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pt_with_code_is_refused_by_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    model = build_model(SMALL_RESNET)
    torch.save({"state_dict": model.state_dict(), "config": model.config,
                "extra": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil.pt.*\(Unsupported "
                                              r"global: GLOBAL _?io.open\), which torch.load\(weights_only=True\) will "
                                              r"not run"):
        load_model(path)
    assert not marker.exists()


def test_truncated_pt_file(tmp_path):
    path = tmp_path / "cut.pt"
    model = build_model(SMALL_RESNET)
    torch.save({"state_dict": model.state_dict(), "config": model.config}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read .*cut.pt.*truncated, corrupted or "
                                              "not a torch checkpoint"):
        load_model(path)


def test_pt_without_required_keys(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(build_model(SMALL_RESNET).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"not a deepfocus checkpoint: expected a dict with "
                                              r"keys 'state_dict' and 'config', found \["):
        load_model(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="found list"):
        load_model(path)
    torch.save({"state_dict": {"weight": [1.0]}, "config": {"arch": "unet"}}, path)
    with pytest.raises(CheckpointError, match="'state_dict' of .* must map parameter names to "
                                              "tensors"):
        load_model(path)


def test_tampered_weights_are_detected(tmp_path):
    path = save_model(_trained(SMALL_UNET), tmp_path / "model.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the digest.*modified or corrupted"):
        load_model(path)


def test_truncated_file_is_detected(tmp_path):
    path = save_model(_trained(SMALL_UNET), tmp_path / "model.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="cannot read .*truncated, corrupted or not a "
                                              "safetensors file"):
        load_model(path)


def test_plain_safetensors_without_config(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match="no model configuration in its header"):
        load_model(path)


def test_state_dict_of_another_architecture(tmp_path):
    resnet = build_model(SMALL_RESNET)
    path = tmp_path / "mixed.pt"
    torch.save({"state_dict": resnet.state_dict(), "config": dict(SMALL_UNET)}, path)
    with pytest.raises(CheckpointError, match=r"do not fit its configuration \(arch 'unet'\).*"
                                              r"missing.*unexpected.*another architecture"):
        load_model(path)


def test_weights_of_another_shape(tmp_path):
    model = build_model(SMALL_UNET)
    path = tmp_path / "wider.pt"
    torch.save({"state_dict": model.state_dict(),
                "config": {**SMALL_UNET, "block_sizes": [4, 16]}}, path)
    with pytest.raises(CheckpointError, match=r"0 missing \[\], 0 unexpected \[\], [1-9]\d* of "
                                              r"another shape"):
        load_model(path)


def test_invalid_stored_config(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": {}, "config": {"arch": "unet", "depth": 3}}, path)
    with pytest.raises(CheckpointError, match="configuration stored in .* is invalid: unknown "
                                              "config key 'depth'"):
        load_model(path)


def test_missing_file_and_unsupported_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file .*absent.safetensors' not found"):
        load_model(tmp_path / "absent.safetensors")
    other = tmp_path / "model.h5"
    other.write_bytes(b"\x89HDF")
    with pytest.raises(CheckpointError, match="unsupported model file .*'.safetensors'.*'.pt'"):
        load_model(other)


def test_module_is_returned_as_is():
    model = create_model("cae")
    assert load_model(model) is model
    assert load_model(model, device="cpu") is model


def test_bad_model_argument_and_device(tmp_path):
    with pytest.raises(ConfigError, match="must be an nn.Module, a path or a shipped name; "
                                          "got int"):
        load_model(3)
    path = save_model(build_model(SMALL_UNET), tmp_path / "m.safetensors")
    with pytest.raises(ConfigError, match="device 'gpu0' is not a torch device"):
        load_model(path, device="gpu0")


def test_save_model_errors(tmp_path):
    with pytest.raises(CheckpointError, match="has no 'config' dict: only models made by "
                                              "build_model"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "linear.safetensors")
    model = build_model(SMALL_UNET)
    with pytest.raises(CheckpointError, match="must end in '.safetensors'"):
        save_model(model, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="metadata must be JSON-serializable"):
        save_model(model, tmp_path / "model.safetensors", metadata={"when": object()})
    assert list(tmp_path.iterdir()) == []
    path = save_model(model, tmp_path / "model.safetensors")
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        save_model(model, path, overwrite=False)
    save_model(model, path, metadata={"second": True})
    assert load_model(path).metadata == {"second": True}


def test_header_holds_config_and_metadata(tmp_path):
    model = build_model(SMALL_UNET)
    path = save_model(model, tmp_path / "m.safetensors", metadata={"data": "alma"})
    size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + size])["__metadata__"]
    assert json.loads(header["deepfocus_config"]) == model.config
    assert json.loads(header["deepfocus_metadata"]) == {"data": "alma"}
    assert header["deepfocus_tensors_sha256"] == tensors_digest(model.state_dict())


def test_tensors_digest_depends_on_values_and_names():
    a = {"w": torch.arange(4.0)}
    assert tensors_digest(a) == tensors_digest({"w": torch.arange(4.0)})
    assert tensors_digest(a) != tensors_digest({"w": torch.arange(4.0) + 1})
    assert tensors_digest(a) != tensors_digest({"v": torch.arange(4.0)})
    assert tensors_digest(a) != tensors_digest({"w": torch.arange(4.0).double()})


def test_model_provenance(tmp_path):
    model = build_model(SMALL_UNET)
    assert model_provenance(model) == {"name": None, "sha256": None, "config": model.config,
                                       "card": None}
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    provenance = model_provenance(loaded)
    assert provenance["sha256"] == file_sha256(path) and provenance["name"] == str(path)


def test_header_with_invalid_json(tmp_path):
    tensors = {"weight": torch.zeros(3)}
    path = tmp_path / "broken.safetensors"
    save_file(tensors, str(path), metadata={"deepfocus_config": "{arch: unet",
                                            "deepfocus_tensors_sha256": tensors_digest(tensors)})
    with pytest.raises(CheckpointError, match="the header of .* is not valid JSON"):
        load_model(path)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_state_dict_of_a_wrapped_model_loads(tmp_path, prefix):
    model = _trained(SMALL_RESNET)
    state = {prefix + key: value for key, value in model.state_dict().items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state, "config": model.config}, path)
    inputs = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(load_model(path, device="cpu")(inputs), model(inputs))
