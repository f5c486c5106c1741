"""The ``cube.deepfocus`` accessor on spectral-cube's cubes.

spectral-cube has no plugin mechanism, so :func:`register` sets a descriptor on
``BaseSpectralCube`` the way pandas and xarray register accessors: ``cube.deepfocus``
builds a :class:`DeepFocusAccessor` around the cube on each access (nothing is stored in
the cube, and its ``_cache`` is left alone).
"""

import inspect
import warnings

from deepfocus_radio.exceptions import DeepFocusWarning

__all__ = ["ACCESSOR_NAME", "DeepFocusAccessor", "register"]

#: Attribute name of the accessor on cubes.
ACCESSOR_NAME = "deepfocus"


class DeepFocusAccessor:
    """deepfocus_radio operations on a SpectralCube: ``cube.deepfocus.<method>``.

    Parameters
    ----------
    cube : `~spectral_cube.SpectralCube`
        Any spectral-cube cube (including ``DaskSpectralCube`` and
        ``VaryingResolutionSpectralCube``).
    """

    def __init__(self, cube):
        self._cube = cube

    def deconvolve(self, model="alma", *, tile=None, halo=None, batch_size=None, blend=None,
                   device=None, **options):
        """Deconvolve this dirty cube; see :func:`deepfocus_radio.deconvolve`.

        Returns
        -------
        `~spectral_cube.SpectralCube`
            Clean cube, Jy/beam, same WCS and shape, the input's common beam; lazy for a
            dask-backed cube.
        """
        from deepfocus_radio.inference import deconvolve

        return deconvolve(self._cube, model, tile=tile, halo=halo, batch_size=batch_size,
                          blend=blend, device=device, **options)

    def find_sources(self, model="alma", **options):
        """Deconvolve, detect and characterize sources; see ``deepfocus_radio.find_sources``.

        Returns
        -------
        `~astropy.table.QTable`
            The source catalogue (columns in DESIGN.md).
        """
        from deepfocus_radio.sources import find_sources

        return find_sources(self._cube, model=model, **options)

    def to_zarr(self, path, *, chunks=None, overwrite=False, progress=True):
        """Write this cube to a zarr store; see :func:`deepfocus_radio.io.cube_to_zarr`.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        from deepfocus_radio.io import cube_to_zarr

        return cube_to_zarr(self._cube, path, chunks=chunks, overwrite=overwrite,
                            progress=progress)


class _CachedAccessor:
    """Descriptor building the accessor from the cube on attribute access (as pandas does)."""

    def __init__(self, name, accessor):
        self._name = name
        self._accessor = accessor

    def __get__(self, obj, cls):
        if obj is None:
            return self._accessor
        return self._accessor(obj)


def register():
    """Set ``deepfocus`` on ``BaseSpectralCube`` (warns if another attribute has the name).

    Returns
    -------
    bool
        True when the accessor was registered.
    """
    try:
        from spectral_cube.spectral_cube import BaseSpectralCube
    except ImportError:  # pragma: no cover - spectral-cube is a hard dependency
        return False
    existing = inspect.getattr_static(BaseSpectralCube, ACCESSOR_NAME, None)
    if existing is not None and not isinstance(existing, _CachedAccessor):
        warnings.warn(
            f"registration of accessor {DeepFocusAccessor!r} under name {ACCESSOR_NAME!r} for "
            f"type {BaseSpectralCube!r} is overriding a preexisting attribute with the same name",
            DeepFocusWarning, stacklevel=2)
    setattr(BaseSpectralCube, ACCESSOR_NAME, _CachedAccessor(ACCESSOR_NAME, DeepFocusAccessor))
    return True
