"""SKA-MID-like HI cubes in the style of the SKA Science Data Challenge 2 (SDC2)."""

import numpy as np
import scipy.fft
from astropy import units as u
from astropy.table import Table
from radio_beam import Beam

from deepfocus_radio.conventions import HI_REST_FREQUENCY, channel_width_kms
from deepfocus_radio.simulation.alma import (
    _beam_pixels,
    _log_uniform,
    _source_table,
    _uniform,
    as_config,
    draw_observation,
    measure_channels,
    measure_sources,
    morphology_class,
    seed_card,
)
from deepfocus_radio.simulation.array import builtin_array, hour_angle_samples, read_antenna_file, uv_tracks
from deepfocus_radio.simulation.config import SkaConfig
from deepfocus_radio.simulation.cube import SimulatedCube, cube_header
from deepfocus_radio.simulation.hi import SPEED_OF_LIGHT_KMS, HIDisc, moment_sizes, profile_width, render_disc
from deepfocus_radio.simulation.imaging import GaussianPSF, UVSampling, fit_beam, gaussian_kernel
from deepfocus_radio.simulation.observe import observe

__all__ = ["simulate_ska_cube", "sdc2_table", "HI_REST_FREQUENCY", "SDC2_COLUMNS", "SOURCE_COLUMNS"]


#: Columns of the SDC2 truth catalogue, in order.
SDC2_COLUMNS = ("id", "ra", "dec", "hi_size", "line_flux_integral", "central_freq", "pa", "i", "w20")

#: Columns of ``SimulatedCube.sources`` (the ``*_params.csv`` rows, without ``ID``).
SOURCE_COLUMNS = ("x", "y", "z", "flux", "peak", "fwhm_major", "fwhm_minor", "pa", "fwhm_z", "snr", "ra", "dec", "freq",
            "class", "hi_size", "line_flux_integral", "pa_kinematic", "inclination", "w20", "w50", "blended")


def _psf_model(config, obs):
    """Gaussian dirty beam, or the (built-in, rescaled to the beam) array's sampling."""
    pixel = config.pixel_scale
    if config.psf_model == "gaussian":
        beam = Beam(major=config.beam_fwhm * u.arcsec, minor=config.beam_fwhm * u.arcsec, pa=0 * u.deg)
        return GaussianPSF(_beam_pixels(beam, pixel), config.image_shape), beam
    enu = read_antenna_file(config.antenna_file).enu if config.antenna_file else builtin_array("ska").enu
    hours = hour_angle_samples(obs["ha_start"], obs["track_hours"], config.integration_time)
    u_m, v_m = uv_tracks(enu, latitude=config.site_latitude, declination=obs["dec"], hour_angles=hours)
    pixel_rad = np.deg2rad(pixel / 3600.0)
    low = obs["frequencies"].min()
    for _ in range(1 if config.antenna_file else 4):
        sampling = UVSampling(u_m, v_m, config.image_shape, pixel_rad, config.weighting, obs["robust"])
        beam = fit_beam(sampling.psf(low), pixel * u.arcsec)
        ratio = np.sqrt(beam.major * beam.minor).to_value(u.arcsec) / config.beam_fwhm
        if abs(ratio - 1.0) < 0.01:
            break
        u_m, v_m = u_m * ratio, v_m * ratio  # longer baselines, proportionally smaller beam
    return sampling, beam


def _draw_disc(config, rng, obs, beam_px, placed):
    """One galaxy's truth parameters and geometry (draws in a fixed order)."""
    (ny, nx), pixel = config.image_shape, config.pixel_scale
    gal = {"hi_size": _uniform(rng, config.hi_size_range), "inclination": _uniform(rng, config.inclination_range),
           "pa_kinematic": _uniform(rng, (0.0, 360.0)), "target_w20": _uniform(rng, config.w20_range),
           "target_snr": _log_uniform(rng, config.snr_range)}
    sin_i = np.sin(np.deg2rad(max(gal["inclination"], 1.0)))
    gal["v_flat"] = min(max(gal["target_w20"] / 2.0 - 1.5 * config.velocity_dispersion, 5.0) / sin_i, 400.0)
    margin = min(np.ceil(gal["hi_size"] / 2.0 / pixel + 1.5 * beam_px[0]) + 2, min(ny, nx) / 2 - 1)
    chan_kms = SPEED_OF_LIGHT_KMS * obs["channel_width"] / obs["frequencies"].mean()
    margin_z = min((gal["v_flat"] * sin_i + 3 * config.velocity_dispersion) / chan_kms, (obs["nchan"] - 1) / 2.0)
    x, y = _uniform(rng, (margin, nx - 1 - margin)), _uniform(rng, (margin, ny - 1 - margin))
    z = _uniform(rng, (margin_z, obs["nchan"] - 1 - margin_z))
    offset = (rng.uniform(0.5, 1.0) * gal["hi_size"] / pixel, rng.uniform(0, 2 * np.pi))
    gal["blended"] = bool(placed and rng.uniform() < config.blend_fraction)
    if gal["blended"]:
        near = placed[int(rng.integers(len(placed)))]
        x = float(np.clip(near["x"] + offset[0] * np.cos(offset[1]), margin, nx - 1 - margin))
        y = float(np.clip(near["y"] + offset[0] * np.sin(offset[1]), margin, ny - 1 - margin))
    gal.update(x=x, y=y, z=z, freq=obs["start_frequency"] + z * obs["channel_width"])
    return gal


def _peak_per_unit(cutout, beam_px):
    """Peak of a unit-total cutout convolved with the peak-1 restoring beam (per channel)."""
    shape = tuple(s + 2 * int(np.ceil(3 * beam_px[0])) for s in cutout.shape[1:])
    kernel = scipy.fft.rfft2(gaussian_kernel(beam_px, shape))
    smooth = scipy.fft.irfft2(scipy.fft.rfft2(cutout, s=shape) * kernel, s=shape)
    return float(smooth.max())


def _add_disc(sky, gal, obs, beam_px, config):
    """Render a galaxy into ``sky`` at its target SNR; fill in its measured parameters."""
    pixel = config.pixel_scale
    disc = HIDisc(gal["x"], gal["y"], gal["freq"], gal["hi_size"] / pixel, gal["inclination"],
                  gal["pa_kinematic"], gal["v_flat"], config.velocity_dispersion)
    z0, y0, x0, cutout = render_disc(disc, obs["frequencies"])
    scale = gal["target_snr"] * obs["noise_rms"] / _peak_per_unit(cutout, beam_px)  # Jy per unit of cutout
    nchan, ny, nx = sky.shape
    zs, ys, xs = (slice(max(o, 0), min(o + s, n)) for o, s, n in zip((z0, y0, x0), cutout.shape, (nchan, ny, nx)))
    part = cutout[zs.start - z0 : zs.stop - z0, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    sky[zs, ys, xs] += scale * part
    dv = channel_width_kms(obs["channel_width"] * u.Hz, gal["freq"] * u.Hz).to_value(u.km / u.s)
    spectrum = cutout.sum(axis=(1, 2))
    gal["line_flux_integral"] = scale * float(part.sum()) * obs["channel_width"]  # Jy Hz
    gal["flux"] = scale * float(part.sum()) * dv  # Jy km/s
    gal["w20"] = profile_width(spectrum, 0.2) * dv
    gal["w50"] = profile_width(spectrum, 0.5) * dv
    gal["fwhm_z"] = profile_width(spectrum, 0.5)
    gal["fwhm_major"], gal["fwhm_minor"] = moment_sizes(cutout.sum(axis=0))
    gal["pa"] = gal["pa_kinematic"] % 180.0
    gal["class"] = morphology_class(gal["fwhm_major"], beam_px)


def _ska_header(config, obs, beam, seed):
    cards = [
        ("OBJECT", "deepfocus_radio SKA-like HI simulation", ""),
        ("DFSEED", seed_card(seed), "simulation seed"),
        ("DFPSF", config.psf_model, "dirty beam model"),
        ("DFNOISE", obs["noise_rms"], "[Jy/beam] noise rms per channel"),
    ]
    header = cube_header(
        shape=(obs["nchan"], *config.image_shape), pixel_scale=config.pixel_scale, ra=obs["ra"], dec=obs["dec"],
        start_frequency=obs["start_frequency"], channel_width=obs["channel_width"],
        rest_frequency=HI_REST_FREQUENCY, beam=beam, telescope="SKA-MID", cards=cards,
    )
    header["SPECSYS"] = "BARYCENT"
    return header


def simulate_ska_cube(config=None, *, seed, workers=None, full_psf=False):
    """Simulate one SKA-MID-like HI cube (SDC2 style).

    Parameters
    ----------
    config : SkaConfig or mapping, optional
        Settings (defaults: ``SkaConfig()``).
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
        Its ``sources`` add ``hi_size`` (arcsec), ``line_flux_integral`` (Jy Hz),
        ``pa_kinematic`` (deg, receding side), ``inclination`` (deg), ``w20``, ``w50``
        (km/s, measured on the rendered profile); ``fwhm_major``/``fwhm_minor`` are the
        FWHM of the Gaussian with the same second moments as the galaxy's moment-0 map,
        ``fwhm_z`` is W50 in channels. :meth:`SimulatedCube.sdc2_catalog` gives the SDC2
        table.

    Raises
    ------
    ConfigError
        For invalid settings (named in the message), e.g. from ``SkaConfig.from_mapping``,
        or an antenna layout that cannot be used.
    """
    config = as_config(config, SkaConfig)
    rng = np.random.default_rng(seed)
    obs = draw_observation(config, rng)
    psf_model, beam = _psf_model(config, obs)
    beam_px = _beam_pixels(beam, config.pixel_scale)
    sky = np.zeros((obs["nchan"], *config.image_shape), dtype=np.float32)
    galaxies, own_sky = [], []
    for _ in range(obs["n_sources"]):
        gal = _draw_disc(config, rng, obs, beam_px, galaxies)
        channels = measure_channels(gal["z"], obs["nchan"])
        before = sky[channels]  # a copy (fancy indexing): the galaxy's own sky is the change
        _add_disc(sky, gal, obs, beam_px, config)
        own_sky.append(sky[channels] - before)
        galaxies.append(gal)
    noise_rms = np.full(obs["nchan"], obs["noise_rms"])
    result = observe(sky, obs["frequencies"], psf_model=psf_model, beam_fwhm_pixels=beam_px, noise_rms=noise_rms,
                     rng=rng, workers=workers, full_psf=full_psf)
    measure_sources(galaxies, own_sky, psf=result.psf, beam_fwhm_pixels=beam_px, noise_rms=noise_rms)
    header = _ska_header(config, obs, beam, seed)
    table = _source_table(galaxies, header, SOURCE_COLUMNS)
    return SimulatedCube(
        dirty=result.dirty_signal + result.noise, clean=result.clean,
        sky=sky, psf=result.psf, beam=beam, header=header,
        noise_rms=noise_rms, sources=table, meta={"observation": obs, "seed": seed, "kind": "ska"},
        psf_full=result.psf_full,
    )


def sdc2_table(sources):
    """SDC2 truth columns (``id ra dec hi_size line_flux_integral central_freq pa i w20``).

    Units: deg, deg, arcsec, Jy Hz, Hz, deg (kinematic, receding side, [0, 360)), deg, km/s.
    """
    table = Table()
    table["id"] = np.arange(1, len(sources) + 1)
    for name, column in (("ra", "ra"), ("dec", "dec"), ("hi_size", "hi_size"),
                         ("line_flux_integral", "line_flux_integral"), ("central_freq", "freq"),
                         ("pa", "pa_kinematic"), ("i", "inclination"), ("w20", "w20")):
        table[name] = np.asarray(sources[column], dtype=float)
    return table
