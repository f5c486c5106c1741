"""Flips and 90-degree rotations applied consistently to arrays and source parameters.

Arrays are in (chan, y, x) or (y, x) order. A transform is drawn once per sample and
applied to the network input, its target and the source parameters, so a rotated cube
keeps the right position angle and position:

* a flip of x or of y maps a position angle east of north ``pa`` to ``180 - pa``;
* a rotation by 90 degrees adds 90 degrees to ``pa`` (modulo 180; both directions agree
  modulo 180);
* positions ``x``, ``y`` (pixels, 0-based, in the array being transformed) move with the
  pixels.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Transform", "draw_transform", "transform_array", "transform_parameters"]


@dataclass(frozen=True)
class Transform:
    """One random flip/rotation.

    Attributes
    ----------
    flip_x, flip_y, flip_z : bool
        Reverse the x, y or channel axis (applied first, in that order).
    rot90 : int
        Number of quarter turns ``np.rot90(..., axes=(-2, -1))`` applied after the flips.
    """

    flip_x: bool = False
    flip_y: bool = False
    flip_z: bool = False
    rot90: int = 0

    @property
    def is_identity(self):
        """True when the transform changes nothing."""
        return not (self.flip_x or self.flip_y or self.flip_z or self.rot90 % 4)


def draw_transform(rng, *, flips=True, rotations=True, flip_spectral=False):
    """Draw a random transform.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Source of randomness (seeded by the caller).
    flips : bool, optional
        Allow flips of x and y.
    rotations : bool, optional
        Allow 90-degree rotations (k in 0..3). Rotations swap the y and x sizes, so
        use them only with square images.
    flip_spectral : bool, optional
        Allow reversing the channel axis.

    Returns
    -------
    Transform
    """
    draws = rng.integers(0, 2, size=3)
    k = int(rng.integers(0, 4))
    return Transform(
        flip_x=bool(draws[0]) and flips,
        flip_y=bool(draws[1]) and flips,
        flip_z=bool(draws[2]) and flip_spectral,
        rot90=k if rotations else 0,
    )


def transform_array(array, transform):
    """Apply a transform to an array whose last two axes are (y, x).

    Parameters
    ----------
    array : ndarray, shape (..., y, x)
        Image or cube; a channel flip acts on axis -3 (ignored for 2D arrays).
    transform : Transform

    Returns
    -------
    ndarray
        Transformed contiguous copy.
    """
    out = array
    if transform.flip_x:
        out = out[..., ::-1]
    if transform.flip_y:
        out = out[..., ::-1, :]
    if transform.flip_z and out.ndim >= 3:
        out = out[..., ::-1, :, :]
    if transform.rot90 % 4:
        out = np.rot90(out, k=transform.rot90, axes=(-2, -1))
    return np.ascontiguousarray(out)


def transform_parameters(params, transform, shape):
    """Apply a transform to source parameters measured in an array of a given shape.

    Parameters
    ----------
    params : dict of str to float
        Any of ``x``, ``y``, ``z`` (pixels, 0-based, in the array) and ``pa`` (deg, east
        of north); other entries are returned unchanged (sizes, fluxes...).
    transform : Transform
    shape : tuple of int
        Shape of the array the positions refer to, ending with (ny, nx); a third-last
        entry is the number of channels (used by a channel flip).

    Returns
    -------
    dict of str to float
        New parameters; ``pa`` stays in [0, 180).
    """
    out = dict(params)
    ny, nx = shape[-2], shape[-1]
    if transform.flip_x:
        _move(out, "x", lambda x: nx - 1 - x)
        _move(out, "pa", lambda pa: 180.0 - pa)
    if transform.flip_y:
        _move(out, "y", lambda y: ny - 1 - y)
        _move(out, "pa", lambda pa: 180.0 - pa)
    if transform.flip_z and len(shape) >= 3:
        _move(out, "z", lambda z: shape[-3] - 1 - z)
    for _ in range(transform.rot90 % 4):
        # np.rot90 with axes (y, x): the pixel (y, x) moves to (nx - 1 - x, y).
        x, y = out.get("x"), out.get("y")
        if x is not None:
            out["y"] = nx - 1 - x
        if y is not None:
            out["x"] = y
        ny, nx = nx, ny
        _move(out, "pa", lambda pa: pa + 90.0)
    if "pa" in out and out["pa"] is not None:
        out["pa"] = float(np.mod(out["pa"], 180.0))
    return out


def _move(params, key, function):
    if params.get(key) is not None:
        params[key] = function(params[key])
