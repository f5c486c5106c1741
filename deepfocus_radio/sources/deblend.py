"""Deblending of touching sources: watershed from local peaks, then saddle merging.

An object found by smooth+clip may hold several sources. Its local maxima (separated by
at least ``min_distance`` pixels on the sky and one channel) seed a watershed of the
negated brightness inside the object's mask (:func:`skimage.segmentation.watershed`).
Two adjacent parts stay apart only if the fainter one stands out of the saddle between
them both in relative terms (``saddle <= contrast * peak``) and above the noise
(``peak - saddle >= prominence * noise``); otherwise they are merged, weakest pair first.
"""

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from deepfocus_radio.sources._linking import Segment

__all__ = ["deblend_segment", "CONTRAST", "PROMINENCE"]

#: Default criteria: a part stays apart if its saddle is at most CONTRAST of its peak...
CONTRAST = 0.9
#: ... and its peak exceeds the saddle by PROMINENCE noise rms.
PROMINENCE = 3.0


def deblend_segment(segment, data, noise, *, min_distance=2, contrast=CONTRAST,
                    prominence=PROMINENCE):
    """Split one object into sources.

    Parameters
    ----------
    segment : Segment
        The object (bounding box and mask).
    data : ndarray
        Brightness inside the bounding box (chan, y, x), Jy/beam; NaN allowed.
    noise : ndarray, shape (nchan_box,)
        Noise rms of the dirty cube for the box's channels, same unit as ``data``.
    min_distance : int, optional
        Smallest separation of two peaks on the sky, pixels.
    contrast : float, optional
        A part stays separate only if its saddle is at most this fraction of its peak.
    prominence : float, optional
        ... and if its peak exceeds the saddle by at least this many noise rms.

    Returns
    -------
    list of Segment
        One segment per source (the input itself when nothing is split).
    """
    inside = segment.mask & np.isfinite(data)
    if inside.sum() < 2:
        return [segment]
    floor = float(data[inside].min()) - 1.0
    values = np.where(inside, data, floor)  # finite everywhere, lowest outside the object
    footprint = np.ones((3, 2 * min_distance + 1, 2 * min_distance + 1), dtype=bool)
    peaks = peak_local_max(values, footprint=footprint, labels=inside.astype(np.int32),
                           exclude_border=False)
    if len(peaks) < 2:
        return [segment]
    markers = np.zeros(segment.mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-values, markers, mask=segment.mask)
    labels = _merge_weak_splits(labels, values, noise, contrast=contrast, prominence=prominence)
    parts = []
    for label in np.unique(labels[labels > 0]):
        parts.append(_crop(segment, labels == label))
    return parts


def _peaks(labels, data, noise):
    """Peak value and the noise at the peak's channel for each label."""
    index = np.unique(labels[labels > 0])
    positions = ndimage.maximum_position(data, labels, index)
    return {int(label): (float(data[pos]), float(noise[pos[0]]))
            for label, pos in zip(index, positions)}


def _saddles(labels, data):
    """Highest boundary level between each pair of face-adjacent labels."""
    saddles = {}
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        d = np.moveaxis(data, axis, 0)
        la, lb = a[:-1], a[1:]
        touching = (la > 0) & (lb > 0) & (la != lb)
        level = np.minimum(d[:-1], d[1:])[touching]
        for x, y, v in zip(la[touching].tolist(), lb[touching].tolist(), level.tolist()):
            key = (min(x, y), max(x, y))
            saddles[key] = max(saddles.get(key, -np.inf), v)
    return saddles


def _merge_weak_splits(labels, data, noise, *, contrast, prominence):
    labels = labels.copy()
    while True:
        peaks = _peaks(labels, data, noise)
        worst, worst_score = None, 0.0
        for (a, b), saddle in _saddles(labels, data).items():
            low = a if peaks[a][0] <= peaks[b][0] else b
            peak, sigma = peaks[low]
            relative_ok = saddle <= contrast * peak
            noise_ok = peak - saddle >= prominence * sigma
            if relative_ok and noise_ok:
                continue
            score = saddle / peak if peak > 0 else np.inf
            if worst is None or score > worst_score:
                worst, worst_score = (a, b), score
        if worst is None:
            return labels
        labels[labels == worst[1]] = worst[0]


def _crop(segment, mask):
    """A sub-segment with its own (tight) bounding box."""
    nonzero = np.nonzero(mask)
    lo = [int(idx.min()) for idx in nonzero]
    hi = [int(idx.max()) + 1 for idx in nonzero]
    box = tuple(slice(l, h) for l, h in zip(lo, hi))
    slices = tuple(slice(s.start + l, s.start + h) for s, l, h in zip(segment.slices, lo, hi))
    return Segment(slices, mask[box])
