"""Small hand-made data sets in the DESIGN.md layout, written with astropy."""

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy import ndimage

SHAPE = (16, 32, 32)


def cube_header(shape):
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ"]
    wcs.wcs.cunit = ["deg", "deg", "Hz"]
    wcs.wcs.crpix = [shape[2] / 2 + 1, shape[1] / 2 + 1, 1]
    wcs.wcs.crval = [150.0, 2.0, 230.0e9]
    wcs.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600, 1.0e6]
    wcs.wcs.specsys = "LSRK"
    header = wcs.to_header()
    header["BMAJ"] = 0.3 / 3600
    header["BMIN"] = 0.25 / 3600
    header["BPA"] = 20.0
    header["BUNIT"] = "Jy/beam"
    return header


def _write(path, data, header):
    fits.PrimaryHDU(data=data.astype(np.float32), header=header).writeto(path)


def make_split(folder, prefix, ids, *, rng, shape=SHAPE, noise=0.01, tclean=False, n_sources=2,
               columns=("flux", "peak", "fwhm_major", "fwhm_minor", "pa", "fwhm_z", "snr",
                        "class")):
    """Write dirty/clean cubes with Gaussian sources and a params CSV; return the rows."""
    folder.mkdir(parents=True)
    header = cube_header(shape)
    rows = []
    for cube_id in ids:
        sky = np.zeros(shape)
        for k in range(n_sources):
            z, y, x = (int(rng.integers(4, n - 4)) for n in shape)
            flux = float(rng.uniform(0.05, 0.4) if k % 2 == 0 else rng.uniform(0.6, 1.0))
            width = float(rng.uniform(1.0, 2.5))
            sky[z, y, x] = flux
            rows.append(dict(ID=cube_id, x=x, y=y, z=z, flux=flux, peak=flux / 2,
                             fwhm_major=width, fwhm_minor=0.7 * width, pa=30.0, fwhm_z=2.0,
                             snr=flux / noise, **{"class": "bright" if flux > 0.5 else "faint"}))
        clean = ndimage.gaussian_filter(sky, (1.0, 1.5, 1.5)) * 30
        dirty = ndimage.gaussian_filter(sky, (1.0, 3.0, 3.0)) * 30
        dirty += rng.normal(0, noise, shape)
        _write(folder / f"dirty_cube_{cube_id}.fits", dirty, header)
        _write(folder / f"clean_cube_{cube_id}.fits", clean, header)
        if tclean:
            _write(folder / f"tclean_cube_{cube_id}.fits", 0.8 * clean, header)
    table = Table(rows=rows)
    keep = ["ID", "x", "y", "z", *columns]
    table[keep].write(folder / f"{prefix}_params.csv", format="ascii.csv")
    return table




def deconvolver_config(root, out, **sections):
    """A tiny 3D U-Net deconvolver configuration (nested mapping)."""
    config = {
        "model": {"dmode": "deconvolver", "arch": "unet", "spatial_dims": 3,
                  "block_sizes": [4, 8], "depths": [1, 1]},
        "data": {"root": str(root), "crop_size": [8, 16, 16], "samples_per_cube": 2},
        "optim": {"lr": 3e-3},
        "train": {"epochs": 2, "batch_size": 3, "progress": False},
        "output": {"dir": str(out)},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config
