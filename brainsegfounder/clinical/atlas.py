"""Prepare into an atlas space: the prepared brain rigidly registered to a template brain.

BraTS cases lie in the SRI24 atlas space, UK Biobank and ATLAS v2.0 in MNI152: a model trained on
them has seen brains only in that position, orientation and field of view, while a clinical head
lies as the patient lay in the scanner. ``--atlas`` moves the prepared case there:

- ``mni152``: nilearn's MNI152 2009 symmetric T1 template, brain only (1 mm, 197 x 233 x 189),
  which nilearn's wheel carries (nothing is downloaded);
- a path: any brain-only T1 template NIfTI (for BraTS checkpoints SRI24's T1 brain, obtained once
  from its publisher; this tool does not ship it).

:func:`to_atlas` registers the skull-stripped T1-weighted image to the template (SimpleITK: rigid
Euler3D started from the two brains' centres of mass, Mattes mutual information, the same three
levels as the series registration, :func:`~brainsegfounder.clinical.registration.register`),
checks it (mutual information improved, a rotation under :data:`MAX_ATLAS_ROTATION_DEG`, the brain
over the template's brain with Dice at least :data:`MIN_BRAIN_DICE`: across subjects and contrasts the
normalised mutual information says too little), and resamples every native
series once onto the template's field of view at the prepared spacing, through the chain
template -> reference series -> that series (so each series is interpolated once). Rigid only:
volumes stay the patient's own (an affine fit to the template, as BraTS's own pipeline does, would
scale them by the head's size).

Example:
    >>> from brainsegfounder.clinical.atlas import load_atlas
    >>> template, name = load_atlas("mni152")
    >>> template.GetSize(), name
    ((197, 233, 189), 'mni152')
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from brainsegfounder.utils.errors import DataError

__all__ = ["load_atlas", "to_atlas", "chain", "MAX_ATLAS_ROTATION_DEG", "MIN_BRAIN_DICE"]

#: A head lies within this angle of the template's axes; a larger rotation is a failed registration.
MAX_ATLAS_ROTATION_DEG = 45.0
#: The registered brain (its non-zero voxels) must overlap the template's brain at least this much
#: (Dice). Brains differ in shape, so a rigid fit is not 1; a failed one falls far below.
MIN_BRAIN_DICE = 0.8


def load_atlas(atlas: str | Path):
    """The template as a SimpleITK float32 image, and its name for the record."""
    import SimpleITK as sitk

    if str(atlas).lower() == "mni152":
        import tempfile

        import nibabel as nib
        from nilearn import datasets

        with tempfile.TemporaryDirectory() as folder:  # nibabel's RAS affine -> SimpleITK's LPS grid
            nib.save(datasets.load_mni152_template(resolution=1), f"{folder}/mni152.nii.gz")
            return sitk.ReadImage(f"{folder}/mni152.nii.gz", sitk.sitkFloat32), "mni152"
    path = Path(atlas).expanduser()
    if not path.is_file():
        raise DataError(f"--atlas {atlas}: neither 'mni152' nor a file. Give a brain-only T1 template NIfTI "
                        "(e.g. SRI24's T1 brain for BraTS checkpoints).")
    return sitk.ReadImage(str(path), sitk.sitkFloat32), path.name


def chain(first, then):
    """One affine transform doing ``first`` and then ``then`` (SimpleITK transforms, points in, points out)."""
    import SimpleITK as sitk

    from brainsegfounder.data.geometry import matrix_of

    matrix = matrix_of(then) @ matrix_of(first)
    out = sitk.AffineTransform(3)
    out.SetMatrix(matrix[:3, :3].ravel().tolist())
    out.SetTranslation(matrix[:3, 3].tolist())
    return out


def to_atlas(atlas: str | Path, native: dict, transforms: dict, brain, mask, spacing: float,
             interpolation: str = "bspline"):
    """The prepared case moved into the atlas space (see the module's text).

    Args:
        atlas: ``mni152`` or a template file.
        native: modality -> the series as read (SimpleITK).
        transforms: modality -> reference points -> series points (the series registrations).
        brain: the skull-stripped T1-weighted image on the reference grid (what is registered).
        mask: the brain mask on the reference grid, or ``None`` (the input was skull-stripped).
        spacing: the prepared grid's voxel size (mm).
        interpolation: how the series are resampled (:func:`~.prepare.resample_series`).

    Returns ``(images, grid, transforms, record, mask, to_reference)``: the images and mask on the
    atlas grid, the transforms from atlas points to each series, what ``preparation.json`` keeps
    under ``atlas``, and the registration itself (atlas points -> reference points).
    """
    import SimpleITK as sitk

    from brainsegfounder.clinical.prepare import resample_series
    from brainsegfounder.clinical.registration import normalised_mi, register
    from brainsegfounder.data.geometry import corners, grid_covering

    template, name = load_atlas(atlas)
    start = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        template, brain, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS))
    result = register(template, brain, start=start)  # atlas points -> reference points
    moved = sitk.Resample(brain, template, result.transform, sitk.sitkLinear, 0.0)
    nmi = normalised_mi(sitk.GetArrayViewFromImage(template), sitk.GetArrayViewFromImage(moved))
    ours, theirs = sitk.GetArrayViewFromImage(moved) > 0, sitk.GetArrayViewFromImage(template) > 0
    overlap = 2.0 * float((ours & theirs).sum()) / max(float(ours.sum() + theirs.sum()), 1.0)
    problems = []
    if result.metric_after > result.metric_before + 1e-6:
        problems.append(f"the mutual information got worse ({result.metric_before:.4f} -> {result.metric_after:.4f})")
    if result.rotation_deg > MAX_ATLAS_ROTATION_DEG:
        problems.append(f"it found a rotation of {result.rotation_deg:.0f} degrees (at most {MAX_ATLAS_ROTATION_DEG:g})")
    if overlap < MIN_BRAIN_DICE or math.isnan(nmi):
        problems.append(f"the brain covers the template's brain poorly (Dice {overlap:.2f} < {MIN_BRAIN_DICE})")
    if problems:
        raise DataError(f"registration of the prepared brain to the atlas {name} did not converge: "
                        f"{'; '.join(problems)}. Look at the brain mask (preparation/brain_mask.nii.gz), or "
                        "prepare without --atlas.")
    grid = grid_covering(corners(template), np.diag([-1.0, -1.0, 1.0]), (float(spacing),) * 3)
    moved_transforms = {m: chain(result.transform, t) for m, t in transforms.items()}
    images = {m: resample_series(native[m], grid, moved_transforms[m], interpolation) for m in native}
    if mask is not None:
        mask = sitk.Resample(mask, grid, result.transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        images = {m: sitk.Mask(image, mask) for m, image in images.items()}
    record = {"name": name, "source": str(atlas), "rigid": True, "registration": {**result.to_dict(),
              "normalised_mi": round(nmi, 4), "brain_dice": round(overlap, 4)}, "transform": "preparation/atlas.tfm"}
    return images, grid, moved_transforms, record, mask, result.transform
