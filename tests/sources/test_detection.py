"""Tests of the smooth+clip detector: positions, chunking, NaNs, 2D, deblending, errors."""

import dask.array as da
import numpy as np
import pytest
import radio_beam
from astropy.wcs import WCS
from scipy import ndimage

from deepfocus_radio.exceptions import ConfigError, InputDataError
from deepfocus_radio.noise import channel_noise
from deepfocus_radio.sources import Detections, detect_sources
from deepfocus_radio.sources._smoothing import make_kernels, noise_ratios
from deepfocus_radio.sources._arrays import CubeReader

SOURCES = [
    dict(x=30, y=25, z=12, flux=1.0, major=0.6, minor=0.3, pa=30, line_fwhm=6),
    dict(x=12, y=36, z=6, flux=0.08, major=0.0, minor=0.0, pa=0, line_fwhm=4),
    dict(x=40, y=8, z=18, flux=0.15, major=0.3, minor=0.3, pa=0, line_fwhm=5),
]


@pytest.fixture(scope="module")
def cube():
    from source_helpers import build_cube

    clean, dirty, noise, header = build_cube((24, 48, 48), SOURCES, noise=1e-3, seed=3)
    return dict(clean=clean, dirty=dirty, noise=noise, header=header, wcs=WCS(header),
                beam=radio_beam.Beam.from_fits_header(header), sigma=channel_noise(dirty))


def _peaks(detections, data):
    out = []
    for seg in detections:
        values = np.where(seg.mask, data[seg.slices], -np.inf)
        local = np.unravel_index(np.argmax(values), values.shape)
        out.append(tuple(i + s.start for i, s in zip(local, seg.slices)))
    return out


def test_finds_the_sources_at_their_positions(cube):
    det = detect_sources(cube["dirty"], noise=cube["sigma"], noise_cube=cube["dirty"],
                         wcs=cube["wcs"], beam=cube["beam"])
    assert isinstance(det, Detections)
    peaks = _peaks(det, cube["dirty"])
    for src in SOURCES:
        distances = [np.hypot(p[2] - src["x"], p[1] - src["y"]) + abs(p[0] - src["z"]) / 3
                     for p in peaks]
        assert min(distances) < 2.5, (src, peaks)
    assert len(det) <= len(SOURCES) + 1  # at most one noise peak at 4 sigma on 55k voxels
    assert np.all(np.diff(det.peak_snr) <= 0)  # sorted by decreasing SNR
    assert det.peak_snr[0] > 30
    strict = detect_sources(cube["dirty"], noise=cube["sigma"], noise_cube=cube["dirty"],
                            wcs=cube["wcs"], beam=cube["beam"], min_peak_snr=10.0)
    assert len(strict) == np.sum(det.peak_snr >= 10) >= 1
    assert det.label_image().max() == len(det)
    assert "sources" in repr(det)


def test_chunked_equals_whole_cube(cube):
    options = dict(noise=cube["sigma"], noise_cube=cube["dirty"], wcs=cube["wcs"],
                   beam=cube["beam"])
    whole = detect_sources(cube["dirty"], **options)
    chunked = detect_sources(cube["dirty"], chunks=(7, 13, 20), progress=True, **options)
    lazy = detect_sources(da.from_array(cube["dirty"], chunks=(8, 16, 16)), chunks=11,
                          **options)
    np.testing.assert_array_equal(whole.label_image(), chunked.label_image())
    np.testing.assert_array_equal(whole.label_image(), lazy.label_image())
    np.testing.assert_allclose(whole.peak_snr, chunked.peak_snr)


def test_nan_blanked_region_gives_no_sources(cube):
    blanked = cube["dirty"].copy()
    blanked[:, :, :20] = np.nan  # left part blanked (the source at x=12 goes)
    blanked[5] = np.nan  # and one whole channel
    sigma = channel_noise(blanked)
    det = detect_sources(blanked, noise=sigma, noise_cube=blanked, wcs=cube["wcs"],
                         beam=cube["beam"])
    labels = det.label_image()
    assert not np.any(labels[:, :, :20])
    assert not np.any(labels[5])
    peaks = _peaks(det, np.nan_to_num(blanked))
    assert all(p[2] >= 24 for p in peaks)  # nothing piled up along the blank edge
    assert len(det) >= 2


def test_mask_argument_hides_voxels(cube):
    mask = np.zeros(cube["dirty"].shape, dtype=bool)
    mask[:, 15:35, 20:40] = True  # hide the bright source
    det = detect_sources(cube["dirty"], noise=cube["sigma"], noise_cube=cube["dirty"],
                         wcs=cube["wcs"], beam=cube["beam"], mask=mask)
    assert not np.any(det.label_image()[mask])
    assert det.peak_snr.max() < 30


def test_pure_noise_gives_nothing(cube):
    det = detect_sources(cube["noise"], noise=cube["sigma"], noise_cube=cube["noise"],
                         wcs=cube["wcs"], beam=cube["beam"], threshold=5.0)
    assert len(det) == 0
    assert det.label_image().sum() == 0


def test_two_dimensional_image():
    from source_helpers import build_cube

    sources = [dict(x=20, y=20, flux=0.05, major=0.4, minor=0.2, pa=30),
               dict(x=8, y=34, flux=0.02, major=0.0, minor=0.0, pa=0)]
    _, dirty, _, header = build_cube((48, 48), sources, noise=1e-3, seed=1)
    det = detect_sources(dirty, noise=channel_noise(dirty[None])[0], noise_cube=dirty,
                         wcs=WCS(header), beam=radio_beam.Beam.from_fits_header(header))
    assert det.ndim == 2 and det.label_image().shape == (48, 48)
    assert len(det) == 2
    labels = det.label_image()
    assert labels[20, 20] > 0 and labels[34, 8] > 0


def test_deblending_splits_touching_sources():
    from source_helpers import build_cube

    pair = [dict(x=20, y=24, z=10, flux=0.3, major=0, minor=0, pa=0, line_fwhm=5),
            dict(x=28, y=24, z=10, flux=0.2, major=0, minor=0, pa=0, line_fwhm=5)]
    clean, dirty, _, header = build_cube((20, 48, 48), pair, beam=(0.5, 0.5, 0), noise=1e-3)
    options = dict(noise=channel_noise(dirty), noise_cube=dirty, wcs=WCS(header),
                   beam=radio_beam.Beam.from_fits_header(header), reliability=False)
    merged = detect_sources(clean, deblend=False, **options)
    split = detect_sources(clean, **options)
    assert len(merged) == 1 and len(split) == 2
    xs = sorted(p[2] for p in _peaks(split, clean))
    assert xs == [20, 28]
    # a single source with a noisy top is not split
    single = detect_sources(dirty, **options)
    assert len([p for p in _peaks(single, dirty) if 18 <= p[2] <= 30 and 20 <= p[1] <= 28]) == 2


def test_reliability_from_negative_detections():
    rng = np.random.default_rng(5)
    noise = ndimage.gaussian_filter(rng.normal(size=(40, 64, 64)), (0, 1.2, 1.2), mode="wrap")
    noise /= noise.std()
    cube = noise.copy()
    zz, yy, xx = np.indices(cube.shape)
    cube += 12 * np.exp(-((zz - 20) ** 2 / 8 + ((yy - 32) ** 2 + (xx - 32) ** 2) / 8))
    det = detect_sources(cube, noise=1.0, noise_cube=noise, beam=3.0, threshold=3.0,
                         min_reliability=0.0)
    assert det.n_negative >= 10
    assert np.all(np.isfinite(det.reliability))
    assert det.reliability[0] > 0.9  # the bright source
    assert np.median(det.reliability[1:]) < 0.5  # noise peaks look like the negatives
    kept = detect_sources(cube, noise=1.0, noise_cube=noise, beam=3.0, threshold=3.0)
    assert 1 <= len(kept) < len(det)
    none = detect_sources(cube, noise=1.0, noise_cube=noise, beam=3.0, threshold=3.0,
                          reliability=False)
    assert none.n_negative == 0 and np.all(np.isnan(none.reliability))


def test_measured_noise_ratio_matches_propagation():
    rng = np.random.default_rng(2)
    fwhm = 5.0
    sigma_white = fwhm / np.sqrt(8 * np.log(2)) / np.sqrt(2)
    noise = ndimage.gaussian_filter(rng.normal(size=(16, 128, 128)), (0, sigma_white,
                                                                       sigma_white), mode="wrap")
    kernels = make_kernels((0, 3, 6), (0, 3))
    measured = noise_ratios(kernels, noise_reader=CubeReader(noise))
    propagated = noise_ratios(kernels, beam_fwhm_pix=fwhm)
    np.testing.assert_allclose(measured, propagated, rtol=0.08)
    assert measured[0] == pytest.approx(1.0)


def test_spectral_cube_input(cube, fits_cube):
    _, spectral = fits_cube(cube["dirty"], cube["header"])
    det = detect_sources(spectral, noise=cube["sigma"], noise_cube=cube["dirty"])
    ref = detect_sources(cube["dirty"].astype(np.float32), noise=cube["sigma"],
                         noise_cube=cube["dirty"], wcs=cube["wcs"], beam=cube["beam"])
    np.testing.assert_array_equal(det.label_image(), ref.label_image())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(noise=np.ones(3)), InputDataError, "noise has shape"),
    (dict(noise=-1.0), InputDataError, "noise must be positive"),
    (dict(noise=1.0, mask=np.zeros((2, 2), bool)), InputDataError, "mask has shape"),
    (dict(noise=1.0, kernels_z=(2,)), ConfigError, "odd boxcar"),
    (dict(noise=1.0, kernels_xy=(-1,)), ConfigError, "kernels_xy"),
    (dict(noise=1.0, threshold=0), ConfigError, "threshold"),
    (dict(noise=1.0, min_pixels=0), ConfigError, "min_pixels"),
    (dict(noise=1.0, beam=3.0, chunks=(1, 2)), ConfigError, "chunks"),
    (dict(noise=1.0), ConfigError, "noise_cube="),
    (dict(noise=1.0, beam=radio_beam.Beam(1.0 * __import__("astropy.units").units.arcsec)),
     ConfigError, "needs wcs="),
    (dict(noise=1.0, noise_cube=np.zeros((2, 3, 3))), InputDataError, "noise_cube has shape"),
])
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        detect_sources(np.zeros((4, 8, 8)), **kwargs)


def test_rejects_four_dimensional_arrays():
    with pytest.raises(InputDataError, match="drop degenerate axes"):
        detect_sources(np.zeros((1, 4, 8, 8)), noise=1.0)


def test_a_deconvolved_cube_is_deblended_against_its_own_noise(tmp_path):
    """Two point sources whose fainter peak stands 1.7 dirty-cube rms above their saddle.
    Against the dirty noise (3 rms needed) they stay one; a deconvolved, here noiseless,
    cube has no noise to make such a saddle, and find_sources splits it (a split must stand
    3 x max(the cube's own noise, a third of the dirty noise) above its saddle)."""
    from astropy.io import fits
    from source_helpers import build_cube

    from deepfocus_radio.sources import find_sources

    sources = [dict(x=18, y=24, z=8, flux=1.0, major=0, minor=0, pa=0, line_fwhm=4),
               dict(x=23, y=24, z=8, flux=0.6, major=0, minor=0, pa=0, line_fwhm=4)]
    clean, dirty, _, header = build_cube((16, 48, 48), sources, noise=0.02, seed=1)
    noise = channel_noise(dirty)
    saddle, faint = clean[8, 24, 18:24].min(), clean[8, 24, 21:24].max()
    assert 1.2 < (faint - saddle) / np.median(noise) < 2.4
    beam = 0.5 / 0.1 * 0.35 / 0.1  # FWHM**2, pixels**2
    options = dict(noise=noise, beam=np.sqrt(beam), reliability=False)
    assert len(detect_sources(clean, **options)) == 1
    assert len(detect_sources(clean, deblend_noise=noise / 3, **options)) == 2
    path = tmp_path / "dirty.fits"
    fits.PrimaryHDU(dirty.astype(np.float32), header=header).writeto(path)
    found = find_sources(path, None, deconvolved=clean.astype(np.float32), progress=False)
    assert sorted(np.round(found["x"].value)) == [18, 23]
