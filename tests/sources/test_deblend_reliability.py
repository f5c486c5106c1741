"""Direct tests of deblend_segment and of the reliability estimate."""

import numpy as np
import pytest
from scipy import ndimage

from deepfocus_radio.sources._linking import Segment
from deepfocus_radio.sources.deblend import deblend_segment
from deepfocus_radio.sources.reliability import detection_features, reliability


def _two_blobs(separation, amplitude=(10.0, 6.0), sigma=2.0):
    zz, yy, xx = np.indices((5, 20, 30), dtype=float)
    data = np.zeros(zz.shape)
    for amp, x0 in zip(amplitude, (8.0, 8.0 + separation)):
        data += amp * np.exp(-((zz - 2) ** 2 / 2 + ((yy - 10) ** 2 + (xx - x0) ** 2)
                               / (2 * sigma**2)))
    box = (slice(3, 8), slice(40, 60), slice(100, 130))
    mask = data > 0.05
    assert ndimage.label(mask)[1] == 1  # one connected object, as the finder gives
    return Segment(box, mask), data


def test_well_separated_peaks_are_split_with_absolute_boxes():
    segment, data = _two_blobs(12)
    parts = deblend_segment(segment, data, np.full(5, 0.5), min_distance=2)
    assert len(parts) == 2
    assert sum(p.n_pixels for p in parts) == segment.n_pixels
    xs = sorted(float(np.mean(p.voxels()[2])) for p in parts)
    assert xs[0] == pytest.approx(108, abs=1) and xs[1] == pytest.approx(120, abs=1)
    assert all(p.slices[0].start >= 3 and p.slices[1].start >= 40 for p in parts)


def test_close_or_faint_peaks_stay_together():
    segment, data = _two_blobs(4)  # saddle above 0.75 of the fainter peak
    assert len(deblend_segment(segment, data, np.full(5, 0.5))) == 1
    segment, data = _two_blobs(12, amplitude=(10.0, 1.0))
    # the fainter peak rises less than 3 noise rms above the saddle
    assert len(deblend_segment(segment, data, np.full(5, 0.5))) == 1
    assert len(deblend_segment(segment, data, np.full(5, 0.1))) == 2


def test_nan_voxels_do_not_break_deblending():
    segment, data = _two_blobs(12)
    data[:, :, 14] = np.nan
    parts = deblend_segment(segment, data, np.full(5, 0.5))
    assert len(parts) == 2


def test_reliability_values():
    rng = np.random.default_rng(0)
    negatives = detection_features(rng.uniform(3, 5, 40), rng.uniform(3, 6, 40),
                                   rng.integers(5, 40, 40))
    noise_like = detection_features(rng.uniform(3, 5, 40), rng.uniform(3, 6, 40),
                                    rng.integers(5, 40, 40))
    bright = detection_features([50.0], [200.0], [800])
    values = reliability(np.vstack([bright, noise_like]), negatives)
    assert values[0] == 1.0
    assert np.median(values[1:]) < 0.3
    assert np.all((values >= 0) & (values <= 1))
    few = reliability(np.vstack([bright, noise_like]), negatives[:5])
    assert np.all(np.isnan(few))
    assert reliability(np.zeros((0, 3)), negatives).shape == (0,)


def test_detection_features_are_log10_and_finite():
    features = detection_features([10.0, 0.0], [100.0, -1.0], [1000, 5])
    np.testing.assert_allclose(features[0], [1.0, 2.0, 3.0])
    assert np.all(np.isfinite(features))
