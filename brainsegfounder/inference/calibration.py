"""Calibration in one room: temperatures, how calibrated probabilities are (ECE, Brier), the flag threshold.

The ``calibrate`` command fits and stores what this module computes; the checkpoint keys it
stores them under are in :mod:`brainsegfounder.checkpoints`; ``predict`` applies them.

Temperature scaling per region: probabilities that mean what they say.

A segmentation network trained with Dice loss is over-confident (probabilities all near 0 or 1).
Temperature scaling (Guo et al., ICML 2017) divides each region channel's logits by one scalar
``T`` fitted on held-out (validation) voxels by minimising the binary negative log-likelihood;
``T > 1`` softens, ``T < 1`` sharpens. Dividing by a positive scalar keeps the sign of every
logit, so the label map at threshold 0.5 is unchanged; only the probabilities (uncertainty maps,
quality score, ECE) change.

The fitted temperatures travel in the checkpoint under
:data:`~brainsegfounder.checkpoints.TEMPERATURE_KEY` (a list, one per
region channel, in the scheme's channel order).

Example:
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> z = torch.randn(1, 2, 40, 40, 40) * 2                    # calibrated logits, 2 regions
    >>> y = torch.bernoulli(torch.sigmoid(z))
    >>> t = fit_temperature(5 * z, y)                              # a 5x over-confident model
    >>> [round(v, 1) for v in t.tolist()]
    [5.0, 5.0]
    >>> bool((binary_nll(5 * z, y, t) < binary_nll(5 * z, y)).all())
    True

Measuring calibration: expected calibration error and Brier score.

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

The flag threshold (:func:`choose_flag_threshold`): the quality score
(:func:`brainsegfounder.inference.uncertainty.quality_score`, ``1 -`` the expected Dice) above which
``predict`` flags a case, chosen on validation cases. People read it the other way round, as the
expected Dice below which a case is flagged (``1 -`` the threshold), and in words
(:func:`flag_rule`, :func:`review_note`), which say how many validation cases it came from and
call it rough below :data:`MIN_THRESHOLD_CASES`:

>>> rule = flag_rule(0.70, cases=3)
>>> rule
'expected Dice below 0.70, a threshold fitted on 3 validation cases (fewer than 20: a rough guide)'
>>> review_note(0.62, 0.70, cases=3)
'review first: expected Dice 0.62 below 0.70; threshold fitted on 3 validation cases (fewer than 20: a rough guide)'
>>> review_note(0.9741, 0.9749, cases=None, source="--flag_below")
'review first: expected Dice 0.974 below 0.975; threshold given as --flag_below'
>>> review_note(0.91, 0.70, cases=3), review_note(None, None, calibrated=False)
('', 'not calibrated: no expected Dice (run brainsegfounder.calibrate on the checkpoint)')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_BINS", "MIN_THRESHOLD_CASES", "NOT_CALIBRATED", "apply_temperature", "binary_nll",
           "brier_score", "calibration_per_region", "choose_flag_threshold", "expected_calibration_error",
           "fit_temperature", "flag_rule", "flatten_channels", "review_note"]

#: A flag threshold fitted on fewer validation cases than this is called rough wherever it is shown.
MIN_THRESHOLD_CASES = 20
#: What ``predict`` says instead of an expected Dice when the probabilities were never calibrated:
#: uncalibrated probabilities of a young model give expected Dice like 0.10 for a case of Dice 0.87.
NOT_CALIBRATED = "not calibrated: no expected Dice (run brainsegfounder.calibrate on the checkpoint)"

def flatten_channels(values: torch.Tensor | Sequence[torch.Tensor], channel_dim: int = 1) -> torch.Tensor:
    """``(B, R, ...)`` (or a list of ``(R, ...)`` volumes of any sizes, ``channel_dim=0``) -> ``(R, N)``."""
    if isinstance(values, torch.Tensor):
        values = [values]
    flat = [v.movedim(channel_dim, 0).reshape(v.shape[channel_dim], -1) for v in values]
    return torch.cat(flat, dim=1).float()


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor | Sequence[float],
                      channel_dim: int = 1) -> torch.Tensor:
    """Divide each region channel's logits by its temperature (then apply the sigmoid as before).

    >>> import torch
    >>> apply_temperature(torch.ones(1, 2, 3), [2.0, 0.5])[0, :, 0].tolist()
    [0.5, 2.0]
    """
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    shape = [1] * logits.ndim
    shape[channel_dim] = -1
    return logits / t.reshape(shape)


def binary_nll(logits, targets, temperature=None, channel_dim: int = 1) -> torch.Tensor:
    """Mean binary negative log-likelihood (nats per voxel) of each region channel, ``(R,)``.

    ``logits`` and ``targets`` as for :func:`fit_temperature`; ``temperature`` (optional) is applied first.
    """
    z, y = flatten_channels(logits, channel_dim), flatten_channels(targets, channel_dim)
    if temperature is not None:
        z = z / torch.as_tensor(temperature, dtype=z.dtype).reshape(-1, 1)
    return F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(dim=1)


def fit_temperature(logits, targets, max_voxels: int = 200_000, seed: int = 0, channel_dim: int = 1,
                    max_iter: int = 100) -> torch.Tensor:
    """One temperature per region channel, minimising the binary NLL of ``logits / T`` on ``targets``.

    Args:
        logits: validation logits, ``(B, R, X, Y, Z)``, or a list of ``(R, X, Y, Z)`` volumes of
            any sizes with ``channel_dim=0``.
        targets: the region masks (0/1) shaped like ``logits``.
        max_voxels: a seeded uniform subsample of this many voxels (the same voxels for every
            channel) keeps the fit fast on whole validation folds; the NLL is smooth in ``T`` and
            two hundred thousand voxels pin it to about 1%.
        seed: seed of the subsample.
        channel_dim: the channel dimension of ``logits`` and ``targets``.
        max_iter: LBFGS iterations.

    Returns:
        ``(R,)`` float tensor of temperatures, > 0. ``log T`` is what is optimised (so ``T`` stays
        positive); the channels are independent, so one LBFGS on their summed NLL fits them all.
    """
    z, y = flatten_channels(logits, channel_dim).detach(), flatten_channels(targets, channel_dim).detach()
    if z.shape != y.shape:
        raise ValueError(f"logits {tuple(z.shape)} and targets {tuple(y.shape)} do not match (channels, voxels)")
    if z.shape[1] > max_voxels:
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(z.shape[1], generator=generator)[:max_voxels]
        z, y = z[:, keep.to(z.device)], y[:, keep.to(y.device)]
    log_t = torch.zeros(z.shape[0], 1, dtype=z.dtype, device=z.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp(), y, reduction="none").mean(dim=1).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return log_t.detach().exp().reshape(-1).cpu()


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


def choose_flag_threshold(scores: Sequence[float], dice: Sequence[float], dice_floor: float = 0.7) -> float:
    """The quality-score threshold that best separates validation cases with Dice below ``dice_floor``.

    Maximises Youden's J (true-positive rate minus false-positive rate of "score > threshold"
    as a detector of poor cases) over the observed scores; thresholds are midpoints between
    consecutive sorted scores. Without both kinds of case it returns the largest score (flag
    nothing seen so far). Cases with ``score > threshold`` are flagged.

    >>> choose_flag_threshold([0.05, 0.1, 0.4, 0.5], [0.9, 0.85, 0.3, 0.5])
    0.25
    """
    s, d = np.asarray(scores, float), np.asarray(dice, float)
    if s.shape != d.shape or s.size == 0:
        raise ValueError(f"need one Dice per score, got {s.size} scores and {d.size} Dice values")
    poor = d < dice_floor
    if poor.all() or not poor.any():
        return float(s.max())
    ordered = np.unique(s)
    candidates = (ordered[:-1] + ordered[1:]) / 2 if ordered.size > 1 else ordered
    best, best_j = float(candidates[0]), -np.inf
    for t in candidates:
        flagged = s > t
        j = flagged[poor].mean() - flagged[~poor].mean()
        if j > best_j:
            best, best_j = float(t), j
    return best


def _fitted_on(cases: int | None, source: str) -> str:
    if source != "calibrate":
        return f"a threshold given as {source}"
    if cases is None:
        return "a threshold fitted on an unrecorded number of validation cases (calibrated before it was recorded)"
    rough = f" (fewer than {MIN_THRESHOLD_CASES}: a rough guide)" if cases < MIN_THRESHOLD_CASES else ""
    return f"a threshold fitted on {cases} validation case{'' if cases == 1 else 's'}{rough}"


def flag_rule(below: float, cases: int | None = None, source: str = "calibrate") -> str:
    """The flag in words: ``expected Dice below 0.70, a threshold fitted on 3 validation cases (...)``.

    ``below`` is the expected Dice under which a case is flagged; ``cases`` how many validation
    cases ``calibrate`` fitted it on (None: not recorded); ``source`` ``calibrate``, or the option
    that gave it (``--flag_below``).
    """
    return f"expected Dice below {below:.2f}, {_fitted_on(cases, source)}"


def review_note(expected: float | None, below: float | None, cases: int | None = None, source: str = "calibrate",
                calibrated: bool = True) -> str:
    """Why a case is flagged, in words (``volumes.csv``'s ``review`` column); ``""`` when it is not.

    ``review first: expected Dice 0.62 below 0.70; threshold fitted on 3 validation cases (...)``;
    :data:`NOT_CALIBRATED` when the probabilities were never calibrated (no expected Dice is given).
    """
    if not calibrated:
        return NOT_CALIBRATED
    if expected is None or below is None or not expected < below:
        return ""
    why = _fitted_on(cases, source).removeprefix("a ")
    digits = 2  # enough digits that the two numbers differ on the page as they do in fact
    while f"{expected:.{digits}f}" == f"{below:.{digits}f}" and digits < 4:
        digits += 1
    return f"review first: expected Dice {expected:.{digits}f} below {below:.{digits}f}; {why}"
