"""``deepfocus models`` through the real entry point."""

import json

from deepfocus_radio.cli.main import main
from deepfocus_radio.models import build_model, save_pretrained


def test_lists_presets_with_parameter_counts(capsys):
    assert main(["models", "--architectures"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out
    assert "vgg16" in out and "138,357,544" in out
    assert "unet" in out and "350,457" in out
    assert "Shipped models" not in out
    assert "densenet  regressor, classifier  bottleneck, basic  True" in out
    assert "unet      deconvolver            basic, bottleneck  True, False       none, batch" in out


def test_lists_shipped_models(tmp_path, capsys):
    model = build_model({"arch": "unet", "block_sizes": [4, 8]})
    save_pretrained(model, "alma", weights_dir=tmp_path, description="ALMA band 6 deconvolver",
                    training_ranges={"beam_fwhm_pix": [2.0, 6.0]}, scores={"f1": 0.9})
    assert main(["models", "--pretrained", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "alma: ALMA band 6 deconvolver" in out
    assert "beam_fwhm_pix in [2.0, 6.0]" in out and "f1 0.9" in out
    assert "Presets" not in out


def test_default_lists_both_and_reports_no_shipped_models(tmp_path, capsys):
    assert main(["models", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Presets" in out and "Shipped models: none installed" in out


def test_show_prints_the_full_configuration(capsys):
    assert main(["models", "--show", "resnet50"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["block"] == "bottleneck" and config["depths"] == [3, 4, 6, 3]


def test_unknown_preset_is_an_error(capsys):
    assert main(["models", "--show", "resnet9"]) == 1
    err = capsys.readouterr().err
    assert "unknown model preset 'resnet9'; available presets: ['cae', " in err
