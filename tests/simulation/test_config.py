"""Settings validation: every invalid setting raises ConfigError naming it."""

import numpy as np
import pytest

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.simulation import AlmaConfig, SkaConfig
from deepfocus_radio.simulation.alma import as_config
from deepfocus_radio.simulation.array import builtin_array, read_antenna_file


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"noise_rms_range": (-1e-3, 1e-3)}, "noise_rms_range must be > 0"),
        ({"line_fwhm_range": (0.0, 3.0)}, "line_fwhm_range must be > 0"),
        ({"source_fwhm_range": (-1.0, 1.0)}, "source_fwhm_range must be >= 0"),
        ({"beam_fwhm_pixels_range": (1.0, 3.0)}, "beam_fwhm_pixels_range must be >= 2"),
        ({"n_channels_range": (10, 5)}, "n_channels_range is empty"),
        ({"n_channels_range": (4.5, 6)}, "n_channels_range must hold integers"),
        ({"n_channels_range": 8}, "n_channels_range must be a (low, high) pair"),
        ({"channel_width_range": (1e6, float("inf"))}, "channel_width_range must be finite"),
        ({"axis_ratio_range": (0.5, 1.5)}, "axis_ratio_range must be <= 1"),
        ({"image_shape": (4, 64)}, "image_shape must be at least (8, 8)"),
        ({"image_shape": "big"}, "image_shape must be a (ny, nx) pair"),
        ({"weighting": "robust"}, "weighting must be one of natural, uniform, briggs"),
        ({"robust_range": (-3.0, 0.0)}, "robust_range must be >= -2"),
        ({"blend_fraction": 1.5}, "blend_fraction must be <= 1"),
        ({"continuum_fraction": "some"}, "continuum_fraction must be a number"),
        ({"integration_time": float("nan")}, "integration_time must be finite"),
        ({"site_latitude": 95.0}, "site_latitude must be <= 90"),
        ({"max_baseline_range": (0.0, 100.0)}, "max_baseline_range must be > 0"),
        ({"track_hours_range": (7.0, 8.0)}, "track_hours_range starts at 7 h"),
        ({"antenna_file": "/nonexistent/alma.cfg"}, "antenna_file: cannot read antenna file"),
        ({"declination_range": (50.0, 60.0)}, "put the source below the horizon"),
    ],
)
def test_invalid_alma_settings_name_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AlmaConfig(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"psf_model": "airy"}, "psf_model must be 'gaussian' or 'array'"),
        ({"beam_fwhm": 3.0}, "beam_fwhm .* must be at least 2 pixels"),
        ({"pixel_scale": 0.0}, "pixel_scale must be > 0"),
        ({"inclination_range": (10.0, 90.0)}, "inclination_range must be <= 85"),
        ({"hi_size_range": (0.0, 10.0)}, "hi_size_range must be > 0"),
        ({"w20_range": (-5.0, 10.0)}, "w20_range must be > 0"),
        ({"velocity_dispersion": 0.0}, "velocity_dispersion must be > 0"),
    ],
)
def test_invalid_ska_settings_name_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        SkaConfig(**settings)


def test_from_mapping_rejects_unknown_keys_by_name():
    with pytest.raises(ConfigError, match="unknown AlmaConfig setting.*'n_sorces'"):
        AlmaConfig.from_mapping({"n_sorces": (1, 2)})
    with pytest.raises(ConfigError, match="settings must be a mapping"):
        AlmaConfig.from_mapping([("image_shape", (8, 8))])


def test_from_mapping_round_trips_and_accepts_lists():
    config = AlmaConfig.from_mapping({"image_shape": [32, 48], "n_channels_range": [8, 12]})
    assert config.image_shape == (32, 48) and config.n_channels_range == (8, 12)
    assert AlmaConfig.from_mapping(config.to_dict()) == config
    assert AlmaConfig.from_mapping(None) == AlmaConfig()
    assert SkaConfig.from_mapping({"psf_model": "array"}).psf_model == "array"


def test_as_config_accepts_none_mapping_or_instance_only():
    assert as_config(None, AlmaConfig) == AlmaConfig()
    assert as_config({"weighting": "natural"}, AlmaConfig).weighting == "natural"
    with pytest.raises(ConfigError, match="config must be a AlmaConfig, a mapping or None"):
        as_config(42, AlmaConfig)


def test_antenna_file_errors(tmp_path):
    utm = tmp_path / "utm.cfg"
    utm.write_text("# coordsys=UTM\n1 2 3 12 A\n4 5 6 12 B\n")
    with pytest.raises(ConfigError, match="coordsys 'UTM' is not supported"):
        read_antenna_file(utm)
    bad = tmp_path / "bad.cfg"
    bad.write_text("# coordsys=LOC\n1 2 three 12 A\n")
    with pytest.raises(ConfigError, match="line 2: expected 'x y z diam pad'"):
        read_antenna_file(bad)
    lonely = tmp_path / "one.cfg"
    lonely.write_text("0 0 0 12 A\n")
    with pytest.raises(ConfigError, match="fewer than two antennas"):
        read_antenna_file(lonely)
    binary = tmp_path / "binary.cfg"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="antenna_file: cannot read"):
        read_antenna_file(binary)


def test_builtin_alma_array_and_scaling():
    array = builtin_array("alma")
    assert len(array.pads) == 43 and np.all(array.diameter == 12.0)
    scaled = array.scaled(2000.0)
    assert scaled.max_baseline == pytest.approx(2000.0)
    assert scaled.min_separation >= 12.0
    with pytest.raises(ConfigError, match="packs the dishes closer than their diameter"):
        array.scaled(100.0)
