"""Hand-computed cases for the challenge metrics: each test states the expected value's arithmetic."""

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from brainsegfounder import metrics
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.metrics import (
    brats_regions,
    dice,
    dice_per_channel,
    hd95_brats2021,
    hd95_brats2023,
    image_diagonal,
    lesion_detection_counts,
    lesion_f1,
    lesionwise_brats2023,
    lesionwise_scores,
    regions_to_brats_label,
    simple_lesion_count,
    volume_difference,
    volume_ml,
)
from brainsegfounder.utils.errors import ConfigError


def cube(shape, corner, side, dtype=bool):
    mask = np.zeros(shape, dtype)
    x, y, z = corner
    mask[x:x + side, y:y + side, z:z + side] = True
    return mask


# -- regions and labels -----------------------------------------------------------------------------

@pytest.mark.parametrize("convention, et", [("brats2021", 4), ("brats2023", 3)])
def test_brats_regions_channel_order_and_ignored_values(convention, et):
    other = 3 if et == 4 else 4  # the other convention's ET value is not a label here
    label = np.array([0, 1, 2, et, other, 7], np.uint8).reshape(1, 1, 6)
    tc, wt, et_mask = brats_regions(label, convention)[:, 0, 0]
    assert tc.tolist() == [False, True, False, True, False, False]
    assert wt.tolist() == [False, True, True, True, False, False]
    assert et_mask.tolist() == [False, False, False, True, False, False]


@pytest.mark.parametrize("convention, et", [("brats2021", 4), ("brats2023", 3)])
def test_label_region_round_trip(convention, et):
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 1, 2, et], np.uint8), size=(6, 7, 8))
    regions = brats_regions(label, convention)
    back = regions_to_brats_label(regions, convention)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, label)
    np.testing.assert_array_equal(brats_regions(back, convention), regions)


def test_regions_to_label_paint_order_and_bad_input():
    # A voxel in WT only -> 2; in TC (and WT) -> 1; in ET -> ET value, whatever else is set.
    regions = np.zeros((3, 1, 1, 4), bool)
    regions[1, 0, 0, 0] = True                     # WT
    regions[:2, 0, 0, 1] = True                    # TC + WT
    regions[:, 0, 0, 2] = True                     # all three
    regions[2, 0, 0, 3] = True                     # ET alone (not nested): still ET
    assert regions_to_brats_label(regions, "brats2023")[0, 0].tolist() == [2, 1, 3, 3]
    with pytest.raises(ConfigError, match="expected 3 region channels"):
        regions_to_brats_label(np.zeros((2, 4, 4, 4), bool))
    with pytest.raises(ConfigError, match="unknown label scheme 'brats2019'"):
        brats_regions(np.zeros((2, 2, 2)), "brats2019")


# -- Dice and volumes -------------------------------------------------------------------------------

def test_dice_empty_rules_and_single_voxel():
    empty = np.zeros((5, 5, 5), bool)
    voxel = empty.copy()
    voxel[2, 2, 2] = True
    other = empty.copy()
    other[0, 0, 0] = True
    assert dice(empty, empty) == 1.0
    assert dice(voxel, empty) == 0.0 and dice(empty, voxel) == 0.0
    assert dice(voxel, voxel) == 1.0
    assert dice(voxel, other) == 0.0
    # 8 voxels vs 12 voxels sharing 4: 2 * 4 / 20.
    assert dice(cube((6, 6, 6), (0, 0, 0), 2), np.pad(np.ones((2, 2, 3), bool), ((1, 3), (0, 4), (0, 3)))) == 0.4
    with pytest.raises(ValueError, match="differ in shape"):
        dice(empty, np.zeros((5, 5, 4), bool))


def test_volumes():
    mask = cube((10, 10, 10), (0, 0, 0), 5)       # 125 voxels
    assert volume_ml(mask, (1.0, 1.0, 1.0)) == pytest.approx(0.125)
    assert volume_ml(mask, (2.0, 2.0, 2.0)) == pytest.approx(1.0)
    assert volume_difference(mask, cube((10, 10, 10), (0, 0, 0), 2)) == 125 - 8
    assert volume_difference(np.zeros_like(mask), mask) == 125


def test_dice_per_channel_equals_numpy_dice_including_empty_cases():
    rng = np.random.default_rng(1)
    pred = rng.random((3, 3, 8, 8, 8)) > 0.7
    ref = rng.random((3, 3, 8, 8, 8)) > 0.7
    pred[0, 0] = ref[0, 0] = False                 # both empty -> 1
    pred[1, 1] = False                             # empty prediction, reference present -> 0
    ref[2, 2] = False                              # false positives on an empty reference -> 0
    got = dice_per_channel(torch.from_numpy(pred), torch.from_numpy(ref))
    assert got.shape == (3, 3)
    expected = [[dice(pred[b, c], ref[b, c]) for c in range(3)] for b in range(3)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got[0, 0] == 1.0 and got[1, 1] == 0.0 and got[2, 2] == 0.0


# -- HD95 -------------------------------------------------------------------------------------------

def test_hd95_brats2021_empty_rules_use_reference_grid_diagonal():
    empty = np.zeros((3, 4, 12), bool)
    voxel = empty.copy()
    voxel[1, 1, 1] = True
    assert hd95_brats2021(empty, empty) == 0.0
    assert hd95_brats2021(voxel, empty) == 13.0        # sqrt(9 + 16 + 144)
    assert hd95_brats2021(empty, voxel) == 13.0
    assert image_diagonal((240, 240, 155)) == pytest.approx(373.13, abs=0.005)


def test_hd95_single_voxels_at_known_distance():
    a = np.zeros((10, 10, 10), bool)
    b = a.copy()
    a[1, 1, 1] = True
    b[4, 5, 1] = True                                 # 3-4-5 triangle
    assert hd95_brats2021(a, b) == pytest.approx(5.0)
    assert hd95_brats2023(a, b, (1.0, 1.0, 1.0)) == pytest.approx(5.0)
    assert hd95_brats2023(a, b, (2.0, 2.0, 7.0)) == pytest.approx(10.0)


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")  # raised inside MONAI's own call
def test_hd95_pooled_percentile_differs_from_max_of_directed_percentiles():
    # Reference: one voxel. Prediction: that voxel plus one 10 voxels away. Surfaces are the voxels.
    # Prediction -> reference distances {0, 10}; reference -> prediction {0}.
    # Pooled {0, 0, 10}: 95th percentile at rank 0.95 * 2 = 1.9 -> 0 + 0.9 * 10 = 9.0 (BraTS 2021).
    # Per direction: {0, 10} -> 9.5 and {0} -> 0, max 9.5 (MONAI's and the 2023 convention).
    ref = np.zeros((12, 3, 3), bool)
    ref[0, 1, 1] = True
    pred = ref.copy()
    pred[10, 1, 1] = True
    assert hd95_brats2021(pred, ref) == pytest.approx(9.0)
    monai = compute_hausdorff_distance(torch.from_numpy(pred)[None, None].float(),
                                       torch.from_numpy(ref)[None, None].float(), percentile=95)
    assert monai.item() == pytest.approx(9.5)


def _medpy_like_hd95(pred, ref):
    # Independent statement of the BraTS 2021 rule with scipy only: erosion surfaces, EDT, pooled.
    def surface(mask):
        return mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(3, 1))
    sp, sr = surface(pred), surface(ref)
    d_pr = ndimage.distance_transform_edt(~sr)[sp]
    d_rp = ndimage.distance_transform_edt(~sp)[sr]
    return np.percentile(np.concatenate([d_pr, d_rp]), 95)


def test_hd95_brats2021_matches_independent_edt_computation():
    rng = np.random.default_rng(3)
    for _ in range(3):
        pred = ndimage.binary_opening(rng.random((20, 18, 16)) > 0.55)
        ref = ndimage.binary_opening(rng.random((20, 18, 16)) > 0.55)
        pred[0, :, :] = True                           # touching the image border counts as surface
        assert hd95_brats2021(pred, ref) == pytest.approx(_medpy_like_hd95(pred, ref), abs=1e-4)


def test_hd95_on_anisotropic_spacing_known_surface_distance():
    # A 20 x 20 x 2 slab and the same slab one voxel higher along z, with 3 mm slices. Every surface
    # point lies within one slice (3 mm) of the other surface, and the top and bottom faces (most of
    # the area) lie exactly one slice away, so the 95th percentile is 3 mm, i.e. 1 voxel.
    ref = np.zeros((24, 24, 8), bool)
    ref[2:22, 2:22, 3:5] = True
    pred = np.roll(ref, 1, axis=2)
    assert hd95_brats2023(pred, ref, (1.0, 1.0, 3.0)) == pytest.approx(3.0)
    assert hd95_brats2023(pred, ref, (0.5, 0.5, 1.0)) == pytest.approx(1.0)
    assert hd95_brats2021(pred, ref) == pytest.approx(1.0)


def test_hd95_brats2023_empty_rules():
    empty = np.zeros((6, 6, 6), bool)
    some = cube(empty.shape, (1, 1, 1), 2)
    assert hd95_brats2023(empty, empty, (1, 1, 1)) == 0.0
    assert hd95_brats2023(some, empty, (1, 1, 1)) == 374.0
    assert hd95_brats2023(empty, some, (1, 1, 1)) == 374.0


# -- BraTS 2023 lesion-wise -------------------------------------------------------------------------

SHAPE = (40, 20, 20)


def test_lesionwise_two_lesions_one_missed():
    # Two 4^3 = 64 mm^3 lesions far apart; the prediction finds the first exactly.
    ref = cube(SHAPE, (2, 8, 8), 4) | cube(SHAPE, (30, 8, 8), 4)
    pred = cube(SHAPE, (2, 8, 8), 4)
    scores = lesionwise_scores(pred, ref)
    assert (scores["tp"], scores["fn"], scores["fp"]) == (1, 1, 0)
    assert scores["dice"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["hd95"] == pytest.approx((0.0 + 374.0) / 2)
    # The whole-image Dice of the same case: 2 * 64 / (64 + 128).
    assert dice(pred, ref) == pytest.approx(2 / 3)


@pytest.mark.parametrize("gap, lesions, expected_dice", [(4, 1, 2 * 64 / (64 + 128)), (8, 2, 0.5)])
def test_lesionwise_lesions_merged_after_dilation(gap, lesions, expected_dice):
    # Dilating 3 times with the 18-connected element grows each lesion 3 voxels along an axis, so
    # lesions 4 voxels apart merge into one lesion and 8 voxels apart stay two.
    ref = cube(SHAPE, (2, 8, 8), 4) | cube(SHAPE, (2 + 4 + gap, 8, 8), 4)
    pred = cube(SHAPE, (2, 8, 8), 4)
    scores = lesionwise_scores(pred, ref)
    assert scores["tp"] + scores["fn"] == lesions
    assert scores["dice"] == pytest.approx(expected_dice)


def test_lesionwise_match_within_dilated_region_without_overlap():
    # A prediction 2 voxels beside the lesion (no overlap) lies in its dilated region: a match with
    # Dice 0 and a finite HD95, not a miss plus a false positive.
    ref = cube(SHAPE, (10, 8, 8), 4)
    pred = cube(SHAPE, (16, 8, 8), 4)
    scores = lesionwise_scores(pred, ref)
    assert (scores["tp"], scores["fn"], scores["fp"]) == (1, 0, 0)
    assert scores["dice"] == 0.0
    assert scores["hd95"] == pytest.approx(hd95_brats2023(pred, ref)) and scores["hd95"] < 374


def test_lesionwise_small_lesions_dropped_at_50_mm3():
    small = np.zeros(SHAPE, bool)
    small[5:10, 5:10, 5:7] = True                      # 50 voxels = 50 mm^3 at 1 mm: dropped (<= 50)
    empty = np.zeros(SHAPE, bool)
    assert lesionwise_scores(empty, small) == {"dice": 1.0, "hd95": 0.0, "tp": 0, "fn": 0, "fp": 0}
    # A prediction of a dropped lesion is not a false positive either.
    assert lesionwise_scores(small, small)["fp"] == 0
    # At 1.2 mm x 1 mm x 1 mm the same 50 voxels are 60 mm^3: kept, and missed.
    kept = lesionwise_scores(empty, small, spacing=(1.2, 1.0, 1.0))
    assert (kept["tp"], kept["fn"], kept["dice"], kept["hd95"]) == (0, 1, 0.0, 374.0)


def test_lesionwise_false_positive_and_empty_case():
    ref = cube(SHAPE, (2, 8, 8), 4)
    pred = ref | cube(SHAPE, (30, 2, 2), 2)            # an 8-voxel false positive: no size filter
    scores = lesionwise_scores(pred, ref)
    assert (scores["tp"], scores["fn"], scores["fp"]) == (1, 0, 1)
    assert scores["dice"] == pytest.approx(0.5)
    assert scores["hd95"] == pytest.approx(187.0)
    empty = np.zeros(SHAPE, bool)
    assert lesionwise_scores(empty, empty) == {"dice": 1.0, "hd95": 0.0, "tp": 0, "fn": 0, "fp": 0}


def test_lesionwise_brats2023_per_region_from_labels():
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:10, 4:12, 4:12] = 2                         # oedema around
    ref[4:8, 6:10, 6:10] = 3                          # an enhancing core of 64 voxels
    pred = ref.copy()
    pred[pred == 3] = 1                                # core called necrosis: ET missed, TC right
    scores = lesionwise_brats2023(pred, ref)
    assert set(scores) == {"TC", "WT", "ET"}
    assert scores["WT"]["dice"] == 1.0 and scores["TC"]["dice"] == 1.0
    assert (scores["ET"]["fn"], scores["ET"]["dice"], scores["ET"]["hd95"]) == (1, 0.0, 374.0)


# -- ATLAS 2022 -------------------------------------------------------------------------------------

def test_atlas_counts_use_six_connectivity():
    diagonal = np.zeros((4, 4, 4), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 0] = True       # touching at an edge: two 6-connected lesions
    one = np.zeros_like(diagonal)
    one[0, 0, 0] = True
    assert simple_lesion_count(one, diagonal) == 1
    assert lesion_detection_counts(one, diagonal) == {"tp": 1, "fp": 0, "fn": 1}
    assert lesion_f1(one, diagonal) == pytest.approx(1 / (1 + 0.5))


def test_lesion_f1_with_false_positive_and_empty():
    ref = cube((12, 12, 12), (1, 1, 1), 3)
    pred = cube((12, 12, 12), (2, 2, 2), 3) | cube((12, 12, 12), (8, 8, 8), 2)
    assert lesion_detection_counts(pred, ref) == {"tp": 1, "fp": 1, "fn": 0}
    assert lesion_f1(pred, ref) == pytest.approx(1 / (1 + 0.5))
    empty = np.zeros_like(ref)
    assert lesion_f1(empty, empty) == 1.0
    assert lesion_f1(pred, empty) == 0.0 and lesion_f1(empty, ref) == 0.0
    assert math.isclose(simple_lesion_count(pred, ref), 1)


# -- BraTS 2024 (post-treatment) ------------------------------------------------------------------

def _brats2024_case():
    # Reference: a 4^3 cavity (RC, label 4) far from a tumour: an 8^3 SNFH block (label 2) holding a
    # 3x4x4 NETC core (label 1, 48 voxels) and a 2x4x4 ET part (label 3, 32 voxels).
    shape = (48, 24, 24)
    ref = np.zeros(shape, np.uint8)
    ref[2:6, 8:12, 8:12] = 4
    ref[20:28, 8:16, 8:16] = 2
    ref[21:24, 10:14, 10:14] = 1
    ref[25:27, 10:14, 10:14] = 3
    # Prediction: RC, SNFH and NETC right, the ET part called SNFH (missed), plus two false
    # positives far away: a 27-voxel NETC cube and an 8-voxel ET cube.
    pred = ref.copy()
    pred[pred == 3] = 2
    pred[40:43, 2:5, 2:5] = 1
    pred[40:42, 18:20, 18:20] = 3
    return pred, ref


def test_brats2024_lesionwise_each_region_by_hand():
    pred, ref = _brats2024_case()
    scores = metrics.lesionwise_brats2024(pred, ref)
    assert list(scores) == ["ET", "NETC", "SNFH", "RC", "TC", "WT"]
    by_region = {r: (s["tp"], s["fn"], s["fp"]) for r, s in scores.items()}
    # The 8-voxel ET false positive is removed before matching (<= 10 voxels for ET, <= 20 for TC/WT);
    # the 27-voxel NETC one is kept and counted in NETC, TC and WT.
    assert by_region == {"ET": (0, 1, 0), "NETC": (1, 0, 1), "SNFH": (1, 0, 0), "RC": (1, 0, 0),
                         "TC": (1, 0, 1), "WT": (1, 0, 1)}
    assert (scores["ET"]["dice"], scores["ET"]["hd95"]) == (0.0, 337.0)           # missed: 0 and 337
    assert (scores["RC"]["dice"], scores["RC"]["hd95"]) == (1.0, 0.0)
    assert scores["NETC"]["dice"] == 0.5 and scores["NETC"]["hd95"] == pytest.approx(337 / 2)
    assert scores["WT"]["dice"] == 0.5 and scores["WT"]["hd95"] == pytest.approx(337 / 2)
    # TC lesion: NETC + ET (80 voxels) against the predicted NETC (48): 2 * 48 / 128, over 1 + 1 FP.
    assert scores["TC"]["dice"] == pytest.approx(0.75 / 2)
    # SNFH: reference 512 - 80 = 432 voxels, prediction 432 + the 32 ET voxels: 2 * 432 / 896.
    assert scores["SNFH"]["dice"] == pytest.approx(864 / 896)
    # The 2023 rules keep the 8-voxel ET false positive (no size filter) and penalise 374.
    masks_pred = get_scheme("brats2024").region_masks(pred)
    masks_ref = get_scheme("brats2024").region_masks(ref)
    assert lesionwise_scores(masks_pred["ET"], masks_ref["ET"])["fp"] == 1
    # Whole-image ("legacy") figures: ET has no overlap but both masks are present: finite HD95.
    assert dice(masks_pred["ET"], masks_ref["ET"]) == 0.0
    assert metrics.hd95_brats2024(masks_pred["ET"], masks_ref["ET"]) < 337
    assert metrics.hd95_brats2024(masks_pred["ET"], np.zeros_like(masks_ref["ET"])) == 337.0


def test_brats2024_cavities_merge_at_dilation_5_not_3():
    # Two 4^3 cavities 8 voxels apart: dilated 5 times (RC) they touch, 3 times (2023, ET) they do not.
    ref = cube((40, 16, 16), (2, 6, 6), 4, np.uint8) | cube((40, 16, 16), (14, 6, 6), 4, np.uint8)
    label = (ref * 4).astype(np.uint8)
    rc = metrics.lesionwise_brats2024(label, label)["RC"]
    assert (rc["tp"], rc["fn"], rc["fp"], rc["dice"]) == (1, 0, 0, 1.0)
    assert lesionwise_scores(ref, ref, dilation_iterations=3)["tp"] == 2


def test_plain_hd95_mm_empty_rules_and_spacing():
    empty = np.zeros((3, 4, 5), bool)
    voxel = empty.copy()
    voxel[0, 0, 0] = True
    assert metrics.hd95_mm(empty, empty) == 0.0
    # One empty mask: the grid diagonal in mm, sqrt(3^2 + 8^2 + 5^2) at 1 x 2 x 1 mm.
    assert metrics.hd95_mm(voxel, empty, (1.0, 2.0, 1.0)) == pytest.approx(math.sqrt(9 + 64 + 25))
    other = empty.copy()
    other[0, 3, 0] = True
    assert metrics.hd95_mm(voxel, other, (1.0, 2.0, 1.0)) == pytest.approx(6.0)


def test_lesion_f1_connectivity_26_joins_diagonal_voxels():
    diagonal = np.zeros((4, 4, 4), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = True       # corner-touching: one lesion at 26, two at 6
    one = np.zeros_like(diagonal)
    one[0, 0, 0] = True
    assert lesion_detection_counts(one, diagonal, connectivity=26) == {"tp": 1, "fp": 0, "fn": 0}
    assert lesion_f1(one, diagonal, connectivity=6) == pytest.approx(2 / 3)
