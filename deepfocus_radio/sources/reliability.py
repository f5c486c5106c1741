"""Reliability of detections from the negative detections (as in SoFiA).

Noise is symmetric about zero, so the finder run on the negated cube finds only false
detections, and these sample where false positive detections lie in the space of
``(log10 peak SNR, log10 sum SNR, log10 n_pixels)``. The reliability of a positive
detection is ``R = (P - N) / P``, where ``P`` and ``N`` are the Gaussian kernel density
sums of the other positive detections and of the negative detections at its location
(``R = 0`` where ``N >= P``, ``R = 1`` where no negative detection is near), with a kernel covariance of
``kernel_scale**2`` times the covariance of the negatives (SoFiA's default scale is 0.4).
It is only estimated where it is sensible: with at least ``min_negatives`` negative
detections; otherwise it is NaN and nothing is removed. On a network output, which
suppresses the noise, negatives are rare and the reliability is usually not estimated.
"""

import numpy as np

__all__ = ["detection_features", "reliability"]

#: Negative-detection density (kernel units) below which a detection counts as reliable.
NEGLIGIBLE_DENSITY = 1e-3


def detection_features(peak_snr, sum_snr, n_pixels):
    """Stack the three features in log10 (clipped to be finite).

    Parameters
    ----------
    peak_snr, sum_snr : array-like
        Peak SNR and SNR of the summed brightness of each detection.
    n_pixels : array-like
        Voxels per detection.

    Returns
    -------
    ndarray, shape (n, 3)
    """
    stacked = np.column_stack([peak_snr, sum_snr, n_pixels]).astype(float)
    return np.log10(np.clip(stacked, 1e-3, None))


def reliability(positive, negative, *, kernel_scale=0.4, min_negatives=10):
    """Reliability of each positive detection.

    Parameters
    ----------
    positive : ndarray, shape (n, 3)
        Features of the positive detections (:func:`detection_features`).
    negative : ndarray, shape (m, 3)
        Features of the negative detections.
    kernel_scale : float, optional
        Kernel covariance = ``kernel_scale**2 * cov(negative)``.
    min_negatives : int, optional
        Below this many negatives the reliability is not estimated.

    Returns
    -------
    ndarray, shape (n,)
        Reliability in [0, 1], or NaN where not estimated.
    """
    positive = np.asarray(positive, dtype=float).reshape(-1, 3)
    negative = np.asarray(negative, dtype=float).reshape(-1, 3)
    if len(negative) < max(min_negatives, 4) or len(positive) == 0:
        return np.full(len(positive), np.nan)
    covariance = kernel_scale**2 * np.cov(negative, rowvar=False)
    # A degenerate direction (e.g. all negatives of one size) gets a small floor.
    covariance += np.eye(3) * 1e-4
    inverse = np.linalg.inv(covariance)
    # leave-one-out: a detection does not vouch for itself
    density_p = _kernel_sum(positive, positive, inverse) - 1.0
    density_n = _kernel_sum(positive, negative, inverse)
    out = np.ones(len(positive))
    crowded = density_n > NEGLIGIBLE_DENSITY
    out[crowded] = 1.0 - density_n[crowded] / np.maximum(density_p[crowded],
                                                         density_n[crowded])
    return out


def _kernel_sum(points, samples, inverse):
    diff = points[:, None, :] - samples[None, :, :]
    mahalanobis = np.einsum("ijk,kl,ijl->ij", diff, inverse, diff)
    return np.exp(-0.5 * mahalanobis).sum(axis=1)
