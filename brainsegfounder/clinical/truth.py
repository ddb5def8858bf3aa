"""Check a preparation against the synthetic raw study's truth: registration error, brain mask, labels.

The raw-study generator (:mod:`brainsegfounder.data.synthetic.raw`) records, per series, the
rigid motion that maps that series' scanner points to the source case (``truth/<case>/``). A
prepared case records, per series, the transform it found from the prepared grid (the reference
series' frame) to the series. So the true transform is ``inv(motion[series]) @ motion[reference]``,
and :func:`registration_errors` reports, per series, the mean distance (mm) between where the
found and the true transforms send the brain's voxels (with ``--atlas``, the series' own registration,
the atlas step taken out). :func:`truth_on_prepared` puts the
source case's brain mask and labels on the prepared grid; :func:`dice` compares masks.

A label map carried onto another voxel grid by nearest neighbour loses up to half a voxel at every
boundary, which costs a thin region (BraTS's enhancing rim) several points of Dice on grids a few
degrees apart, whatever the segmentation. :func:`carry_label` carries it the way nnU-Net resamples
segmentations: each region as a 0/1 image, linear interpolation, kept where at least half the
voxel is inside, then painted back into labels.

Example:
    >>> import numpy as np
    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    >>> import SimpleITK as sitk
    >>> from brainsegfounder.data.regions import get_scheme
    >>> label = np.zeros((6, 6, 6), np.uint8); label[1:5, 1:5, 1:5] = 2; label[2:4, 2:4, 2:4] = 4
    >>> image = sitk.GetImageFromArray(label)
    >>> moved = carry_label(image, image, sitk.TranslationTransform(3, (0.4, 0, 0)), get_scheme("brats2021"))
    >>> (sitk.GetArrayFromImage(moved) == label).all()  # less than half a voxel: the same voxels
    np.True_
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainsegfounder.clinical.prepare import PreparedCase
from brainsegfounder.clinical.registration import registration_error
from brainsegfounder.data.geometry import image_of_geometry, matrix_of, physical_points

__all__ = ["registration_errors", "truth_on_prepared", "carry_label", "dice"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two masks (1.0 when both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _motions(truth: Path) -> dict[str, np.ndarray]:
    series = json.loads((Path(truth) / "motion.json").read_text())["series"]
    return {m: np.array(info["matrix"]) for m, info in series.items()}


def registration_errors(case: PreparedCase, truth: str | Path) -> dict[str, float]:
    """Per series: mean distance (mm) over the reference's brain voxels between found and true transforms."""
    import SimpleITK as sitk

    truth = Path(truth)
    motion = _motions(truth)
    ref = case.record["reference"]
    brain = sitk.ReadImage(str(truth / f"{ref}_brain.nii.gz"))
    points = physical_points(brain, sitk.GetArrayViewFromImage(brain) > 0)
    return {m: registration_error(matrix_of(case.series_transform(m)), np.linalg.inv(motion[m]) @ motion[ref], points)
            for m in case.record["series"] if m != ref}


def carry_label(label, grid, transform, scheme):
    """A SimpleITK label map carried onto ``grid`` through ``transform`` (grid points -> label's points),
    region by region: linear interpolation of each region's 0/1 image, kept where it is at least 0.5,
    painted back as :meth:`RegionScheme.label_from_channels` does (the module's text says why)."""
    import SimpleITK as sitk

    channels = scheme.channel_masks(sitk.GetArrayViewFromImage(label))
    moved = []
    for channel in channels:
        image = sitk.GetImageFromArray(channel.astype(np.float32))
        image.CopyInformation(label)
        resampled = sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        moved.append(sitk.GetArrayViewFromImage(resampled) >= 0.5)
    out = sitk.GetImageFromArray(scheme.label_from_channels(np.stack(moved)))
    out.CopyInformation(grid)
    return out


def truth_on_prepared(case: PreparedCase, truth: str | Path, source: str | Path, scheme=None):
    """A volume of the source case on the prepared grid: by nearest neighbour (any image), or, given its
    region ``scheme``, a label map carried region by region (:func:`carry_label`)."""
    import SimpleITK as sitk

    ref = case.record["reference"]
    from brainsegfounder.clinical.atlas import chain

    to_world = sitk.ReadTransform(str(Path(truth) / f"{ref}_motion.tfm"))  # reference points -> source case
    grid = image_of_geometry(case.record["grid"])
    transform = chain(case.to_reference(), to_world)
    if scheme is not None:
        return carry_label(sitk.ReadImage(str(source)), grid, transform, scheme)
    return sitk.Resample(sitk.ReadImage(str(source)), grid, transform, sitk.sitkNearestNeighbor, 0)
