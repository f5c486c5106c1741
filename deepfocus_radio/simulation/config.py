"""Settings of the ALMA-like and SKA-like cube simulators.

Randomized quantities are given as ``(low, high)`` ranges; every cube draws its own
value from each range (uniformly, or log-uniformly where the docstring says so). A range
with ``low == high`` fixes the value. Settings are validated when the object is made, and
an invalid one raises :class:`~deepfocus_radio.exceptions.ConfigError` naming it.
"""

import dataclasses
import math
import os
from dataclasses import dataclass

from deepfocus_radio.exceptions import ConfigError

__all__ = ["AlmaConfig", "SkaConfig", "WEIGHTINGS"]

#: Visibility weighting schemes understood by the imager.
WEIGHTINGS = ("natural", "uniform", "briggs")


def _as_range(name, value, *, integer=False, low=None, high=None, low_open=False):
    """Validate a ``(low, high)`` range; return it as a tuple of floats (or ints)."""
    try:
        first, second = value
        first, second = float(first), float(second)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(first) and math.isfinite(second)):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if first > second:
        raise ConfigError(f"{name} is empty: low {first:g} > high {second:g}; give (low, high)")
    if low is not None and (first <= low if low_open else first < low):
        bound = ">" if low_open else ">="
        raise ConfigError(f"{name} must be {bound} {low:g}, got {value!r}")
    if high is not None and second > high:
        raise ConfigError(f"{name} must be <= {high:g}, got {value!r}")
    if integer:
        if first != int(first) or second != int(second):
            raise ConfigError(f"{name} must hold integers, got {value!r}")
        return (int(first), int(second))
    return (first, second)


def _as_number(name, value, *, low=None, high=None, low_open=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        bound = ">" if low_open else ">="
        raise ConfigError(f"{name} must be {bound} {low:g}, got {value!r}")
    if high is not None and number > high:
        raise ConfigError(f"{name} must be <= {high:g}, got {value!r}")
    return number


def _as_shape(name, value):
    try:
        ny, nx = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (ny, nx) pair of integers, got {value!r}") from None
    if ny < 8 or nx < 8:
        raise ConfigError(f"{name} must be at least (8, 8) pixels, got {value!r}")
    return (ny, nx)


def _check_antenna_file(name, path):
    if path is None:
        return None
    path = os.fspath(path)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(
            f"{name}: cannot read antenna file {path!r}; give a readable CASA "
            "configuration file (rows 'x y z diam pad') or None for the built-in array"
        )
    return path


class _ConfigMixin:
    """Shared construction from mappings and conversion to plain dicts."""

    @classmethod
    def from_mapping(cls, mapping):
        """Build the settings from a plain mapping (e.g. parsed YAML).

        Parameters
        ----------
        mapping : mapping
            Setting names to values; lists are accepted for ranges.

        Returns
        -------
        AlmaConfig or SkaConfig

        Raises
        ------
        ConfigError
            For an unknown key (named in the message) or an invalid value.
        """
        if mapping is None:
            return cls()
        if not hasattr(mapping, "keys"):
            raise ConfigError(f"{cls.__name__} settings must be a mapping, got {type(mapping).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} setting(s) {', '.join(map(repr, unknown))}; "
                f"valid settings are: {', '.join(sorted(known))}"
            )
        values = {key: tuple(val) if isinstance(val, list) else val for key, val in mapping.items()}
        return cls(**values)

    def to_dict(self):
        """Plain ``dict`` of the settings (tuples as lists), e.g. for YAML or JSON."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class AlmaConfig(_ConfigMixin):
    """Settings of ALMA-like spectral-line cubes (all keyword arguments).

    Parameters
    ----------
    image_shape : (int, int)
        Image size ``(ny, nx)``, pixels.
    n_channels_range : (int, int)
        Number of channels.
    channel_width_range : (float, float)
        Channel width, Hz (positive: frequency increases with channel index).
    start_frequency_range : (float, float)
        Frequency of channel 0, Hz.
    beam_fwhm_pixels_range : (float, float)
        Restoring-beam FWHM in pixels (geometric mean of major and minor axes); the pixel
        size is chosen from the synthesized beam so that the beam lands on this value.
    noise_rms_range : (float, float)
        Image-plane noise rms per channel, Jy/beam (drawn log-uniformly).
    n_sources_range : (int, int)
        Number of sources per cube (inclusive; 0 gives source-free cubes).
    source_fwhm_range : (float, float)
        Intrinsic FWHM of the source major axis, in units of the restoring-beam FWHM
        (0 is a point source, placed at the centre of a pixel).
    axis_ratio_range : (float, float)
        Intrinsic minor/major axis ratio, in (0, 1].
    pa_range : (float, float)
        Position angle of the major axis, deg east of north.
    line_fwhm_range : (float, float)
        Line FWHM, channels.
    snr_range : (float, float)
        Target peak signal-to-noise ratio in the dirty cube (drawn log-uniformly, so the
        default gives about 28% faint sources with SNR 2-5). The value actually reached is
        measured and stored as ``snr``.
    blend_fraction : float
        Fraction of sources placed next to an earlier one (within one beam and one line
        FWHM), to make blended, crowded cases.
    continuum_fraction : float
        Fraction of sources that also have continuum emission.
    continuum_snr_range : (float, float)
        Peak SNR of that continuum at the first channel.
    spectral_index_range : (float, float)
        Continuum spectral index alpha (``S ~ nu**alpha``).
    weighting : {"natural", "uniform", "briggs"}
        Visibility weighting.
    robust_range : (float, float)
        Briggs robust parameter, in [-2, 2] (used with ``weighting="briggs"``).
    antenna_file : str or None
        CASA antenna configuration file (``x y z diam pad`` rows, local tangent plane, m);
        None uses the built-in 43 x 12 m ALMA-like array scaled to ``max_baseline_range``.
    max_baseline_range : (float, float)
        Longest baseline of the built-in array, m (ignored for ``antenna_file``).
    site_latitude : float
        Latitude of the array, deg.
    declination_range : (float, float)
        Declination of the phase centre, deg.
    hour_angle_range : (float, float)
        Window of hour angles in which the track lies, hours.
    track_hours_range : (float, float)
        Duration of the observation, hours.
    integration_time : float
        Visibility integration (averaging) time, s.
    primary_beam : bool
        Attenuate the sky by the 12 m primary beam (Gaussian, FWHM ``1.13 lambda / D``)
        and write the primary-beam cube.
    """

    image_shape: tuple = (128, 128)
    n_channels_range: tuple = (48, 96)
    channel_width_range: tuple = (0.5e6, 4.0e6)
    start_frequency_range: tuple = (85.0e9, 360.0e9)
    beam_fwhm_pixels_range: tuple = (2.5, 8.0)
    noise_rms_range: tuple = (1.0e-4, 2.0e-3)
    n_sources_range: tuple = (0, 8)
    source_fwhm_range: tuple = (0.0, 1.5)
    axis_ratio_range: tuple = (0.3, 1.0)
    pa_range: tuple = (0.0, 180.0)
    line_fwhm_range: tuple = (2.0, 12.0)
    snr_range: tuple = (2.0, 50.0)
    blend_fraction: float = 0.15
    continuum_fraction: float = 0.1
    continuum_snr_range: tuple = (1.0, 10.0)
    spectral_index_range: tuple = (-1.0, 3.0)
    weighting: str = "briggs"
    robust_range: tuple = (-0.5, 2.0)
    antenna_file: object = None
    max_baseline_range: tuple = (300.0, 3000.0)
    site_latitude: float = -23.0229
    declination_range: tuple = (-70.0, 15.0)
    hour_angle_range: tuple = (-3.0, 3.0)
    track_hours_range: tuple = (0.1, 2.0)
    integration_time: float = 60.0
    primary_beam: bool = False

    def __post_init__(self):
        _validate_common(self)
        setter = object.__setattr__
        setter(self, "beam_fwhm_pixels_range",
               _as_range("beam_fwhm_pixels_range", self.beam_fwhm_pixels_range, low=2.0, high=64.0))
        setter(self, "source_fwhm_range", _as_range("source_fwhm_range", self.source_fwhm_range, low=0.0))
        setter(self, "axis_ratio_range",
               _as_range("axis_ratio_range", self.axis_ratio_range, low=0.0, high=1.0, low_open=True))
        setter(self, "pa_range", _as_range("pa_range", self.pa_range, low=-360.0, high=360.0))
        setter(self, "line_fwhm_range",
               _as_range("line_fwhm_range", self.line_fwhm_range, low=0.0, low_open=True))
        setter(self, "continuum_snr_range",
               _as_range("continuum_snr_range", self.continuum_snr_range, low=0.0))
        setter(self, "spectral_index_range", _as_range("spectral_index_range", self.spectral_index_range))
        setter(self, "max_baseline_range",
               _as_range("max_baseline_range", self.max_baseline_range, low=0.0, low_open=True))
        setter(self, "continuum_fraction",
               _as_number("continuum_fraction", self.continuum_fraction, low=0.0, high=1.0))
        setter(self, "primary_beam", bool(self.primary_beam))


@dataclass(frozen=True)
class SkaConfig(_ConfigMixin):
    """Settings of SKA-MID-like HI cubes in the style of SDC2 (all keyword arguments).

    Parameters
    ----------
    image_shape : (int, int)
        Image size ``(ny, nx)``, pixels.
    n_channels_range : (int, int)
        Number of channels.
    channel_width_range : (float, float)
        Channel width, Hz (SDC2: 30 kHz).
    start_frequency_range : (float, float)
        Frequency of channel 0, Hz (the band is 950-1150 MHz).
    pixel_scale : float
        Pixel size, arcsec.
    beam_fwhm : float
        Restoring-beam FWHM, arcsec (with ``psf_model="array"`` the array is scaled so
        that the synthesized beam at the lowest frequency has this FWHM).
    psf_model : {"gaussian", "array"}
        A Gaussian dirty beam equal to the restoring beam, or per-channel PSFs from the
        array layout and Earth-rotation synthesis.
    noise_rms_range : (float, float)
        Noise rms per channel, Jy/beam (drawn log-uniformly).
    n_sources_range : (int, int)
        Number of galaxies per cube (inclusive).
    hi_size_range : (float, float)
        HI major-axis diameter, arcsec (SDC2 ``hi_size``; the edge of the exponential disc).
    inclination_range : (float, float)
        Inclination, deg (0 is face-on), at most 85.
    w20_range : (float, float)
        Target line width at 20% of the peak, km/s (the rendered width is measured).
    velocity_dispersion : float
        HI velocity dispersion, km/s.
    snr_range : (float, float)
        Target peak SNR (log-uniform); the value reached is measured.
    blend_fraction : float
        Fraction of galaxies placed next to an earlier one.
    weighting, robust_range, antenna_file, site_latitude, declination_range,
    hour_angle_range, track_hours_range, integration_time
        As in :class:`AlmaConfig` (used with ``psf_model="array"``; the built-in layout is
        an SKA-MID-like 64 x 15 m array).
    """

    image_shape: tuple = (128, 128)
    n_channels_range: tuple = (64, 128)
    channel_width_range: tuple = (30.0e3, 30.0e3)
    start_frequency_range: tuple = (950.0e6, 1140.0e6)
    pixel_scale: float = 2.8
    beam_fwhm: float = 7.0
    psf_model: str = "gaussian"
    noise_rms_range: tuple = (2.0e-5, 6.0e-5)
    n_sources_range: tuple = (0, 6)
    hi_size_range: tuple = (8.0, 40.0)
    inclination_range: tuple = (15.0, 85.0)
    w20_range: tuple = (80.0, 400.0)
    velocity_dispersion: float = 10.0
    snr_range: tuple = (2.0, 30.0)
    blend_fraction: float = 0.1
    weighting: str = "briggs"
    robust_range: tuple = (0.0, 1.0)
    antenna_file: object = None
    site_latitude: float = -30.7130
    declination_range: tuple = (-60.0, 0.0)
    hour_angle_range: tuple = (-4.0, 4.0)
    track_hours_range: tuple = (1.0, 4.0)
    integration_time: float = 300.0

    def __post_init__(self):
        _validate_common(self)
        setter = object.__setattr__
        setter(self, "pixel_scale", _as_number("pixel_scale", self.pixel_scale, low=0.0, low_open=True))
        setter(self, "beam_fwhm", _as_number("beam_fwhm", self.beam_fwhm, low=0.0, low_open=True))
        if self.beam_fwhm < 2.0 * self.pixel_scale:
            raise ConfigError(
                f"beam_fwhm ({self.beam_fwhm:g} arcsec) must be at least 2 pixels "
                f"(pixel_scale {self.pixel_scale:g} arcsec)"
            )
        if self.psf_model not in ("gaussian", "array"):
            raise ConfigError(f"psf_model must be 'gaussian' or 'array', got {self.psf_model!r}")
        setter(self, "hi_size_range", _as_range("hi_size_range", self.hi_size_range, low=0.0, low_open=True))
        setter(self, "inclination_range",
               _as_range("inclination_range", self.inclination_range, low=0.0, high=85.0))
        setter(self, "w20_range", _as_range("w20_range", self.w20_range, low=0.0, low_open=True))
        setter(self, "velocity_dispersion",
               _as_number("velocity_dispersion", self.velocity_dispersion, low=0.0, low_open=True))


def _validate_common(config):
    """Validate (and normalize in place) the settings both configurations share."""
    setter = object.__setattr__
    setter(config, "image_shape", _as_shape("image_shape", config.image_shape))
    setter(config, "n_channels_range",
           _as_range("n_channels_range", config.n_channels_range, integer=True, low=1))
    setter(config, "channel_width_range",
           _as_range("channel_width_range", config.channel_width_range, low=0.0, low_open=True))
    setter(config, "start_frequency_range",
           _as_range("start_frequency_range", config.start_frequency_range, low=0.0, low_open=True))
    setter(config, "noise_rms_range",
           _as_range("noise_rms_range", config.noise_rms_range, low=0.0, low_open=True))
    setter(config, "n_sources_range",
           _as_range("n_sources_range", config.n_sources_range, integer=True, low=0))
    setter(config, "snr_range", _as_range("snr_range", config.snr_range, low=0.0, low_open=True))
    setter(config, "blend_fraction", _as_number("blend_fraction", config.blend_fraction, low=0.0, high=1.0))
    if config.weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {config.weighting!r}")
    setter(config, "robust_range", _as_range("robust_range", config.robust_range, low=-2.0, high=2.0))
    setter(config, "antenna_file", _check_antenna_file("antenna_file", config.antenna_file))
    setter(config, "site_latitude", _as_number("site_latitude", config.site_latitude, low=-90.0, high=90.0))
    setter(config, "declination_range",
           _as_range("declination_range", config.declination_range, low=-90.0, high=90.0))
    setter(config, "hour_angle_range",
           _as_range("hour_angle_range", config.hour_angle_range, low=-12.0, high=12.0))
    setter(config, "track_hours_range",
           _as_range("track_hours_range", config.track_hours_range, low=0.0, low_open=True))
    width = config.hour_angle_range[1] - config.hour_angle_range[0]
    if config.track_hours_range[0] > width:
        raise ConfigError(
            f"track_hours_range starts at {config.track_hours_range[0]:g} h, longer than the "
            f"hour_angle_range window ({width:g} h); widen hour_angle_range"
        )
    setter(config, "integration_time",
           _as_number("integration_time", config.integration_time, low=0.0, low_open=True))
    _check_elevation(config)


def _check_elevation(config):
    """Refuse tracks that would observe below the horizon.

    The elevation falls with ``|hour angle|`` and is unimodal in declination, so its
    minimum over the allowed ranges is at one of their corners.
    """
    lat = math.radians(config.site_latitude)
    worst_hour = math.radians(15.0 * max(abs(h) for h in config.hour_angle_range))
    for dec in config.declination_range:
        d = math.radians(dec)
        sin_el = math.sin(lat) * math.sin(d) + math.cos(lat) * math.cos(d) * math.cos(worst_hour)
        if sin_el <= 0.0:
            raise ConfigError(
                f"declination_range and hour_angle_range put the source below the horizon at "
                f"site_latitude {config.site_latitude:g} deg (declination {dec:g} deg, hour angle "
                f"{math.degrees(worst_hour) / 15.0:g} h); narrow them"
            )
