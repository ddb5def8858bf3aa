"""Segmentation metrics as the BraTS and ATLAS challenges score them, for any label scheme.

Every function takes numpy masks (anything ``astype(bool)`` turns into a mask) of one shape and
returns plain Python numbers, so that a number in our tables means what it means on the challenge
leaderboards. The rules were read from the challenges' scoring code (BraTS 2021/2022: CaPTk with
MedPy's ``hd95``; BraTS 2023: ``rachitsaluja/BraTS-2023-Metrics``; BraTS 2024:
``rachitsaluja/BraTS-2024-Metrics``; ATLAS v2.0 / MICCAI 2022: ``npnl/atlas2_grand_challenge``);
each function's docstring states its rule, its units and what it does with empty masks, which is
where challenges and libraries disagree most.

No label value is written here: region masks come from a label scheme
(:mod:`brainsegfounder.data.regions`, ``scheme.region_masks(label)``); which functions score
which scheme is a rule set (:mod:`brainsegfounder.evaluation.rules`). How calibrated probability maps
are (ECE, Brier) is measured with the rest of calibration, :mod:`brainsegfounder.inference.calibration`.

- :mod:`~brainsegfounder.metrics.overlap`: :func:`dice`, :func:`dice_per_channel`, :func:`volume_ml`,
  :func:`volume_difference`.
- :mod:`~brainsegfounder.metrics.surface`: :func:`hd95_brats2021`, :func:`hd95_brats2023`,
  :func:`hd95_brats2024`, :func:`hd95_mm`, :func:`image_diagonal`.
- :mod:`~brainsegfounder.metrics.lesions`: :func:`lesionwise_scores`, :func:`lesionwise_brats2023`,
  :func:`lesionwise_brats2024`, :func:`lesion_detection_counts`, :func:`lesion_f1`,
  :func:`simple_lesion_count`.

>>> import numpy as np
>>> from brainsegfounder.data.regions import get_scheme
>>> label = np.zeros((8, 8, 8), np.uint8)
>>> label[2:5, 2:5, 2:5] = 2          # oedema
>>> label[3, 3, 3] = 4                # enhancing tumour, BraTS 2021 labels
>>> masks = get_scheme("brats2021").region_masks(label)
>>> int(masks["WT"].sum()), int(masks["TC"].sum()), int(masks["ET"].sum())
(27, 1, 1)
>>> dice(masks["WT"], masks["WT"]), dice(masks["ET"], np.zeros_like(masks["ET"]))
(1.0, 0.0)
"""

from __future__ import annotations

import numpy as np

from brainsegfounder.data.regions import get_scheme
from brainsegfounder.metrics.lesions import (
    BRATS2024_LESION_RULES,
    f1_from_counts,
    lesion_detection_counts,
    lesion_f1,
    lesionwise_brats2023,
    lesionwise_brats2024,
    lesionwise_brats2024_region,
    lesionwise_scores,
    simple_lesion_count,
)
from brainsegfounder.metrics.overlap import dice, dice_per_channel, volume_difference, volume_ml
from brainsegfounder.metrics.surface import (
    BRATS2023_PENALTY_MM,
    BRATS2024_PENALTY_MM,
    hd95_brats2021,
    hd95_brats2023,
    hd95_brats2024,
    hd95_mm,
    image_diagonal,
)

__all__ = [
    "BRATS2023_PENALTY_MM",
    "BRATS2024_LESION_RULES",
    "BRATS2024_PENALTY_MM",
    "REGIONS",
    "brats_regions",
    "dice",
    "dice_per_channel",
    "f1_from_counts",
    "hd95_brats2021",
    "hd95_brats2023",
    "hd95_brats2024",
    "hd95_mm",
    "image_diagonal",
    "lesion_detection_counts",
    "lesion_f1",
    "lesionwise_brats2023",
    "lesionwise_brats2024",
    "lesionwise_brats2024_region",
    "lesionwise_scores",
    "regions_to_brats_label",
    "simple_lesion_count",
    "volume_difference",
    "volume_ml",
]

#: Channel order of the BraTS region tensors (the order the original networks output), read from
#: the label scheme.
REGIONS: tuple[str, ...] = get_scheme("brats2021").names


def brats_regions(label: np.ndarray, convention: str = "brats2021") -> np.ndarray:
    """A label map -> bool ``(R, X, Y, Z)`` in the scheme's channel order (TC, WT, ET for BraTS).

    A thin wrapper over ``get_scheme(convention).channel_masks`` (label values the scheme does not
    know are ignored, as the challenges' scoring does); new code calls the scheme directly.

    >>> import numpy as np
    >>> brats_regions(np.array([[[0, 1, 2, 3]]]), "brats2023")[:, 0, 0].astype(int).tolist()
    [[0, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]]
    """
    return get_scheme(convention).channel_masks(label)


def regions_to_brats_label(regions: np.ndarray, convention: str = "brats2021") -> np.ndarray:
    """Region channels ``(R, X, Y, Z)`` -> uint8 label map, painted in the scheme's order.

    A thin wrapper over ``get_scheme(convention).label_from_channels`` (BraTS: WT -> 2, then TC ->
    1, then ET -> 4 or 3), so nested regions round-trip through :func:`brats_regions` exactly.

    >>> import numpy as np
    >>> regions = np.array([[[[1, 1, 0]]], [[[1, 1, 1]]], [[[0, 1, 0]]]], bool)  # TC, WT, ET
    >>> regions_to_brats_label(regions).tolist()
    [[[1, 4, 2]]]
    """
    return get_scheme(convention).label_from_channels(regions)
