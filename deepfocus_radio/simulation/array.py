"""Antenna layouts and Earth-rotation uv tracks.

Layouts are CASA antenna configuration files as shipped with CASA's ``simobserve``:
comment lines starting with ``#`` (``# coordsys=LOC`` for the local tangent plane) and rows
``x y z diam pad`` with x east, y north and z up, in metres. Two layouts are built in and
live in ``deepfocus_radio/simulation/data``: a 43 x 12 m ALMA-like array and a 64 x 15 m
SKA-MID-like array (both made by :func:`_generate_layout`, a dense core with spiral arms).
"""

import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

from deepfocus_radio.exceptions import ConfigError

__all__ = [
    "AntennaArray",
    "read_antenna_file",
    "write_antenna_file",
    "builtin_array",
    "baselines",
    "uv_tracks",
    "hour_angle_samples",
    "BUILTIN_LAYOUTS",
]

#: Names of the built-in layouts and their files in the package data.
BUILTIN_LAYOUTS = {"alma": "alma_like_43x12m.cfg", "ska": "ska_mid_like_64x15m.cfg"}

_SIDEREAL_RATE = 1.00273790935  # sidereal hours per solar hour


@dataclass(frozen=True)
class AntennaArray:
    """Antenna positions in the local tangent plane.

    Attributes
    ----------
    enu : ndarray, shape (n_antennas, 3)
        East, north, up positions, m.
    diameter : ndarray, shape (n_antennas,)
        Dish diameters, m.
    pads : tuple of str
        Pad (station) names.
    """

    enu: np.ndarray
    diameter: np.ndarray
    pads: tuple

    @property
    def max_baseline(self):
        """Longest projected-on-ground baseline, m."""
        return float(np.max(np.linalg.norm(baselines(self.enu), axis=1)))

    @property
    def min_separation(self):
        """Smallest antenna separation, m."""
        return float(np.min(np.linalg.norm(baselines(self.enu), axis=1)))

    def scaled(self, max_baseline):
        """Copy with positions scaled so that the longest baseline is ``max_baseline`` m.

        Raises
        ------
        ConfigError
            When the scaled layout would put dishes closer than their diameter.
        """
        factor = max_baseline / self.max_baseline
        result = AntennaArray(self.enu * factor, self.diameter, self.pads)
        if result.min_separation < float(np.max(self.diameter)):
            raise ConfigError(
                f"max_baseline {max_baseline:g} m packs the dishes closer than their "
                f"diameter ({result.min_separation:.1f} m < {np.max(self.diameter):g} m); "
                "increase max_baseline_range"
            )
        return result


def read_antenna_file(path):
    """Read a CASA antenna configuration file (local tangent plane).

    Parameters
    ----------
    path : str or path-like
        File with rows ``x y z diam [pad]`` (m); ``#`` starts a comment.

    Returns
    -------
    AntennaArray

    Raises
    ------
    ConfigError
        When the file cannot be read, uses a coordinate system other than ``LOC``, has a
        malformed row or fewer than two antennas.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"antenna_file: cannot read {os.fspath(path)!r}: {exc}") from None
    positions, diameters, pads = [], [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text.startswith("#"):
            key, _, value = text.lstrip("#").partition("=")
            if key.strip().lower() == "coordsys" and not value.strip().upper().startswith("LOC"):
                raise ConfigError(
                    f"antenna_file {os.fspath(path)!r}: coordsys {value.strip()!r} is not "
                    "supported; give positions in the local tangent plane (coordsys=LOC)"
                )
            continue
        if not text:
            continue
        fields = text.split()
        try:
            x, y, z, diameter = (float(v) for v in fields[:4])
        except ValueError:
            raise ConfigError(
                f"antenna_file {os.fspath(path)!r} line {number}: expected 'x y z diam pad', "
                f"got {text!r}"
            ) from None
        positions.append((x, y, z))
        diameters.append(diameter)
        pads.append(fields[4] if len(fields) > 4 else f"P{len(pads):03d}")
    if len(positions) < 2:
        raise ConfigError(f"antenna_file {os.fspath(path)!r} holds fewer than two antennas")
    return AntennaArray(np.array(positions), np.array(diameters), tuple(pads))


def write_antenna_file(path, array, *, observatory="deepfocus"):
    """Write an :class:`AntennaArray` as a CASA configuration file (``coordsys=LOC``).

    Parameters
    ----------
    path : str or path-like
        Output file.
    array : AntennaArray
        Layout to write.
    observatory : str, optional
        Name written in the ``observatory`` comment.
    """
    rows = [f"# observatory={observatory}", "# coordsys=LOC (local tangent plane)", "# x y z diam pad#"]
    for (x, y, z), diameter, pad in zip(array.enu, array.diameter, array.pads):
        rows.append(f"{x:.3f} {y:.3f} {z:.3f} {diameter:g} {pad}")
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    os.replace(tmp, path)


def builtin_array(name):
    """One of the built-in layouts (see :data:`BUILTIN_LAYOUTS`), unscaled."""
    with resources.as_file(resources.files("deepfocus_radio.simulation") / "data" / BUILTIN_LAYOUTS[name]) as path:
        return read_antenna_file(path)


def _generate_layout(n_antennas, diameter, *, n_arms=3, core_fraction=0.3, seed=0):
    """Core-plus-spiral-arms layout with a longest baseline of about 1 (arbitrary units).

    Used once to make the built-in files. The core holds ``core_fraction`` of the dishes
    in a disc of radius 0.15; the rest lie near logarithmic spiral arms out to radius 0.5,
    denser inwards, so that short and long baselines are both sampled. No two dishes are
    closer than 0.04.
    """
    rng = np.random.default_rng(seed)
    n_core = int(round(core_fraction * n_antennas))
    core_radius, min_sep = 0.15, 0.04
    positions = []
    while len(positions) < n_antennas:
        if len(positions) < n_core:
            radius, angle = core_radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        else:
            radius = core_radius * (0.5 / core_radius) ** rng.uniform() ** 0.8
            arm = rng.integers(n_arms)
            angle = 2 * np.pi * arm / n_arms + 1.5 * np.log(radius / core_radius) + rng.normal(0, 0.06)
        candidate = np.array([radius * np.cos(angle), radius * np.sin(angle)])
        if all(np.hypot(*(candidate - p)) >= min_sep for p in positions):
            positions.append(candidate)
    enu = np.column_stack([np.array(positions), rng.normal(0, 0.001, len(positions))])
    pads = tuple(f"P{k:03d}" for k in range(n_antennas))
    return AntennaArray(enu, np.full(n_antennas, float(diameter)), pads)


def baselines(enu):
    """All antenna-pair separations (i < j), shape (n*(n-1)/2, 3), same unit as ``enu``."""
    first, second = np.triu_indices(len(enu), k=1)
    return enu[second] - enu[first]


def uv_tracks(enu, *, latitude, declination, hour_angles):
    """Baseline coordinates (u, v) from Earth rotation, in metres.

    Parameters
    ----------
    enu : ndarray, shape (n_antennas, 3)
        East, north, up antenna positions, m.
    latitude : float
        Site latitude, deg.
    declination : float
        Phase-centre declination, deg.
    hour_angles : array-like
        Hour angles of the integrations, hours.

    Returns
    -------
    u, v : ndarray, shape (n_times * n_baselines,)
        Baseline coordinates towards east (u) and north (v), m; divide by the wavelength
        to get them in wavelengths. Only one of each (u, v), (-u, -v) pair is returned.
    """
    east, north, up = baselines(np.asarray(enu, dtype=float)).T
    lat = np.deg2rad(latitude)
    # Local tangent plane -> equatorial (X towards H=0 on the equator, Y east, Z pole).
    x_eq = -np.sin(lat) * north + np.cos(lat) * up
    y_eq = east
    z_eq = np.cos(lat) * north + np.sin(lat) * up
    hour = np.deg2rad(15.0 * np.asarray(hour_angles, dtype=float))[:, None]
    dec = np.deg2rad(declination)
    u = np.sin(hour) * x_eq + np.cos(hour) * y_eq
    v = -np.sin(dec) * np.cos(hour) * x_eq + np.sin(dec) * np.sin(hour) * y_eq + np.cos(dec) * z_eq
    return u.ravel(), v.ravel()


def hour_angle_samples(start, duration, integration_time):
    """Hour angles (hours) of the integrations of a track.

    Parameters
    ----------
    start : float
        Hour angle at the start of the track, hours.
    duration : float
        Length of the track (solar time), hours.
    integration_time : float
        Integration time, s.

    Returns
    -------
    ndarray
        Mid-integration hour angles; at least one.
    """
    n_int = max(1, int(round(duration * 3600.0 / integration_time)))
    solar = (np.arange(n_int) + 0.5) * (duration / n_int)
    return start + solar * _SIDEREAL_RATE
