"""How sure is a segmentation: per-voxel uncertainty maps and one quality score per case.

Pure functions on sigmoid region probabilities, one channel per region (TC, WT, ET for BraTS),
as the predictor produces them (``(R, X, Y, Z)``; several members, checkpoints of an ensemble
and/or test-time mirrorings, stacked as ``(M, R, X, Y, Z)``).

- :func:`binary_entropy`: predictive entropy of the mean probability, per region channel, in
  bits (0 = certain, 1 = p is 0.5).
- :func:`combined_entropy`: one map for all regions, the largest channel entropy (the least sure
  region decides), bits, 0..1.
- :func:`member_variance`: the variance of the probability across members (0..0.25), the
  disagreement of an ensemble or of mirrorings; only defined for two members or more.
- :func:`expected_dice`: per region, the Dice its label map can expect if the (calibrated)
  probabilities are right.
- :func:`quality_score`: one number per case, ``1 - mean expected Dice`` (times a reliability
  factor per region when the case lacks modalities the model needs), 0..1; higher means look first.

The threshold above which a case is flagged is chosen with the rest of calibration
(:func:`brainsegfounder.inference.calibration.choose_flag_threshold`).

Example:
    >>> import torch
    >>> p = torch.tensor([[[[0.0, 0.5, 1.0]]]])            # one region, three voxels
    >>> binary_entropy(p).flatten().tolist()
    [0.0, 1.0, 0.0]
    >>> maps = uncertainty_maps(torch.stack([p, 1 - p]))    # two members that disagree
    >>> maps.variance.flatten().tolist()
    [0.25, 0.0, 0.25]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["UncertaintyMaps", "binary_entropy", "combined_entropy", "expected_dice",
           "mean_subset_dice", "member_variance", "quality_score", "subset_reliability",
           "uncertainty_maps"]

def _tensor(values) -> torch.Tensor:
    return values.float() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values)).float()


def binary_entropy(probabilities) -> torch.Tensor:
    """Per-voxel entropy (bits, 0..1) of each region's Bernoulli probability; same shape as the input.

    Regions are sigmoid channels (nested for BraTS), so each one is its own yes/no question and
    its entropy is ``-p log2 p - (1 - p) log2 (1 - p)``.

    >>> import torch
    >>> round(float(binary_entropy(torch.tensor(0.1))), 4)
    0.469
    """
    p = _tensor(probabilities).clamp(0.0, 1.0)
    # xlogy is exactly 0 at p = 0, so certain voxels have exactly zero entropy (no epsilon floor).
    return (torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)).abs() / math.log(2)


def combined_entropy(probabilities, channel_dim: int = 0) -> torch.Tensor:
    """One uncertainty map for all regions: the largest channel entropy per voxel (bits, 0..1).

    The maximum, not the mean, so that a voxel unsure about one region only (an enhancing rim
    inside a certain whole tumour) is not averaged away by the regions it is sure about.

    >>> import torch
    >>> combined_entropy(torch.tensor([[0.5, 1.0], [0.0, 0.0]])).tolist()
    [1.0, 0.0]
    """
    return binary_entropy(probabilities).amax(dim=channel_dim)


def member_variance(member_probabilities) -> torch.Tensor:
    """Variance across members (dim 0) of the probability, per region and voxel (0..0.25).

    Population variance (divided by M, not M - 1), so its range is fixed whatever the number of
    members. Raises ``ValueError`` for fewer than two members: one model does not disagree with itself.

    >>> import torch
    >>> round(float(member_variance(torch.tensor([[0.2], [0.6]]))[0]), 4)
    0.04
    """
    members = _tensor(member_probabilities)
    if members.ndim < 1 or members.shape[0] < 2:
        raise ValueError(f"variance across members needs at least two members, got shape {tuple(members.shape)}")
    return members.var(dim=0, unbiased=False)


@dataclass
class UncertaintyMaps:
    """The maps of one case on one grid.

    Attributes:
        mean: ``(R, X, Y, Z)`` mean probability over members (what is thresholded).
        entropy: ``(R, X, Y, Z)`` binary entropy of ``mean`` per region, bits.
        combined: ``(X, Y, Z)`` largest channel entropy, bits.
        variance: ``(R, X, Y, Z)`` variance across members, or ``None`` with one member.
    """

    mean: torch.Tensor
    entropy: torch.Tensor
    combined: torch.Tensor
    variance: torch.Tensor | None = None


def uncertainty_maps(member_probabilities) -> UncertaintyMaps:
    """All maps from ``(M, R, X, Y, Z)`` member probabilities (``M = 1`` gives no variance)."""
    members = _tensor(member_probabilities)
    if members.ndim != 5 and members.ndim != 4:
        # 4-D is accepted for 2-D tests and toy data: (M, R, X, Y).
        raise ValueError(f"expected member probabilities (M, R, X, Y, Z), got shape {tuple(members.shape)}")
    mean = members.mean(dim=0)
    entropy = binary_entropy(mean)
    variance = member_variance(members) if members.shape[0] > 1 else None
    return UncertaintyMaps(mean, entropy, entropy.amax(dim=0), variance)


def expected_dice(probabilities, threshold: float = 0.5, hesitant: float = 0.1) -> np.ndarray:
    """The Dice each region's label map can expect if its probabilities are right, ``(R,)``, 0..1.

    With calibrated probabilities ``p`` (``brainsegfounder.calibrate``), a voxel is truly in the
    region with probability ``p``, so the predicted mask ``y = p > threshold`` overlaps the truth by
    ``sum(p * y)`` voxels in expectation and the truth holds ``sum(p)``: the soft Dice
    ``(2 sum(p y) + 1) / (sum(p) + sum(y) + 1)``. Only voxels above ``hesitant`` count towards
    ``sum(p)``, so a faint haze of p = 0.01 over a whole brain does not read as a missed lesion;
    the ``+ 1`` (one voxel) makes a confidently empty region 1 and keeps a tiny one finite.

    >>> import numpy as np
    >>> p = np.zeros((2, 10, 10, 10)); p[:, 2:6, 2:6, 2:6] = [[[[0.9]]], [[[0.3]]]]
    >>> [round(float(d), 3) for d in expected_dice(p)]    # sure of its lesion; unsure, predicts none
    [0.948, 0.05]
    """
    p = _tensor(probabilities)
    flat = p.reshape(p.shape[0], -1)
    predicted = (flat > threshold).float()
    mass = torch.where(flat > hesitant, flat, torch.zeros(()))
    dice = (2 * (mass * predicted).sum(1) + 1) / (mass.sum(1) + predicted.sum(1) + 1)
    return dice.clamp(0.0, 1.0).numpy()


def quality_score(probabilities, threshold: float = 0.5, hesitant: float = 0.1,
                  reliability: Sequence[float] | None = None) -> float:
    """One number per case: ``1 - mean expected Dice`` over regions, 0..1; higher = look first.

    The expected Dice (:func:`expected_dice`) is what the model's own probabilities say about its
    label map: a sure, crisp lesion scores near 0; a lesion the model half-sees, whose probability
    mass lies outside what it painted, scores high. It needs calibrated probabilities to mean what
    it says (``brainsegfounder.calibrate``), but ranks cases without them too.

    A model cannot be unsure of what its inputs cannot show: without T1ce the enhancing tumour is
    invisible, and the model is confidently wrong about it. ``reliability`` (one factor per region,
    0..1) scales the expected Dice for that: ``calibrate`` measures on the validation fold the Dice
    each region keeps with every subset of the modalities, and ``predict`` passes the ratio to the
    full set for the modalities a case lacks (:meth:`Predictor.reliability`).

    >>> import numpy as np
    >>> sure = np.zeros((1, 9, 9, 9)); sure[0, 3:6, 3:6, 3:6] = 1.0
    >>> round(quality_score(sure), 3), quality_score(np.zeros((1, 9, 9, 9)))
    (0.0, 0.0)
    >>> round(quality_score(sure * 0.6), 3)                 # the same lesion at p = 0.6
    0.244
    >>> round(quality_score(sure, reliability=[0.5]), 3)    # a modality it needs is missing
    0.5
    """
    dice = expected_dice(probabilities, threshold, hesitant)
    if reliability is not None:
        factor = np.clip(np.asarray(reliability, float), 0.0, 1.0)
        if factor.shape != dice.shape:
            raise ValueError(f"reliability has {factor.size} factors for {dice.size} regions")
        dice = dice * factor
    return float(1.0 - dice.mean())


def mean_subset_dice(tables: Sequence[dict | None]) -> dict[str, list[float]]:
    """The mean of several ``calibrate`` subset tables (an ensemble's), over the subsets all of them hold.

    >>> mean_subset_dice([{"t1": [0.2], "t1+t2": [0.8]}, {"t1": [0.4]}, None])
    {'t1': [0.30000000000000004]}
    """
    tables = [t for t in tables if t]
    if not tables:
        return {}
    common = [k for k in tables[0] if all(k in t for t in tables)]
    return {k: [float(v) for v in np.mean([t[k] for t in tables], axis=0)] for k in common}


def subset_reliability(subset_dice: dict[str, Sequence[float]], modalities: Sequence[str],
                       missing: Sequence[str]) -> list[float] | None:
    """Per region, ``min(1, Dice without missing / Dice with all)`` from a ``calibrate`` subset table.

    ``None`` for a complete case or when the table lacks either subset (the quality score is then
    the expected Dice alone).

    >>> subset_reliability({"t1+t2": [0.8, 0.5], "t2": [0.4, 0.6]}, ["t1", "t2"], ["t1"])
    [0.5, 1.0]
    """
    if not missing or not subset_dice:
        return None
    full = subset_dice.get("+".join(modalities))
    given = subset_dice.get("+".join(m for m in modalities if m not in missing))
    if full is None or given is None:
        return None
    return [min(1.0, g / f) if f > 0 else 1.0 for g, f in zip(given, full, strict=True)]
