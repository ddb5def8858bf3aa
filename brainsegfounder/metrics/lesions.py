"""Lesion-wise scores: BraTS 2023 and 2024 lesion-wise Dice/HD95, ATLAS 2022 detection counts.

Connected components and dilations come from scipy.ndimage; the matching rules are written here
because no library states them. Region masks come from the label scheme
(:mod:`brainsegfounder.data.regions`), never from label values written in this module.

>>> import numpy as np
>>> ref = np.zeros((10, 10, 10), bool); ref[1:3, 1:3, 1:3] = True; ref[6:8, 6:8, 6:8] = True
>>> pred = np.zeros_like(ref); pred[1:3, 1:3, 1:3] = True
>>> lesion_detection_counts(pred, ref), lesion_f1(pred, ref)
({'tp': 1, 'fp': 0, 'fn': 1}, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from brainsegfounder.metrics.overlap import _pair, dice
from brainsegfounder.metrics.surface import BRATS2023_PENALTY_MM, BRATS2024_PENALTY_MM, hd95_brats2023

__all__ = ["BRATS2024_LESION_RULES", "f1_from_counts", "lesion_detection_counts", "lesion_f1",
           "lesionwise_brats2023", "lesionwise_brats2024",
           "lesionwise_brats2024_region", "lesionwise_scores", "simple_lesion_count"]

_EIGHTEEN_CONNECTED = ndimage.generate_binary_structure(3, 2)
_STRUCTURES = {6: ndimage.generate_binary_structure(3, 1), 18: _EIGHTEEN_CONNECTED,
               26: ndimage.generate_binary_structure(3, 3)}

#: BraTS 2024 adult glioma (post-treatment) lesion-wise parameters per evaluated region:
#: ``(dilation iterations, minimum lesion volume in mm^3)``. Read from
#: ``rachitsaluja/BraTS-2024-Metrics`` ``metrics_GLI.py`` (commit 9e8879a9, the challenge's code):
#: dilation 3 by default and 5 for NETC and RC (the code also names SNFH for 5, but spelt "SFNH",
#: so SNFH runs with 3; we follow what the code computes); lesions <= 10 mm^3 (ET) or 20 mm^3
#: (every other region) are dropped; HD95 penalty 337 mm. Regions not listed use ``(3, 20.0)``.
BRATS2024_LESION_RULES: dict[str, tuple[int, float]] = {
    "ET": (3, 10.0), "NETC": (5, 20.0), "SNFH": (3, 20.0), "RC": (5, 20.0), "TC": (3, 20.0), "WT": (3, 20.0),
}


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    # scipy repeats a dilation with iterations=0 until nothing changes: 0 must mean "no dilation".
    if iterations <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=_EIGHTEEN_CONNECTED, iterations=iterations)


def _merged_components(mask: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, int]:
    # Components of the dilated mask; each voxel's dilation is connected, so a dilated component is
    # exactly the dilation of the mask components it merges. Returns (merged labels on the mask,
    # dilated labels, count).
    dilated_components, n = ndimage.label(_dilate(mask, iterations), structure=_STRUCTURES[26])
    return np.where(mask, dilated_components, 0), dilated_components, n


def lesionwise_scores(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    dilation_iterations: int = 3,
    min_lesion_volume_mm3: float = 50.0,
    penalty: float = BRATS2023_PENALTY_MM,
    merge_predictions: bool = False,
    min_prediction_voxels: int = 0,
) -> dict[str, float | int]:
    """Lesion-wise Dice and HD95 of one binary region (BraTS 2023 rules by default).

    Rule (``rachitsaluja/BraTS-2023-Metrics``, glioma settings as defaults):

    1. Lesions are 26-connected components. Reference components that touch once the reference is
       dilated (18-connected element, ``dilation_iterations`` times; 0 = no dilation) count as one
       lesion.
    2. A predicted component matches a reference lesion if any of its voxels lies in that lesion's
       dilated region; it may match several lesions.
    3. Per lesion: Dice and HD95 (:func:`hd95_brats2023`, mm) between the union of its matched
       predicted components and the undilated lesion. A lesion with no match scores Dice 0 and HD95
       ``penalty``.
    4. Reference lesions of volume <= ``min_lesion_volume_mm3`` are dropped from the scores and the
       counts (a prediction matching only such a lesion is not a false positive either).
    5. Predicted components that match no lesion are false positives.
    6. Dice = sum of lesion Dice / (kept lesions + FP); HD95 = (sum of lesion HD95 + penalty x FP)
       / (kept lesions + FP); a zero denominator gives Dice 1.0 and HD95 0.0.

    BraTS 2024 adds (``merge_predictions``, ``min_prediction_voxels``): predicted components that
    touch after the same dilation count as one, and merged predicted components of
    <= ``min_prediction_voxels`` voxels are removed before matching (2023: no size filter).

    Returns:
        ``{"dice": float, "hd95": float (mm), "tp": int, "fn": int, "fp": int}``: tp and fn count
        kept reference lesions with and without a match; fp counts predicted components.
    """
    pred, ref = _pair(pred, ref)
    spacing = tuple(float(s) for s in spacing)
    voxel_mm3 = float(np.prod(spacing))

    if merge_predictions:
        pred_components = _merged_components(pred, dilation_iterations)[0]
    else:
        pred_components = ndimage.label(pred, structure=_STRUCTURES[26])[0]
    if min_prediction_voxels > 0:
        sizes = np.bincount(pred_components.ravel())
        small = np.flatnonzero(sizes <= min_prediction_voxels)
        pred_components = np.where(np.isin(pred_components, small[small != 0]), 0, pred_components)
    lesions, dilated_components, n_lesions = _merged_components(ref, dilation_iterations)

    matched_anywhere: set[int] = set()
    dice_sum = hd95_sum = 0.0
    tp = fn = 0
    for lesion_id in range(1, n_lesions + 1):
        lesion = lesions == lesion_id
        matched = np.unique(pred_components[dilated_components == lesion_id])
        matched = matched[matched != 0]
        matched_anywhere.update(int(m) for m in matched)
        if lesion.sum() * voxel_mm3 <= min_lesion_volume_mm3:
            continue
        if len(matched) == 0:
            fn += 1
            hd95_sum += penalty
            continue
        tp += 1
        matched_pred = np.isin(pred_components, matched)
        dice_sum += dice(matched_pred, lesion)
        hd95_sum += hd95_brats2023(matched_pred, lesion, spacing, penalty=penalty)

    all_pred = set(np.unique(pred_components).tolist()) - {0}
    fp = len(all_pred - matched_anywhere)
    count = tp + fn + fp
    if count == 0:
        return {"dice": 1.0, "hd95": 0.0, "tp": 0, "fn": 0, "fp": 0}
    return {"dice": dice_sum / count, "hd95": (hd95_sum + penalty * fp) / count, "tp": tp, "fn": fn, "fp": fp}


def lesionwise_brats2023(
    pred_label: np.ndarray,
    ref_label: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    scheme: object = "brats2023",
    dilation_iterations: int = 3,
    min_lesion_volume_mm3: float = 50.0,
) -> dict[str, dict[str, float | int]]:
    """BraTS 2023 lesion-wise scores of a label map, for each region the scheme evaluates.

    Args:
        pred_label, ref_label: label maps (X, Y, Z) in ``scheme``'s labels.
        spacing: voxel size in mm (the 2023 code reads it from the prediction's header).
        scheme: a label scheme or its name (:func:`brainsegfounder.data.regions.get_scheme`);
            ``"brats2023"`` scores TC, WT, ET.
        dilation_iterations, min_lesion_volume_mm3: 3 and 50 for glioma (the 2023 GLI, SSA and PED
            settings; MEN used 1 and 50, MET 1 and 2).

    Returns:
        ``{"TC": {...}, "WT": {...}, "ET": {...}}`` with the keys of :func:`lesionwise_scores`.

    >>> import numpy as np
    >>> ref = np.zeros((20, 20, 20), np.uint8); ref[4:10, 4:10, 4:10] = 3
    >>> pred = ref.copy(); pred[15:17, 15:17, 15:17] = 3          # a small false positive
    >>> scores = lesionwise_brats2023(pred, ref)
    >>> scores["ET"]["tp"], scores["ET"]["fp"], scores["ET"]["dice"], scores["ET"]["hd95"]
    (1, 1, 0.5, 187.0)
    """
    from brainsegfounder.data.regions import get_scheme

    scheme = get_scheme(scheme)
    pred_masks, ref_masks = scheme.region_masks(pred_label), scheme.region_masks(ref_label)
    return {name: lesionwise_scores(pred_masks[name], ref_masks[name], spacing, dilation_iterations,
                                    min_lesion_volume_mm3)
            for name in scheme.evaluated_names}


def lesionwise_brats2024(
    pred_label: np.ndarray,
    ref_label: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    scheme: object = "brats2024",
    rules: Mapping[str, tuple[int, float]] = BRATS2024_LESION_RULES,
) -> dict[str, dict[str, float | int]]:
    """BraTS 2024 (adult glioma, post-treatment) lesion-wise scores for each evaluated region.

    Rule (``rachitsaluja/BraTS-2024-Metrics`` ``metrics_GLI.py``, commit 9e8879a9; arXiv
    2405.18368): regions ET (3), NETC (1), SNFH (2), RC (4), TC (1 + 3), WT (1 + 2 + 3), from the
    scheme's ``evaluated_regions``. Per region, :func:`lesionwise_scores` with the region's
    dilation and minimum lesion volume from ``rules`` (:data:`BRATS2024_LESION_RULES`: dilation 3,
    5 for NETC and RC; 10 mm^3 for ET, 20 mm^3 otherwise), predicted components merged after the
    same dilation and those of <= the minimum volume in voxels removed (the code counts voxels;
    = mm^3 at BraTS' 1 mm), and a 337 mm HD95 penalty for missed and false-positive lesions.

    Not reproduced: the 2024 code also merges NETC, ET, RC and SNFH components that touch a
    component of another of these tissues into one lesion (several passes over files on disk);
    here lesions are merged only within a region, so a case whose tissue components touch across
    tissues may count more lesions than the challenge did.

    >>> import numpy as np
    >>> ref = np.zeros((30, 30, 30), np.uint8); ref[2:8, 2:8, 2:8] = 4            # a cavity
    >>> pred = ref.copy(); pred[22:25, 22:25, 22:25] = 4                          # + a 27-voxel FP
    >>> scores = lesionwise_brats2024(pred, ref)
    >>> scores["RC"]["fp"], scores["RC"]["dice"], scores["RC"]["hd95"], scores["ET"]["dice"]
    (1, 0.5, 168.5, 1.0)
    """
    from brainsegfounder.data.regions import get_scheme

    scheme = get_scheme(scheme)
    pred_masks, ref_masks = scheme.region_masks(pred_label), scheme.region_masks(ref_label)
    return {name: lesionwise_brats2024_region(pred_masks[name], ref_masks[name], name, spacing, rules)
            for name in scheme.evaluated_names}


def lesionwise_brats2024_region(
    pred: np.ndarray, ref: np.ndarray, region: str, spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rules: Mapping[str, tuple[int, float]] = BRATS2024_LESION_RULES,
) -> dict[str, float | int]:
    """BraTS 2024 lesion-wise scores of one region's masks (rules of :func:`lesionwise_brats2024`).

    ``region`` picks the dilation and minimum volume from ``rules``; unknown names use ``(3, 20.0)``.
    """
    iterations, min_volume = rules.get(region, (3, 20.0))
    return lesionwise_scores(pred, ref, spacing, iterations, min_volume, BRATS2024_PENALTY_MM,
                             merge_predictions=True, min_prediction_voxels=int(min_volume))


# --------------------------------------------------------------------------------------------------
# ATLAS 2022 lesion detection


def simple_lesion_count(pred: np.ndarray, ref: np.ndarray) -> int:
    """ATLAS 2022 simple lesion count: |components in prediction - components in reference|.

    Components are 6-connected (scipy.ndimage.label's default, as the challenge used it).
    """
    pred, ref = _pair(pred, ref)
    return abs(ndimage.label(pred)[1] - ndimage.label(ref)[1])


def lesion_detection_counts(pred: np.ndarray, ref: np.ndarray, connectivity: int = 6) -> dict[str, int]:
    """Lesion detection counts with any-voxel overlap (ATLAS 2022 rule at ``connectivity`` 6).

    TP: reference components that overlap the prediction anywhere; FN: reference components that
    overlap nothing; FP: predicted components that overlap no reference voxel. No overlap fraction,
    no size threshold. ``connectivity`` (6, 18 or 26) defines the components.

    Returns:
        ``{"tp": int, "fp": int, "fn": int}``.
    """
    pred, ref = _pair(pred, ref)
    structure = _STRUCTURES[connectivity]
    ref_components, n_ref = ndimage.label(ref, structure=structure)
    pred_components, n_pred = ndimage.label(pred, structure=structure)
    tp = int(np.count_nonzero(np.unique(ref_components[pred])))
    fp = n_pred - int(np.count_nonzero(np.unique(pred_components[ref])))
    return {"tp": tp, "fp": fp, "fn": n_ref - tp}


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """Detection F1 = TP / (TP + (FP + FN) / 2); no lesions anywhere (all zero) -> 1.0.

    >>> f1_from_counts(1, 1, 0), f1_from_counts(0, 0, 0)
    (0.6666666666666666, 1.0)
    """
    denominator = tp + (fp + fn) / 2
    return 1.0 if denominator == 0 else tp / denominator


def lesion_f1(pred: np.ndarray, ref: np.ndarray, connectivity: int = 6) -> float:
    """ATLAS 2022 lesion-wise F1 = TP / (TP + (FP + FN) / 2); no lesions in either mask -> 1.0.

    Counts as in :func:`lesion_detection_counts` (6-connected components; the challenge's first
    contributed version used 26-connectivity, the version it scored with used 6).

    >>> import numpy as np
    >>> ref = np.zeros((10, 10, 10), bool); ref[1:3, 1:3, 1:3] = True; ref[6:8, 6:8, 6:8] = True
    >>> pred = np.zeros_like(ref); pred[1:3, 1:3, 1:3] = True
    >>> lesion_f1(pred, ref)   # one found, one missed: 1 / (1 + 1/2)
    0.6666666666666666
    """
    return f1_from_counts(**lesion_detection_counts(pred, ref, connectivity))
