"""Calibration of region probabilities: expected calibration error and Brier score.

Each region channel is a yes/no question per voxel, so both metrics are computed on the
probability of "in the region" (the binary, positive-class form), not on the top-label
confidence of multi-class ECE.

- :func:`expected_calibration_error`: equal-width bins of the probability on [0, 1] (15 by
  default; the last bin includes 1.0); ECE = sum over bins of (voxels in bin / all voxels) x
  |mean probability - fraction of voxels truly in the region|. Range 0..1, 0 is perfect.
- :func:`brier_score`: mean squared difference between probability and truth. Range 0..1.
- :func:`calibration_per_region`: both, per region channel, as ``{ece_<NAME>, brier_<NAME>}``.

Which voxels count matters: over a whole BraTS volume most voxels are certain background and
pull both numbers towards 0. Pass ``mask`` (e.g. the brain, the non-zero voxels of the image) to
score only those; the numbers we report say which voxels they used.

>>> import numpy as np
>>> p = np.array([0.9] * 10)
>>> y = np.array([1] * 9 + [0])                # 90% right when it says 0.9: calibrated
>>> expected_calibration_error(p, y), round(brier_score(p, y), 3)
(0.0, 0.09)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_BINS", "brier_score", "calibration_per_region", "expected_calibration_error"]

#: Number of equal-width probability bins of :func:`expected_calibration_error`.
DEFAULT_BINS = 15


def _pair(probabilities, targets, mask) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets).astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"probabilities {p.shape} and targets {y.shape} differ in shape")
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        p, y = p[np.broadcast_to(m, p.shape)], y[np.broadcast_to(m, y.shape)]
    return p.ravel(), y.ravel()


def expected_calibration_error(probabilities, targets, n_bins: int = DEFAULT_BINS, mask=None) -> float:
    """ECE of probabilities of one region against its 0/1 truth, equal-width bins on [0, 1].

    Args:
        probabilities: probabilities in [0, 1], any shape.
        targets: truth of the same shape (anything ``astype(bool)`` reads).
        n_bins: number of equal-width bins; bin ``k`` is ``[k/n, (k+1)/n)``, the last one closed.
        mask: optional voxels to score (broadcast to the shape).

    Returns 0.0 for no voxels.

    >>> expected_calibration_error([0.99, 0.99, 0.01, 0.01], [1, 0, 0, 0], n_bins=10)
    0.25
    """
    p, y = _pair(probabilities, targets, mask)
    if p.size == 0:
        return 0.0
    bins = np.minimum((np.clip(p, 0, 1) * n_bins).astype(np.int64), n_bins - 1)
    # (n_b / N) |mean p_b - mean y_b| = |sum p_b - sum y_b| / N: the per-bin sums suffice.
    confidence = np.bincount(bins, weights=p, minlength=n_bins)
    accuracy = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    return round(float(np.abs(confidence - accuracy).sum() / p.size), 12)


def brier_score(probabilities, targets, mask=None) -> float:
    """Mean of ``(p - y)^2`` over the voxels (0 perfect, 1 sure and always wrong).

    >>> brier_score([1.0, 0.5], [1, 0])
    0.125
    """
    p, y = _pair(probabilities, targets, mask)
    return float(np.mean((p - y) ** 2)) if p.size else 0.0


def calibration_per_region(probabilities, targets, names: Sequence[str], n_bins: int = DEFAULT_BINS,
                           mask=None) -> dict[str, float]:
    """``{ece_<name>, brier_<name>}`` for ``(R, X, Y, Z)`` probabilities and region masks.

    ``mask`` is ``(X, Y, Z)`` (the same voxels for every region).

    >>> import numpy as np
    >>> p = np.stack([np.full((2, 2, 2), 0.5), np.ones((2, 2, 2))])
    >>> calibration_per_region(p, np.ones_like(p), ["TC", "WT"])
    {'ece_TC': 0.5, 'brier_TC': 0.25, 'ece_WT': 0.0, 'brier_WT': 0.0}
    """
    probabilities, targets = np.asarray(probabilities), np.asarray(targets)
    if len(names) != probabilities.shape[0]:
        raise ValueError(f"{len(names)} region names for {probabilities.shape[0]} probability channels")
    scores: dict[str, float] = {}
    for i, name in enumerate(names):
        scores[f"ece_{name}"] = expected_calibration_error(probabilities[i], targets[i], n_bins, mask)
        scores[f"brier_{name}"] = brier_score(probabilities[i], targets[i], mask)
    return scores
