"""ALMA-like spectral-line cubes: Gaussian sources with Gaussian lines seen by an array."""

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.wcs import WCS

from deepfocus_radio.conventions import channel_width_kms, pa_to_pixel_angle
from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.simulation.array import builtin_array, hour_angle_samples, read_antenna_file, uv_tracks
from deepfocus_radio.simulation.config import AlmaConfig
from deepfocus_radio.simulation.cube import SimulatedCube, cube_header
from deepfocus_radio.simulation.imaging import UVSampling, fit_beam, gaussian_kernel
from deepfocus_radio.simulation.observe import observe
from deepfocus_radio.simulation.sky import (
    Component,
    beam_peak_per_jy,
    gaussian_line,
    gaussian_profile,
    render_sky,
)

__all__ = [
    "simulate_alma_cube",
    "draw_observation",
    "choose_pixel_scale",
    "measure_sources",
    "measure_channels",
    "as_config",
    "inside_fraction",
    "seed_card",
    "SOURCE_COLUMNS",
    "RESOLVED_FRACTION",
    "column_dtypes",
    "morphology_class",
]

_C_M_S = 299792458.0


def as_config(config, cls):
    """Accept None (defaults), a mapping, or an instance of ``cls``."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if hasattr(config, "keys"):
        return cls.from_mapping(config)
    raise ConfigError(f"config must be a {cls.__name__}, a mapping or None, got {type(config).__name__}")


def seed_card(seed):
    """The seed as a short FITS card value (the entropy of a SeedSequence)."""
    if isinstance(seed, np.random.SeedSequence):
        return f"{seed.entropy}/{'-'.join(map(str, seed.spawn_key))}"[:68]
    return str(seed)[:68]


def _uniform(rng, bounds):
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_uniform(rng, bounds):
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def draw_observation(config, rng):
    """Draw the per-cube observing set-up from the configuration ranges.

    Returns
    -------
    dict
        ``nchan``, ``channel_width`` (Hz), ``start_frequency`` (Hz), ``ra``, ``dec`` (deg),
        ``ha_start``, ``track_hours`` (h), ``robust``, ``noise_rms`` (Jy/beam), ``n_sources``.
    """
    obs = {"nchan": int(rng.integers(config.n_channels_range[0], config.n_channels_range[1] + 1))}
    obs["channel_width"] = _uniform(rng, config.channel_width_range)
    obs["start_frequency"] = _uniform(rng, config.start_frequency_range)
    obs["ra"] = _uniform(rng, (0.0, 360.0))
    obs["dec"] = _uniform(rng, config.declination_range)
    obs["track_hours"] = _uniform(rng, config.track_hours_range)
    low, high = config.hour_angle_range
    obs["ha_start"] = _uniform(rng, (low, max(low, high - obs["track_hours"])))
    obs["robust"] = _uniform(rng, config.robust_range)
    obs["noise_rms"] = _log_uniform(rng, config.noise_rms_range)
    obs["n_sources"] = int(rng.integers(config.n_sources_range[0], config.n_sources_range[1] + 1))
    obs["frequencies"] = obs["start_frequency"] + obs["channel_width"] * np.arange(obs["nchan"])
    return obs


def choose_pixel_scale(u_m, v_m, *, shape, frequency, target_fwhm_pixels, weighting, robust):
    """Pick the pixel size that samples the synthesized beam with the requested pixels.

    The restoring beam is fitted at ``frequency`` and the pixel rescaled until the beam's
    geometric-mean FWHM is within 2% of ``target_fwhm_pixels`` (at most 4 rounds; the
    beam changes a little with the pixel through uniform/Briggs weighting and baselines
    falling off the grid).

    Returns
    -------
    sampling : `~deepfocus_radio.simulation.imaging.UVSampling`
    beam : `radio_beam.Beam`
        The fitted restoring beam at ``frequency``.
    """
    uv_max = float(np.max(np.hypot(u_m, v_m))) * frequency / _C_M_S
    pixel = 0.2 / uv_max
    for _ in range(4):
        sampling = UVSampling(u_m, v_m, tuple(shape), pixel, weighting, robust)
        beam = fit_beam(sampling.psf(frequency), pixel * u.rad)
        fwhm = np.sqrt(beam.major.to_value(u.rad) * beam.minor.to_value(u.rad)) / pixel
        if abs(fwhm / target_fwhm_pixels - 1.0) < 0.02:
            break
        pixel *= fwhm / target_fwhm_pixels
    return sampling, beam


def _array(config, rng):
    if config.antenna_file is not None:
        return read_antenna_file(config.antenna_file), None
    max_baseline = _uniform(rng, config.max_baseline_range)
    return builtin_array("alma").scaled(max_baseline), max_baseline


def _beam_pixels(beam, pixel_arcsec):
    """(major FWHM px, minor FWHM px, pixel angle deg) of a radio-beam Beam."""
    return (beam.major.to_value(u.arcsec) / pixel_arcsec, beam.minor.to_value(u.arcsec) / pixel_arcsec,
            float(pa_to_pixel_angle(beam.pa.to_value(u.deg))))


def _primary_beam(shape, frequencies, pixel_rad, diameter):
    """Gaussian primary beam, FWHM ``1.13 lambda / D``, centred on the phase centre."""
    ny, nx = shape
    r2 = ((np.arange(ny) - ny // 2)[:, None] ** 2 + (np.arange(nx) - nx // 2)[None, :] ** 2) * pixel_rad**2
    fwhm = 1.13 * _C_M_S / np.asarray(frequencies) / diameter
    return np.exp(-4.0 * np.log(2.0) * r2[None] / fwhm[:, None, None] ** 2)


def _draw_source(config, rng, obs, beam_px, placed):
    """Parameters of one source (all random draws happen in a fixed order)."""
    nchan, (ny, nx) = obs["nchan"], config.image_shape
    beam_fwhm = np.sqrt(beam_px[0] * beam_px[1])
    src = {"fwhm_major": _uniform(rng, config.source_fwhm_range) * beam_fwhm}
    src["fwhm_minor"] = src["fwhm_major"] * _uniform(rng, config.axis_ratio_range)
    src["pa"] = _uniform(rng, config.pa_range) % 180.0
    src["fwhm_z"] = min(_uniform(rng, config.line_fwhm_range), nchan / 2.0)
    margin = min(np.ceil(1.5 * max(beam_px[0], src["fwhm_major"])) + 2, min(ny, nx) / 2 - 1)
    margin_z = min(src["fwhm_z"], (nchan - 1) / 2.0)
    position = [_uniform(rng, (margin, nx - 1 - margin)), _uniform(rng, (margin, ny - 1 - margin)),
                _uniform(rng, (margin_z, nchan - 1 - margin_z))]
    offset = (rng.uniform(0.5, 1.0) * beam_px[0], rng.uniform(0, 2 * np.pi), rng.uniform(-1.0, 1.0))
    src["blended"] = bool(placed and rng.uniform() < config.blend_fraction)
    if src["blended"]:
        near = placed[int(rng.integers(len(placed)))]
        position = [near["x"] + offset[0] * np.cos(offset[1]), near["y"] + offset[0] * np.sin(offset[1]),
                    near["z"] + offset[2] * near["fwhm_z"]]
        position = [float(np.clip(position[0], margin, nx - 1 - margin)),
                    float(np.clip(position[1], margin, ny - 1 - margin)),
                    float(np.clip(position[2], margin_z, nchan - 1 - margin_z))]
    if src["fwhm_major"] == 0.0:  # a point source fills exactly one pixel of the sky model
        position[:2] = [float(np.rint(position[0])), float(np.rint(position[1]))]
    src["x"], src["y"], src["z"] = position
    src["class"] = morphology_class(src["fwhm_major"], beam_px)
    src["target_snr"] = _log_uniform(rng, config.snr_range)
    has_continuum = rng.uniform() < config.continuum_fraction
    continuum_snr, src["spectral_index"] = _uniform(rng, config.continuum_snr_range), _uniform(
        rng, config.spectral_index_range)
    src["continuum_snr"] = continuum_snr if has_continuum else 0.0
    return src


def inside_fraction(y0, x0, profile, shape):
    """Fraction of a component's profile that falls inside an image of ``shape``."""
    ny, nx = shape
    h, w = profile.shape
    rows = slice(max(-y0, 0), max(min(ny - y0, h), 0))
    cols = slice(max(-x0, 0), max(min(nx - x0, w), 0))
    return float(profile[rows, cols].sum())


def _components(src, obs, beam_px, gain, shape):
    """Line (and continuum) components of a source, scaled to its target SNR.

    Also sets ``src["flux"]``: the integrated line flux in the cube (Jy km/s), with the
    velocity width of a channel taken at the line's observed frequency.
    """
    y0, x0, profile = gaussian_profile(src["x"], src["y"], src["fwhm_major"], src["fwhm_minor"], src["pa"])
    per_jy = beam_peak_per_jy(src["fwhm_major"], src["fwhm_minor"], src["pa"], beam_px) * gain
    line = gaussian_line(obs["nchan"], src["z"], src["fwhm_z"])
    src["line_peak"] = src["target_snr"] * obs["noise_rms"] / (per_jy * line.max())
    components = [Component(y0, x0, profile, src["line_peak"] * line)]
    line_freq = obs["start_frequency"] + src["z"] * obs["channel_width"]
    dv = channel_width_kms(obs["channel_width"] * u.Hz, line_freq * u.Hz).to_value(u.km / u.s)
    src["flux"] = inside_fraction(y0, x0, profile, shape) * float(np.sum(components[0].spectrum)) * dv
    src["continuum"] = src["continuum_snr"] * obs["noise_rms"] / per_jy
    if src["continuum"] > 0:
        spectrum = src["continuum"] * (obs["frequencies"] / obs["frequencies"][0]) ** src["spectral_index"]
        components.append(Component(y0, x0, profile, spectrum))
    return components


def measure_channels(z, nchan):
    """Channels in which :func:`measure_sources` looks for a source at channel ``z``: the
    nearest channel and one on each side, within the cube."""
    nearest = int(np.clip(np.rint(z), 0, nchan - 1))
    return np.arange(max(nearest - 1, 0), min(nearest + 2, nchan))


def _own_sky_planes(components, channels, shape):
    """The sky (Jy/pixel) that ``components`` alone make in ``channels``, shape
    ``(len(channels), ny, nx)``."""
    sliced = [Component(c.y0, c.x0, c.profile, np.asarray(c.spectrum)[channels])
              for c in components]
    return render_sky(sliced, shape, len(channels))


def measure_sources(sources, own_sky, *, psf, beam_fwhm_pixels, noise_rms):
    """Measure each source's own ``peak`` (clean cube) and ``snr`` (noise-free dirty cube
    / noise), in place.

    Each is the maximum, within +-1 pixel and +-1 channel (:func:`measure_channels`) of
    the source's nearest voxel, of the cubes that the source *alone* makes: what a
    neighbour adds there is not counted. A faint source half a beam from a bright one
    keeps its own (low) SNR instead of taking its neighbour's, so that completeness per
    SNR bin measures what can be detected (as for CASA's cubes in
    ``examples/evaluate_casa.py``, whose truth is each source's own peak).

    Parameters
    ----------
    sources : list of dict
        Sources with ``x``, ``y``, ``z`` (pixels, channels); ``peak`` (Jy/beam) and ``snr``
        are set.
    own_sky : list of ndarray, shape (n, ny, nx)
        Each source's own sky (Jy/pixel, as observed: primary beam applied) in its
        :func:`measure_channels`.
    psf : ndarray, shape (nchan, ny, nx)
        Per-channel PSF, peak 1 at ``(ny // 2, nx // 2)`` (the dirty cube's).
    beam_fwhm_pixels : (float, float, float)
        Restoring beam (the clean cube's): major, minor FWHM (pixels), pixel angle (deg).
    noise_rms : ndarray, shape (nchan,)
        Noise rms per channel of the dirty cube, Jy/beam.
    """
    nchan, ny, nx = psf.shape
    beam = gaussian_kernel(beam_fwhm_pixels, (ny, nx), centred=True)
    for src, planes in zip(sources, own_sky):
        channels = measure_channels(src["z"], nchan)
        y, x = (int(np.clip(np.rint(src[k]), 0, n - 1)) for k, n in (("y", ny), ("x", nx)))
        pixels = [(j, i) for j in range(max(y - 1, 0), min(y + 2, ny))
                  for i in range(max(x - 1, 0), min(x + 2, nx))]
        dirty = max(max(_response_at(plane, psf[c], pixels)) for c, plane in zip(channels, planes))
        src["peak"] = float(max(max(_response_at(plane, beam, pixels)) for plane in planes))
        src["snr"] = float(dirty / noise_rms[int(np.clip(np.rint(src["z"]), 0, nchan - 1))])


def _response_at(plane, kernel, pixels):
    """``plane`` convolved with ``kernel`` (peak at ``(ny // 2, nx // 2)``, as the
    simulator's PSF) at each ``(y, x)`` of ``pixels``: a direct sum over the plane's
    non-zero pixels, which for one source are far fewer than an FFT's."""
    iy, ix = np.nonzero(plane)
    values = plane[iy, ix].astype(float)
    ny, nx = kernel.shape
    out = []
    for y, x in pixels:
        ky, kx = y - iy + ny // 2, x - ix + nx // 2
        inside = (ky >= 0) & (ky < ny) & (kx >= 0) & (kx < nx)
        out.append(float(values[inside] @ kernel[ky[inside], kx[inside]]))
    return out


#: Columns of ``SimulatedCube.sources`` (the ``*_params.csv`` rows, without ``ID``).
SOURCE_COLUMNS = ("x", "y", "z", "flux", "peak", "fwhm_major", "fwhm_minor", "pa", "fwhm_z", "snr", "ra", "dec", "freq",
            "class", "line_peak", "continuum", "spectral_index", "blended", "pb_gain")

#: A source is ``"extended"`` when its intrinsic FWHM major axis is at least this fraction of
#: the restoring beam's FWHM (geometric mean), else ``"point"``: the ``class`` label.
RESOLVED_FRACTION = 0.5


def column_dtypes(columns):
    """dtypes of source-table columns: bool ``blended``, str ``class``, float otherwise."""
    return [bool if name == "blended" else str if name == "class" else float for name in columns]


def morphology_class(fwhm_major, beam_px):
    """``"extended"`` or ``"point"`` (see :data:`RESOLVED_FRACTION`)."""
    return "extended" if fwhm_major >= RESOLVED_FRACTION * np.sqrt(beam_px[0] * beam_px[1]) else "point"


def _source_table(sources, header, columns=SOURCE_COLUMNS):
    wcs = WCS(header)
    for src in sources:
        ra, dec, freq = wcs.all_pix2world([[src["x"], src["y"], src["z"]]], 0)[0]
        src.update(ra=float(ra), dec=float(dec), freq=float(freq))
    table = Table(rows=[[src[name] for name in columns] for src in sources] or None, names=columns,
                  dtype=column_dtypes(columns))
    return table


def _alma_header(config, obs, beam, pixel_arcsec, seed, max_baseline):
    cards = [
        ("OBJECT", "deepfocus_radio ALMA-like simulation", ""),
        ("DFSEED", seed_card(seed), "simulation seed"),
        ("DFWEIGHT", config.weighting, "visibility weighting"),
        ("DFROBUST", round(obs["robust"], 6), "Briggs robust parameter"),
        ("DFNOISE", obs["noise_rms"], "[Jy/beam] noise rms per channel"),
        ("DFHASTRT", round(obs["ha_start"], 6), "[h] hour angle at the start of the track"),
        ("DFTRACK", round(obs["track_hours"], 6), "[h] track duration"),
        ("DFMAXBL", max_baseline if max_baseline is not None else "file", "[m] longest baseline"),
        ("DFPB", config.primary_beam, "primary beam applied"),
    ]
    nchan = obs["nchan"]
    return cube_header(
        shape=(nchan, *config.image_shape), pixel_scale=pixel_arcsec, ra=obs["ra"], dec=obs["dec"],
        start_frequency=obs["start_frequency"], channel_width=obs["channel_width"],
        rest_frequency=float(obs["frequencies"][nchan // 2]), beam=beam, telescope="ALMA", cards=cards,
    )


def simulate_alma_cube(config=None, *, seed, workers=None, full_psf=False):
    """Simulate one ALMA-like spectral-line cube.

    Parameters
    ----------
    config : AlmaConfig or mapping, optional
        Settings (defaults: ``AlmaConfig()``).
    seed : int or `numpy.random.SeedSequence`
        Seed of every random draw; the same seed gives bit-identical data.
    workers : int, optional
        FFT threads (the result does not depend on it).
    full_psf : bool, optional
        Also make ``psf_full``, the PSF over twice the image (for
        :func:`~deepfocus_radio.sources.find_sources`' ``psf=``: it models every
        source's sidelobes across the whole image).

    Returns
    -------
    SimulatedCube
        ``sources`` holds, per source, the DESIGN.md columns (``class`` is ``"point"`` or
        ``"extended"``, see :func:`morphology_class`) and ``line_peak`` (Jy, line
        flux density at the line centre), ``continuum`` (Jy at channel 0) and
        ``spectral_index``, ``blended`` and ``pb_gain``. ``flux`` is the intrinsic line flux
        (Jy km/s); with ``primary_beam=True`` the cubes are attenuated (as a CASA image
        without primary-beam correction), so their integrated flux is ``flux * pb_gain``.

    Raises
    ------
    ConfigError
        For invalid settings (named in the message), e.g. from ``AlmaConfig.from_mapping``,
        or an antenna layout that cannot be used.

    Notes
    -----
    Steps: draw the set-up; make uv tracks of the array; pick the pixel size so that the
    restoring beam (Gaussian fit to the lowest-frequency PSF) has the drawn FWHM in
    pixels; draw sources and scale each to its target SNR; render the sky (Jy/pixel);
    image it per channel (:func:`~deepfocus_radio.simulation.observe.observe`); measure
    ``peak`` and ``snr`` on the noise-free cubes.
    """
    config = as_config(config, AlmaConfig)
    rng = np.random.default_rng(seed)
    obs = draw_observation(config, rng)
    array, max_baseline = _array(config, rng)
    target_px = _uniform(rng, config.beam_fwhm_pixels_range)
    hours = hour_angle_samples(obs["ha_start"], obs["track_hours"], config.integration_time)
    u_m, v_m = uv_tracks(array.enu, latitude=config.site_latitude, declination=obs["dec"], hour_angles=hours)
    sampling, beam = choose_pixel_scale(u_m, v_m, shape=config.image_shape, frequency=obs["frequencies"].min(),
                                        target_fwhm_pixels=target_px, weighting=config.weighting,
                                        robust=obs["robust"])
    pixel_arcsec = np.rad2deg(sampling.pixel_scale) * 3600.0
    beam_px = _beam_pixels(beam, pixel_arcsec)
    pb = (_primary_beam(config.image_shape, obs["frequencies"], sampling.pixel_scale, float(array.diameter.max()))
          if config.primary_beam else None)
    sources, components, own_sky = [], [], []
    for _ in range(obs["n_sources"]):
        src = _draw_source(config, rng, obs, beam_px, sources)
        zyx = tuple(int(np.rint(src[k])) for k in ("z", "y", "x"))
        src["pb_gain"] = float(pb[zyx]) if pb is not None else 1.0
        own = _components(src, obs, beam_px, src["pb_gain"], config.image_shape)
        channels = measure_channels(src["z"], obs["nchan"])
        planes = _own_sky_planes(own, channels, config.image_shape)
        own_sky.append(planes * pb[channels] if pb is not None else planes)
        components.extend(own)
        sources.append(src)
    sky = render_sky(components, config.image_shape, obs["nchan"])
    apparent = sky * pb if pb is not None else sky
    noise_rms = np.full(obs["nchan"], obs["noise_rms"])
    result = observe(apparent, obs["frequencies"], psf_model=sampling, beam_fwhm_pixels=beam_px,
                     noise_rms=noise_rms, rng=rng, workers=workers, full_psf=full_psf)
    measure_sources(sources, own_sky, psf=result.psf, beam_fwhm_pixels=beam_px, noise_rms=noise_rms)
    header = _alma_header(config, obs, beam, pixel_arcsec, seed, max_baseline)
    return SimulatedCube(
        dirty=result.dirty_signal + result.noise, clean=result.clean,
        sky=apparent.astype(np.float32, copy=False), psf=result.psf, beam=beam, header=header,
        noise_rms=noise_rms, sources=_source_table(sources, header),
        pb=None if pb is None else pb.astype(np.float32), meta={"observation": obs, "seed": seed},
        psf_full=result.psf_full,
    )
