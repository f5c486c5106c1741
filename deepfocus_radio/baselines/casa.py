"""CLEAN baseline through CASA's image-domain ``deconvolve`` task (optional).

CASA (``casatasks`` + ``casadata`` from PyPI, the ``bench`` extra) runs in a separate
process: casatools reads its configuration at import, and we point it at the measures
data shipped in ``casadata`` through ``CASASITECONFIG`` instead of touching the user's
``~/.casa``. Without CASA, :func:`deepfocus_radio.baselines.hogbom_clean` is the baseline.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from scipy.signal import fftconvolve

from deepfocus_radio._atomic import atomic_write
from deepfocus_radio.baselines.clean import restoring_kernel
from deepfocus_radio.exceptions import DeepFocusError, InputDataError

__all__ = ["casa_available", "casa_clean", "align_psf_for_casa", "run_casa"]

_SITE_CONFIG = """\
import os, casadata
measurespath = os.path.join(os.path.dirname(casadata.__file__), "__data__")
measures_auto_update = False
data_auto_update = False
"""

_SCRIPT = """\
import json, sys
from casatasks import importfits, deconvolve, exportfits
opts = json.loads(sys.argv[1])
axes = ["", "", "", "I"]
importfits(fitsimage=opts["dirty"], imagename=opts["prefix"] + ".residual",
           defaultaxes=True, defaultaxesvalues=axes, overwrite=True)
importfits(fitsimage=opts["psf"], imagename=opts["prefix"] + ".psf",
           defaultaxes=True, defaultaxesvalues=axes, overwrite=True)
deconvolve(imagename=opts["prefix"], deconvolver="hogbom", niter=opts["niter"],
           threshold=opts["threshold"], gain=opts["gain"], restoration=False)
for kind in ("model", "residual"):
    exportfits(imagename=opts["prefix"] + "." + kind, fitsimage=opts[kind], overwrite=True)
"""


def run_casa(script, opts, workdir, *, expect=(), what="task"):
    """Run a CASA script in a subprocess, with CASA's data from ``casadata``.

    Parameters
    ----------
    script : str
        Python source; it reads its options as JSON from ``sys.argv[1]``.
    opts : dict
        JSON-serializable options.
    workdir : str or os.PathLike
        Working folder (also CASA's ``HOME``, so its logs stay there).
    expect : sequence of os.PathLike, optional
        Files the script must have written.
    what : str, optional
        What the script does, for the error message.

    Raises
    ------
    DeepFocusError
        If the script fails or an expected file is missing (with the end of CASA's log).
    """
    work = Path(workdir)
    (work / "casasiteconfig.py").write_text(_SITE_CONFIG)
    env = dict(os.environ, CASASITECONFIG=str(work / "casasiteconfig.py"), HOME=str(work))
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(opts)], cwd=work, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not all(Path(path).exists() for path in expect):
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise DeepFocusError(f"CASA {what} failed (exit {proc.returncode}):\n{tail}")


def casa_available():
    """Whether ``casatasks`` and ``casadata`` are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("casatasks", "casadata"))


def _casa_psf_centre(n):
    # Where CASA's minor cycle expects the PSF peak along an axis of n pixels (0-based),
    # measured with casatasks 6.7: n // 2 for odd n, n // 2 + 1 for even n (the test
    # tests/baselines/test_casa.py checks both).
    return n // 2 if n % 2 else n // 2 + 1


def align_psf_for_casa(psf, shape):
    """Place a (chan, py, px) PSF, peak at its centre pixel, on a grid CASA expects.

    Parameters
    ----------
    psf : ndarray, shape (nchan, py, px)
        Dirty beam with its peak at ``(py // 2, px // 2)``.
    shape : tuple of int
        (nchan, ny, nx) of the dirty cube.

    Returns
    -------
    ndarray, shape ``shape``
        The PSF cropped or zero-padded so its peak sits where CASA looks for it.
    """
    nchan, ny, nx = shape
    out = np.zeros(shape, dtype=np.float32)
    _, py, px = psf.shape
    dy, dx = _casa_psf_centre(ny) - py // 2, _casa_psf_centre(nx) - px // 2
    ys, xs = slice(max(0, dy), min(ny, py + dy)), slice(max(0, dx), min(nx, px + dx))
    out[:, ys, xs] = psf[:, ys.start - dy : ys.stop - dy, xs.start - dx : xs.stop - dx]
    return out


def casa_clean(dirty, psf, header, out_fits, *, threshold, restoring_beam, niter=100000, gain=0.1):
    """Hogbom-CLEAN a dirty cube with CASA's ``deconvolve`` task.

    Parameters
    ----------
    dirty : ndarray, shape (nchan, ny, nx)
        Dirty cube, Jy/beam.
    psf : ndarray, shape (nchan, py, px)
        Dirty beam, peak 1 at its centre pixel ``(py // 2, px // 2)``.
    header : `~astropy.io.fits.Header`
        3D header of the dirty cube (WCS, BUNIT).
    out_fits : str or path-like
        Restored cube to write (Jy/beam); must not exist.
    threshold : `~astropy.units.Quantity`
        Stopping threshold (flux density per beam).
    restoring_beam : `radio_beam.Beam`
        Common restoring beam.
    niter, gain : optional
        CLEAN iterations and loop gain.

    Returns
    -------
    pathlib.Path
        ``out_fits``.

    Raises
    ------
    DeepFocusError
        If CASA is not installed or the task fails (CASA's log tail is included).
    InputDataError
        If ``out_fits`` exists.
    """
    if not casa_available():
        raise DeepFocusError(
            "CASA is not installed: pip install casatasks casadata (the 'bench' extra), "
            "or use deepfocus_radio.baselines.hogbom_clean."
        )
    out_fits = Path(out_fits)
    if out_fits.exists():
        raise InputDataError(f"{out_fits} exists; choose another output path.")
    with tempfile.TemporaryDirectory(prefix="deepfocus-casa-") as workdir:
        work = Path(workdir)
        dirty = np.asarray(dirty, dtype=np.float32)
        fits.writeto(work / "dirty.fits", np.nan_to_num(dirty), header)
        fits.writeto(work / "psf.fits", align_psf_for_casa(np.asarray(psf), dirty.shape), header)
        opts = {
            "dirty": str(work / "dirty.fits"),
            "psf": str(work / "psf.fits"),
            "prefix": str(work / "cube"),
            "model": str(work / "model.fits"),
            "residual": str(work / "residual.fits"),
            "niter": int(niter),
            "gain": float(gain),
            "threshold": f"{threshold.to_value('Jy / beam')}Jy",
        }
        run_casa(_SCRIPT, opts, work, expect=[work / "model.fits"], what="deconvolve")
        model = fits.getdata(work / "model.fits").reshape(dirty.shape)
        residual = fits.getdata(work / "residual.fits").reshape(dirty.shape)
    # Restore ourselves with the peak-1 common beam: the same convention as hogbom_clean.
    kernel = restoring_kernel(restoring_beam, abs(header["CDELT2"]) * u.deg)
    restored = np.stack([fftconvolve(m, kernel, mode="same") for m in model]) + residual
    restored[np.isnan(dirty)] = np.nan
    out_header = header.copy()
    out_header.update(restoring_beam.to_header_keywords())
    atomic_write(out_fits, lambda tmp: fits.writeto(tmp, restored.astype(np.float32), out_header))
    return out_fits
