"""Check a preparation against the synthetic raw study's truth: registration error, brain mask, labels.

The raw-study generator (:mod:`brainsegfounder.data.synthetic.raw`) records, per series, the
rigid motion that maps that series' scanner points to the source case (``truth/<case>/``). A
prepared case records, per series, the transform it found from the prepared grid (the reference
series' frame) to the series. So the true transform is ``inv(motion[series]) @ motion[reference]``,
and :func:`registration_errors` reports, per series, the mean distance (mm) between where the
found and the true transforms send the brain's voxels (with ``--atlas``, the series' own registration,
the atlas step taken out). :func:`truth_on_prepared` puts the
source case's brain mask and labels on the prepared grid; :func:`dice` compares masks.

Given the region scheme, :func:`truth_on_prepared` carries a label map region by region
(:func:`~brainsegfounder.clinical.native.carry_label`, which says why), as predict writes labels back.

Example:
    >>> import numpy as np
    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainsegfounder.clinical.native import carry_label
from brainsegfounder.clinical.prepare import PreparedCase
from brainsegfounder.clinical.registration import registration_error
from brainsegfounder.data.geometry import image_of_geometry, matrix_of, physical_points

__all__ = ["registration_errors", "truth_on_prepared", "dice"]


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
