"""Overlap and volume: Dice with the challenges' empty-mask rule, volumes in mL and voxels.

>>> import numpy as np
>>> a = np.zeros((4, 4, 4), bool); a[0, 0, :2] = True
>>> dice(a, a), dice(a, np.zeros_like(a)), volume_ml(a, (1.0, 1.0, 500.0))
(1.0, 0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["dice", "dice_per_channel", "volume_difference", "volume_ml"]


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool)
    ref = np.asarray(ref).astype(bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference differ in shape: {pred.shape} vs {ref.shape}")
    return pred, ref


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap, 2|P & R| / (|P| + |R|), with the challenges' empty-mask rule.

    Both masks empty -> 1.0 (nothing to find, nothing found); exactly one empty -> 0.0. This is the
    rule of BraTS 2021, BraTS 2023/2024 and ATLAS 2022 alike, and what MONAI's ``compute_dice``
    gives with ``ignore_empty=False`` (see :func:`dice_per_channel`).

    >>> import numpy as np
    >>> a = np.zeros((4, 4, 4), bool); a[0, 0, :2] = True
    >>> b = np.zeros((4, 4, 4), bool); b[0, 0, 1:3] = True
    >>> dice(a, b)
    0.5
    """
    pred, ref = _pair(pred, ref)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


def dice_per_channel(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Batch Dice for training-time validation, equal to :func:`dice` on every (case, channel).

    Args:
        pred: binarised prediction (B, C, X, Y, Z), bool or 0/1, on any device.
        ref: reference of the same shape.

    Returns:
        float tensor (B, C): MONAI ``compute_dice`` with ``ignore_empty=False``, so an empty
        reference with an empty prediction scores 1 and with any false positive scores 0 (MONAI's
        default would return NaN there and drop the case from means).

    >>> import torch
    >>> pred = torch.zeros(1, 2, 4, 4, 4, dtype=torch.bool); ref = pred.clone()
    >>> ref[0, 1, 0, 0, 0] = True
    >>> dice_per_channel(pred, ref).tolist()
    [[1.0, 0.0]]
    """
    from monai.metrics import compute_dice

    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference differ in shape: {tuple(pred.shape)} vs {tuple(ref.shape)}")
    return compute_dice(pred.float(), ref.float(), include_background=True, ignore_empty=False)


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a mask in millilitres (cm^3), from the voxel spacing in mm.

    >>> import numpy as np
    >>> volume_ml(np.ones((10, 10, 10), bool), (1.0, 1.0, 2.0))
    2.0
    """
    return float(np.asarray(mask).astype(bool).sum()) * float(np.prod(spacing)) / 1000.0


def volume_difference(pred: np.ndarray, ref: np.ndarray) -> int:
    """ATLAS 2022 volume difference: |voxels in prediction - voxels in reference|, in voxels.

    The challenge ignores the spacing (ATLAS v2.0 images are all 1 mm MNI, so voxels = mm^3).
    """
    pred, ref = _pair(pred, ref)
    return abs(int(pred.sum()) - int(ref.sum()))
