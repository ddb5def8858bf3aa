"""Carrying a label map onto a grid a few degrees away: region by region beats nearest neighbour."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from brainsegfounder.clinical.native import carry_label
from brainsegfounder.clinical.truth import dice
from brainsegfounder.data.regions import get_scheme


def _tumour_on(grid: sitk.Image) -> np.ndarray:
    """A BraTS-like tumour drawn exactly on ``grid``'s voxel centres: oedema ball, core, a 2 mm enhancing rim."""
    shape = sitk.GetArrayViewFromImage(grid).shape
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape[::-1]], indexing="ij"), -1).reshape(-1, 3)
    points = np.array([grid.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in index.astype(float)])
    r = np.linalg.norm(points - np.array([20.0, 21.0, 19.0]), axis=1).reshape(shape[::-1]).transpose(2, 1, 0)
    label = np.zeros(shape, np.uint8)
    label[r < 14] = 2
    label[r < 9] = 1
    label[(r >= 7) & (r < 9)] = 4
    return label


def test_regions_carried_linearly_agree_with_the_truth_better_than_nearest_neighbour():
    scheme = get_scheme("brats2021")
    source = sitk.Image(40, 42, 38, sitk.sitkUInt8)
    target = sitk.Image(40, 42, 38, sitk.sitkUInt8)
    rotation = sitk.VersorTransform((0.0, 0.0, 1.0), np.deg2rad(7.0))
    target.SetDirection(rotation.GetMatrix())
    target.SetOrigin((1.3, -1.6, 0.4))
    drawn = sitk.GetImageFromArray(_tumour_on(source))
    drawn.CopyInformation(source)
    truth = scheme.region_masks(_tumour_on(target))  # the same tumour, drawn on the target grid
    carried = scheme.region_masks(sitk.GetArrayFromImage(carry_label(drawn, target, sitk.Transform(), scheme)))
    nearest = scheme.region_masks(sitk.GetArrayFromImage(
        sitk.Resample(drawn, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0)))
    for name in ("TC", "WT", "ET"):
        assert dice(carried[name], truth[name]) > dice(nearest[name], truth[name]), name
    assert dice(carried["ET"], truth["ET"]) > 0.9
