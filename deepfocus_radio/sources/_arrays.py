"""Uniform read access to the cube-like inputs of the source finder.

Detection and characterization read a cube block by block, so a dask array, a zarr
array, a memory map or a spectral-cube ``SpectralCube`` (numpy or dask backed) is never
loaded whole. :class:`CubeReader` hides the differences: ``reader.read(slices)`` returns a
float32 ndarray (NaN where the data are blanked or masked), always 3D (a 2D image is
read as one channel).
"""

import sys

import numpy as np
from astropy import units as u

from deepfocus_radio.exceptions import InputDataError

__all__ = ["CubeReader"]


class CubeReader:
    """Read blocks of a (chan, y, x) cube or a (y, x) image as float32 arrays.

    Parameters
    ----------
    cube : ndarray, dask array, zarr array, `~astropy.units.Quantity` or SpectralCube
        The data, in (chan, y, x) or (y, x) order.
    mask : ndarray of bool, optional
        True where the data must be ignored (photutils convention); same shape as
        ``cube``.

    Attributes
    ----------
    shape : tuple of int
        Shape as a 3D cube; a 2D image has one channel.
    ndim : int
        2 or 3: the dimension of the input.
    unit : `~astropy.units.Unit` or None
        Brightness unit when the input carries one.
    wcs, beam : WCS or None, Beam or None
        Taken from a SpectralCube input.

    Raises
    ------
    InputDataError
        If the input is not 2D or 3D, or the mask shape differs from the data.
    """

    def __init__(self, cube, *, mask=None):
        self.wcs = getattr(cube, "wcs", None) if _is_spectral_cube(cube) else None
        self.beam = _common_beam(cube) if _is_spectral_cube(cube) else None
        self.unit = getattr(cube, "unit", None)
        self._source = cube
        self.ndim = len(cube.shape)
        if self.ndim not in (2, 3):
            raise InputDataError(
                f"the cube has {self.ndim} dimensions (shape {tuple(cube.shape)}); the source "
                "finder needs a (chan, y, x) cube or a (y, x) image: drop degenerate axes first "
                "(deepfocus_radio.open_cube does this for FITS files)"
            )
        self.shape = tuple(cube.shape) if self.ndim == 3 else (1,) + tuple(cube.shape)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != tuple(cube.shape):
                raise InputDataError(
                    f"mask has shape {mask.shape} but the cube has shape {tuple(cube.shape)}; "
                    "pass a boolean mask of the same shape (True = ignore)"
                )
            mask = mask.reshape(self.shape)
        self._mask = mask

    def read(self, slices):
        """Read a block.

        Parameters
        ----------
        slices : tuple of slice
            Three slices (chan, y, x) with explicit, non-negative bounds.

        Returns
        -------
        ndarray of float32
            The block, NaN where blanked or masked.
        """
        source_slices = slices if self.ndim == 3 else slices[1:]
        if _is_spectral_cube(self._source):
            block = self._source.filled_data[source_slices]
        else:
            block = self._source[source_slices]
        if isinstance(block, u.Quantity):
            block = block.value
        block = np.array(block, dtype=np.float32).reshape(_block_shape(slices))
        if self._mask is not None:
            block[self._mask[slices]] = np.nan
        return block

    def read_all(self):
        """The whole cube as a float32 array (for small inputs and cutout-free paths)."""
        return self.read(tuple(slice(0, n) for n in self.shape))


def _block_shape(slices):
    return tuple(s.stop - s.start for s in slices)


def _is_spectral_cube(obj):
    if "spectral_cube" not in sys.modules:  # cannot be one; avoid the slow import
        return False
    from spectral_cube.base_class import BaseNDClass

    return isinstance(obj, BaseNDClass) and hasattr(obj, "filled_data")


def _common_beam(cube):
    beam = getattr(cube, "beam", None)
    if beam is not None:
        return beam
    beams = getattr(cube, "beams", None)
    if beams is not None:
        return beams.common_beam()
    return None
