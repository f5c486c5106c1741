"""Reading and writing cubes: FITS (incl. CASA 4D), CASA images and chunked zarr stores.

- :func:`fits_to_zarr` streams a FITS cube or CASA image into a compressed zarr v3 store;
- :func:`open_cube` opens FITS, CASA or zarr as a SpectralCube (dask-backed for zarr);
- :func:`write_fits` writes a cube or array to FITS atomically;
- :func:`cube_to_zarr` writes any SpectralCube to a zarr store.
"""

from deepfocus_radio.io.cube import detect_format, fits_to_zarr, open_cube
from deepfocus_radio.io.fits import FitsImage, read_fits, write_fits
from deepfocus_radio.io.zarr_store import (
    VARIABLE,
    StoreInfo,
    cube_to_zarr,
    is_cube_store,
    open_zarr_cube,
    read_store,
)

__all__ = [
    "fits_to_zarr",
    "open_cube",
    "write_fits",
    "cube_to_zarr",
    "detect_format",
    "read_fits",
    "FitsImage",
    "read_store",
    "open_zarr_cube",
    "is_cube_store",
    "StoreInfo",
    "VARIABLE",
]
