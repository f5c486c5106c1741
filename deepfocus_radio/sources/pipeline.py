"""``find_sources``: from a dirty cube to a catalogue.

Stages: robust per-channel noise of the dirty cube -> deconvolution by a network (kept in
memory, or in a temporary zarr store when it would not fit, so that it is computed once)
-> continuum subtraction -> detection with thresholds in dirty-cube noise -> characterization
-> optional refinement by PSF-convolved fits to the dirty cube
(:mod:`deepfocus_radio.sources.psf_fit`) -> optional primary-beam correction.
``table.meta`` records the model, the sha256 of its weights and the settings that shaped
the catalogue.
"""

import contextlib
import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from deepfocus_radio.conventions import is_hi_cube
from deepfocus_radio.exceptions import ConfigError, InputDataError, NoSourcesFoundWarning
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.sources._arrays import CubeReader
from deepfocus_radio.sources.characterize import characterize_sources
from deepfocus_radio.sources.continuum import MIN_CHANNELS, ContinuumSubtracted
from deepfocus_radio.sources.detection import detect_sources

#: A deconvolved cube's own noise (MAD) can be near 0 (the network's output is nearly
#: noiseless), but its artefacts still make false saddles: for deblending it counts as at
#: least this fraction of the dirty noise, so that at the default prominence (3) a split
#: stands 1 dirty-cube rms above its saddle. Chosen on 40 calibration cubes (seeds 9090, not
#: the test set): the network's purity at 4 sigma stayed 0.93 and the completeness of
#: separable sources at SNR >= 5 rose from 0.944 to 0.960 (0.928 with the old contrast 0.75).
DENOISED_NOISE_FLOOR = 1.0 / 3.0

__all__ = ["find_sources", "open_dirty"]


class _PlaneView:
    """Array-like view of a CubeReader for :func:`channel_noise` (strided plane reads)."""

    def __init__(self, reader):
        self.reader = reader
        self.shape = reader.shape

    def __getitem__(self, key):
        channels, ys, xs = key
        block = self.reader.read((channels, slice(0, self.shape[1]), slice(0, self.shape[2])))
        return block[:, ys, xs]


@contextlib.contextmanager
def open_dirty(cube):
    """The dirty input as a single-beam SpectralCube, or an image with its WCS and beam.

    A context manager: FITS files are memory-mapped and closed on exit.

    Parameters
    ----------
    cube : SpectralCube, str or path-like
        A cube (one beam per channel is convolved to the common beam), or a FITS / CASA /
        zarr path; a 2D FITS image is accepted too.

    Yields
    ------
    tuple
        ``(data, wcs, beam)``: ``data`` is a SpectralCube (3D) or a Quantity image (2D).

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    InputDataError
        If the input has no beam.
    """
    from deepfocus_radio.io import detect_format, open_cube, read_fits
    from deepfocus_radio.io.cube import _fits_cube
    from deepfocus_radio.io.zarr_store import to_common_beam

    if not isinstance(cube, (str, Path)):
        cube = to_common_beam(cube)
        yield _checked(cube, cube.wcs, getattr(cube, "beam", None))
        return
    path = Path(cube)
    if not path.exists():
        raise FileNotFoundError(f"input cube {path} does not exist")
    if detect_format(path) != "fits":
        cube = to_common_beam(open_cube(path))
        yield _checked(cube, cube.wcs, getattr(cube, "beam", None))
        return
    with read_fits(path) as image:
        if len(image.shape) == 2:
            unit = image.unit or u.Jy / u.beam
            yield _checked(np.asarray(image.read()) * unit, image.wcs, image.beam)
        elif image.beams is not None:
            cube = to_common_beam(open_cube(path, use_dask=False))
            yield _checked(cube, cube.wcs, cube.beam)
        else:
            yield _checked(_fits_cube(image, False), image.wcs, image.beam)


def _checked(data, wcs, beam):
    if beam is None:
        raise InputDataError(
            "the input has no beam (BMAJ/BMIN/BPA in the header); the catalogue needs it for "
            "fluxes and sizes: add it (e.g. cube.with_beam(radio_beam.Beam(...)))"
        )
    return data, wcs, beam


def find_sources(cube, model="alma", *, threshold=4.0, tile=None, halo=None, batch_size=None,
                 device=None, pb=None, psf=None, psf_min_snr=None, dirty_candidates=None,
                 subtract_continuum=True, deconvolved=None, return_deconvolved=False,
                 deblend="auto", progress=True, **detect_options):
    """Find and characterize the sources of a dirty cube.

    Noise of the dirty cube (robust, per channel) -> ``deconvolve(cube, model)`` ->
    continuum subtraction -> :func:`detect_sources` (thresholds in dirty-cube noise) ->
    :func:`characterize_sources`.

    Parameters
    ----------
    cube : SpectralCube, str or path-like
        The dirty cube (Jy/beam), or a FITS / CASA image / zarr path. A 2D FITS image
        is searched directly (``model=None`` only).
    model : str, path-like, torch.nn.Module or None, optional
        Deconvolution network (shipped name, file or module). None: search the dirty cube
        itself (the no-deconvolution baseline).
    threshold : float, optional
        Detection threshold in dirty-cube noise rms.
    tile, halo, batch_size, device : optional
        Tiled-inference settings, passed to :func:`deepfocus_radio.deconvolve`.
    pb : str, path-like, ndarray or SpectralCube, optional
        Primary-beam response, (chan, y, x) or (y, x), peak 1 (e.g. CASA's ``.pb``):
        ``peak``, ``flux`` and their errors are divided by the response at each source's
        centroid pixel; the SNR is unchanged. ``meta['pb_corrected']`` records it.
    psf : str, path-like, ndarray or SpectralCube, optional
        The cube's PSF (dirty beam), (chan, y, x) or (y, x), peak 1: CASA's ``.psf`` or a
        FITS file. Fluxes, centres, sizes and PAs are then refit on the dirty cube with
        PSF-convolved models (:func:`~deepfocus_radio.sources.psf_fit.refine_with_psf`),
        which removes most of the deconvolver's flux and shape errors; the deconvolved
        cube still finds the sources and gives their lines. ``meta['psf_refined']``
        counts the refined rows; the ``psf_snr`` column holds each fit's significance.
        Best over twice the image: the dirty cube holds every source's sidelobes out to
        the image's size, an image-sized ``.psf`` only out to half of it, and a bright
        source's sidelobes beyond that stay in the dirty cube (spurious detections with
        a high ``psf_snr``, biased fluxes nearby). With CASA, image the field twice as
        large (``niter=0``) and search its central part with that image's ``.psf``
        (under Briggs or uniform weighting a ``.psf`` made alone at another size is not
        this cube's PSF: the weights depend on the image's size).
    psf_min_snr : float, optional
        With ``psf``: drop the sources whose ``psf_snr`` is below this (artefacts of the
        deconvolution and PSF sidelobes have no flux of their own in the dirty cube).
    dirty_candidates : float, optional
        With ``psf``: after the PSF fits, search their residual (the dirty cube minus
        every fitted source convolved with the PSF,
        :func:`~deepfocus_radio.sources.residual.residual_cube`) at ``threshold``, and add
        the detections that the catalogue does not hold (none of its sources within a beam
        and a line width) when their ``psf_snr`` reaches ``dirty_candidates``; the fits are
        then made again with them. A network can lose faint sources that the dirty cube
        still shows, and a faint source a beam or two from a bright one is part of the
        bright one's island in any search of the cube; in the residual it stands alone.
        ``meta['dirty_candidates_added']`` counts them; their ``peak`` and ``snr`` are
        measured in the residual (the fits give the rest). Also with ``model=None``.
    subtract_continuum : bool, optional
        Subtract each pixel's median over channels from the searched cube before detection
        and measurement (:mod:`deepfocus_radio.sources.continuum`), so that ``flux`` is a
        line flux. Skipped for images and cubes of fewer than 8 channels.
        ``meta['continuum_subtracted']`` records it.
    deconvolved : SpectralCube or ndarray, optional
        A deconvolution of ``cube`` already made (by :func:`deepfocus_radio.deconvolve`,
        CLEAN...), Jy/beam, same shape: searched instead of running ``model``; the noise
        still comes from the dirty ``cube``.
    return_deconvolved : bool, optional
        Also return the searched (deconvolved) cube, before continuum subtraction.
    deblend : {"auto", True, False}, optional
        Split touching sources (:func:`detect_sources`). ``"auto"``: yes, except in HI
        21 cm cubes (:func:`~deepfocus_radio.conventions.is_hi_cube`), where it would split
        a rotating disc at its double-horned line: on simulated SKA cubes, 2.3 detections
        per galaxy in the noiseless cube and 3.4 in the dirty cube, against 0.9 and 1.7
        without deblending. SoFiA, the HI finder, does not deblend either.
        ``meta['deblended']`` records the choice. With ``psf``, deblending also tests
        each bright detection for a second source merged into it, by two-component fits
        to the dirty cube (:mod:`~deepfocus_radio.sources.psf_split`): the ``psf_split``
        column marks the pairs, ``meta['psf_split']`` counts the sources added.
    progress : bool, optional
        Progress bars.
    **detect_options
        Further options of :func:`detect_sources` (``kernels_xy``, ``min_pixels``...).

    Returns
    -------
    `~astropy.table.QTable`
        The catalogue; ``meta`` records the model and the sha256 of its weights.
        With ``return_deconvolved``, a tuple ``(catalogue, searched cube)``.

    Raises
    ------
    InputDataError
        For an input without beam, a primary beam or a ``deconvolved`` cube of another
        shape.
    ConfigError
        For a 2D image with a model.
    """
    if (psf_min_snr is not None or dirty_candidates is not None) and psf is None:
        raise ConfigError("psf_min_snr and dirty_candidates need psf= (the significance comes "
                          "from the PSF fits)")
    if deblend not in ("auto", True, False):
        raise ConfigError(f"deblend={deblend!r}: use 'auto', True or False")
    with open_dirty(cube) as (data, wcs, beam):
        if deblend == "auto":
            deblend = not is_hi_cube(wcs, data.shape[0]) if len(data.shape) == 3 else True
        detect_options = {**detect_options, "deblend": deblend}
        table, searched = _pipeline(
            data, wcs, beam, model, threshold=threshold, pb=pb, progress=progress,
            inference=dict(tile=tile, halo=halo, batch_size=batch_size, device=device),
            detect_options=detect_options, subtract_continuum=subtract_continuum,
            deconvolved=deconvolved, psf=psf, psf_min_snr=psf_min_snr,
            dirty_candidates=dirty_candidates)
    table.meta["deblended"] = bool(deblend)  # "auto" decides by the cube: say what it chose
    return (table, searched) if return_deconvolved else table


def _scratch_store(shape, stack, name):
    """None when a float32 cube of ``shape`` fits in a quarter of the available memory;
    else a zarr store path in a temporary folder that ``stack`` removes."""
    import psutil

    if 4 * int(np.prod(shape)) <= psutil.virtual_memory().available // 4:
        return None
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deepfocus-"))) / name


def _deconvolved(data, model, stack, *, progress, **inference):
    """Deconvolve once and keep the result readable block by block without recomputing it:
    in memory when it fits in a quarter of the available memory, else in a zarr store."""
    from deepfocus_radio.inference import deconvolve

    store = _scratch_store(data.shape, stack, "clean.zarr")
    if store is not None:
        return deconvolve(data, model, progress=progress, out=store, **inference)
    searched = deconvolve(data, model, progress=progress, **inference)
    values = searched._get_filled_data(fill=np.nan)
    if isinstance(values, np.ndarray):
        return searched
    from spectral_cube import SpectralCube

    return SpectralCube(np.asarray(values.compute()), searched.wcs, header=searched.header,
                        meta=searched.meta, beam=searched.beam)


def _pipeline(data, wcs, beam, model, *, threshold, pb, progress, inference, detect_options,
              subtract_continuum, deconvolved, psf=None, psf_min_snr=None,
              dirty_candidates=None):
    with contextlib.ExitStack() as stack:
        psf_reader = None
        if psf is not None:  # checked before the long work
            psf_reader = _open_psf(psf, stack, CubeReader(data))
        return _run_stages(data, wcs, beam, model, stack, threshold=threshold, pb=pb,
                           progress=progress, inference=inference,
                           detect_options=detect_options, contsub=subtract_continuum,
                           deconvolved=deconvolved, psf=psf_reader, psf_min_snr=psf_min_snr,
                           dirty_candidates=dirty_candidates)


def _given_deconvolution(deconvolved, shape):
    reader = CubeReader(deconvolved)
    if tuple(reader.shape) != tuple(shape):
        raise InputDataError(f"the deconvolved cube has shape {tuple(reader.shape)} but the dirty "
                             f"cube {tuple(shape)}: pass a deconvolution of this dirty cube")
    header = getattr(deconvolved, "header", {})
    return {"model": str(header.get("DFMODEL", "given deconvolved cube")),
            "model_sha256": str(header.get("DFSHA256", ""))}


def _run_stages(data, wcs, beam, model, stack, *, threshold, pb, progress, inference,
                detect_options, contsub, deconvolved, psf=None, psf_min_snr=None,
                dirty_candidates=None, dirty_noise=None):
    dirty_reader = CubeReader(data)
    if dirty_noise is None:  # one pass over the cube; the dirty-candidate search reuses it
        dirty_noise = channel_noise(_PlaneView(dirty_reader))
    noise = dirty_noise
    searched_noise = None
    if model is not None:  # loaded once: for the deconvolution and for its card
        from deepfocus_radio.models import load_model

        model = load_model(model)
    flux_fraction = _flux_fractional_error(model)
    if deconvolved is not None:
        searched, provenance = deconvolved, _given_deconvolution(deconvolved, dirty_reader.shape)
        searched_noise = channel_noise(_PlaneView(CubeReader(searched)))
    elif model is None:
        searched, provenance = data, {"model": "none (dirty cube searched)"}
    elif dirty_reader.ndim == 2:
        raise ConfigError("a 2D image can only be searched with model=None (no deconvolution)")
    else:
        # the dirty noise, in Jy/beam, is measured once: deconvolve normalizes by it too
        searched = _deconvolved(data, model, stack, progress=progress,
                                noise=noise * _unit_to_jy_beam(dirty_reader), **inference)
        provenance = {"model": str(searched.header.get("DFMODEL", model)),
                      "model_sha256": str(searched.header.get("DFSHA256", ""))}
        searched_noise = channel_noise(_PlaneView(CubeReader(searched)))
    # noise in the searched cube's unit (the network returns Jy/beam)
    noise = noise * _unit_to_jy_beam(dirty_reader) / _unit_to_jy_beam(CubeReader(searched))
    contsub = contsub and dirty_reader.ndim == 3 and dirty_reader.shape[0] >= MIN_CHANNELS
    provenance["continuum_subtracted"] = bool(contsub)
    unsubtracted = searched
    if contsub:
        beam_pix = _beam_pixels(beam, wcs)
        searched = ContinuumSubtracted(searched, grow=beam_pix,
                                       min_pixels=max(1, int(np.pi / 16 * beam_pix**2)))
    deblend_noise = None  # the dirty noise, for a dirty cube
    if searched_noise is not None:  # a deconvolved cube: its own noise makes false saddles
        deblend_noise = np.fmax(np.asarray(searched_noise, dtype=float),
                                DENOISED_NOISE_FLOOR * np.asarray(noise, dtype=float))
    detections = detect_sources(searched, noise=noise, noise_cube=data, wcs=wcs, beam=beam,
                                threshold=threshold, progress=progress,
                                **{"deblend_noise": deblend_noise, **detect_options})
    table = characterize_sources(searched, detections, noise=noise, wcs=wcs, beam=beam,
                                 searched_noise=searched_noise, provenance=provenance,
                                 flux_fractional_error=flux_fraction, progress=progress)
    if psf is not None:
        from deepfocus_radio.sources.characterize import SkyGeometry
        from deepfocus_radio.sources.psf_fit import apply_psf_cuts, refine_with_psf
        from deepfocus_radio.sources.residual import residual_cube

        geometry = SkyGeometry(wcs, beam, dirty_reader.shape[0])
        n_own = len(table)
        split = bool(detect_options.get("deblend", True))
        refine = functools.partial(
            refine_with_psf, dirty=data, psf=psf, noise=dirty_noise, geometry=geometry,
            flux_fractional_error=_flux_fractional_error(model, "psf_"), split=split,
            progress=progress)
        refined = refine(table)
        if dirty_candidates is not None:
            residual = residual_cube(data, refined, psf, geometry=geometry, noise=dirty_noise,
                                     store=_scratch_store(data.shape, stack, "residual.zarr"),
                                     progress=progress)
            # a candidate must peak at the threshold in the residual itself: the models'
            # small mismatches to bright sources leave broad, low residuals that smoothing
            # lifts over it (on 60 calibration cubes with psf_snr >= 4, 10 of 12 false
            # candidates fell below, and 10 of 23 true ones: purity 0.93 -> 0.97)
            peak = max(threshold, detect_options.get("min_peak_snr", 0.0))
            with warnings.catch_warnings():  # a residual without candidates is no news
                warnings.simplefilter("ignore", NoSourcesFoundWarning)
                found, _ = _run_stages(
                    residual, wcs, beam, None, stack, threshold=threshold, pb=None,
                    progress=progress, inference=inference,
                    detect_options={**detect_options, "min_peak_snr": peak}, contsub=contsub,
                    deconvolved=None, dirty_noise=dirty_noise)
            merged = _with_new_detections(table, found, geometry, known=refined)
            if len(merged) > n_own:  # the fits again, with the new sources among them
                refined = refine(merged)
        table = refined
        if split:
            n_own = _own_rows(table, n_own)
            _fill_split_peaks(table, searched, noise)
        table = apply_psf_cuts(table, psf_min_snr, first_candidate=n_own,
                               candidate_snr=dirty_candidates)
    if pb is not None:
        _correct_primary_beam(table, pb, dirty_reader.shape)
    return table, unsubtracted


def _own_rows(table, n_own):
    """Rows of a split catalogue up to the ``n_own``-th row as detected: the sources split
    from a detection follow it, so a dirty candidate's split stays a candidate."""
    detected = np.flatnonzero(np.asarray(table["psf_split"]) != 2)
    return int(detected[n_own]) if n_own < detected.size else len(table)


def _fill_split_peaks(table, searched, noise):
    """``peak``, ``peak_err`` and ``snr`` of the sources split by the PSF fits, read in the
    searched cube at their centres (``noise``: the dirty noise in the searched cube's
    unit, per channel)."""
    from deepfocus_radio.sources.characterize import _unit_scale

    rows = np.flatnonzero(np.asarray(table["psf_split"]) == 2)
    if rows.size == 0:
        return
    reader = CubeReader(searched)
    to_jy, _ = _unit_scale(reader)
    shape = reader.shape
    for index in rows:
        z, y, x = (int(np.clip(np.rint(table[name][index].value), 0, n - 1))
                   for name, n in zip(("z", "y", "x"), shape))
        value = float(reader.read((slice(z, z + 1), slice(y, y + 1), slice(x, x + 1)))[0, 0, 0])
        table["peak"][index] = value * to_jy * u.Jy / u.beam
        table["peak_err"][index] = noise[z] * to_jy * u.Jy / u.beam
        table["snr"][index] = value / noise[z]


def _with_new_detections(table, others, geometry, known=None):
    """``table`` followed by the rows of ``others`` that none of the sources of ``known``
    (default ``table``) holds: none within a beam on the sky and within its line FWHM (at
    least 2 channels)."""
    from astropy.table import vstack
    from scipy.spatial import cKDTree

    known = table if known is None else known
    if len(others) == 0:
        return table
    if len(known):
        tree = cKDTree(np.column_stack([known["x"].value, known["y"].value]))
        widths = np.array([geometry.velocity_width(z) for z in known["z"].value])
        line = np.fmax(2.0, np.nan_to_num(known["line_fwhm"].to_value(u.km / u.s) / widths))
        new = []
        for index, near in enumerate(tree.query_ball_point(
                np.column_stack([others["x"].value, others["y"].value]), geometry.beam_fwhm_pix)):
            near = np.asarray(near, dtype=int)
            dz = np.abs(known["z"].value[near] - others["z"][index].value)
            new.append(not np.any(dz <= line[near]))
        others = others[np.asarray(new, dtype=bool)]
    meta = dict(table.meta)
    merged = vstack([table, others], metadata_conflicts="silent") if len(others) else table
    merged.meta.clear()
    merged.meta.update(meta)
    merged["id"] = np.arange(1, len(merged) + 1)
    return merged


def _flux_fractional_error(module, prefix=""):
    """A network's calibrated fractional flux error, from its model card (0 without one,
    and for no network); ``prefix="psf_"``: the error after the PSF refinement."""
    calibration = getattr(getattr(module, "card", None), "calibration", None) or {}
    return float(calibration.get(prefix + "flux_fractional_error", 0.0))


def _beam_pixels(beam, wcs):
    """Beam major-axis FWHM in whole pixels (rounded up)."""
    scale = wcs.celestial.proj_plane_pixel_scales()[0].to_value(u.arcsec)
    return int(np.ceil(beam.major.to_value(u.arcsec) / scale))


def _unit_to_jy_beam(reader):
    """Factor from the reader's unit to Jy/beam (1 for bare arrays)."""
    if reader.unit is None:
        return 1.0
    unit = u.Unit(reader.unit)
    return float(unit.to(u.Jy / u.beam)) if unit.is_equivalent(u.Jy / u.beam) else 1.0


def _correct_primary_beam(table, pb, shape):
    response = _read_primary_beam(pb, shape)
    if len(table):
        z = np.nan_to_num(table["z"].value, nan=0.0) if response.ndim == 3 else None
        x = np.clip(np.rint(table["x"].value).astype(int), 0, shape[2] - 1)
        y = np.clip(np.rint(table["y"].value).astype(int), 0, shape[1] - 1)
        if z is None:
            factor = response[y, x]
        else:
            factor = response[np.clip(np.rint(z).astype(int), 0, shape[0] - 1), y, x]
        factor = np.where(np.isfinite(factor) & (factor > 0), factor, np.nan)
        for name in ("peak", "peak_err", "flux", "flux_err"):
            table[name] = table[name] / factor
    table.meta["pb_corrected"] = True


def _read_primary_beam(pb, shape):
    if isinstance(pb, (str, Path)):
        data, _, _ = _open_pb(Path(pb))
    else:
        data = pb
    data = CubeReader(data).read_all()
    if data.shape[0] == 1:
        data = data[0]
    if data.shape not in (tuple(shape), tuple(shape[1:])):
        raise InputDataError(
            f"the primary beam has shape {data.shape}; it must match the cube {tuple(shape)} "
            "or one of its planes (y, x)"
        )
    return data


def _open_psf(psf, stack, dirty_reader):
    from deepfocus_radio.sources.psf_fit import PsfReader

    if dirty_reader.ndim != 3:
        raise ConfigError("psf refinement needs a cube (chan, y, x); a 2D image has no line "
                          "window: drop psf=")
    if isinstance(psf, (str, Path)):
        path = Path(psf)
        if not path.exists():
            raise FileNotFoundError(f"PSF {path} does not exist")
        from deepfocus_radio.io import detect_format, open_cube, read_fits

        if detect_format(path) == "fits":
            psf = stack.enter_context(read_fits(path)).data  # read per window, lazily
        else:
            psf = open_cube(path)
    return PsfReader(psf, dirty_reader.shape[0])


def _open_pb(path):
    from deepfocus_radio.io import detect_format, open_cube, read_fits

    if not path.exists():
        raise FileNotFoundError(f"primary beam {path} does not exist")
    if detect_format(path) == "fits":
        with read_fits(path) as image:
            return np.asarray(image.read()), image.wcs, image.beam
    cube = open_cube(path)
    return cube, cube.wcs, None
