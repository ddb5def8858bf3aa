"""Raw clinical studies from synthetic cases: a head, each series on its own grid after head motion, DICOM + NIfTI.

A synthetic case (:mod:`brainsegfounder.data.synthetic`) is prepared the BraTS way: skull-stripped,
co-registered, one isotropic grid. :func:`write_raw_study` turns it into what a hospital exports:

1. a head around the brain (:mod:`.head`: CSF rim, skull with marrow, muscle, fat, skin, noisy air);
2. per series a known random rigid head motion (up to 4 degrees and 4 mm on each axis, about the
   head's centre) and its own clinical grid and orientation (:data:`GRIDS`), with the slice
   thickness simulated by a Gaussian blur along each axis;
3. written as DICOM series (one file per slice, :mod:`.dicom`) with a three-plane localizer that
   readers must skip, and as NIfTI (the same voxel values);
4. the truth beside it: the motions (JSON, and SimpleITK ``.tfm``), the brain mask and labels on
   every native grid.

Folders under ``out``::

    dicom/<case_id>/<NN>_<modality>/IM0001.dcm ...   (and 00_localizer/)
    nifti/<case_id>/<case_id>_<modality>.nii.gz      (each on its own grid, skull on)
    truth/<case_id>/motion.json, <modality>_motion.tfm, <modality>_brain.nii.gz, <modality>_seg.nii.gz

``motion.json`` holds, per modality, the rigid transform that maps a point of that series'
scanner space (LPS, mm) to where the same tissue lies in the source case (``matrix``, 4 x 4; with
``rotation_deg``, ``translation_mm`` and ``center_mm`` of the Euler angles). Hand-written glue:
SimpleITK resamples, pydicom writes.

Example:
    >>> from brainsegfounder.data.synthetic import generate  # doctest: +SKIP
    >>> generate("brats2021", "data/syn", subjects=1, raw="data/syn_raw", raw_grids="small")  # doctest: +SKIP

or ``python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 1 --out data/syn --raw data/syn_raw``.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from brainsegfounder.data.geometry import grid_covering, matrix_of
from brainsegfounder.utils.errors import ConfigError

__all__ = ["GRIDS", "write_raw_study", "write_raw_studies", "MAX_ROTATION_DEG", "MAX_SHIFT_MM"]

#: Per preset, per modality: (voxel size: columns, rows, slices in mm; orientation; series number).
GRIDS: dict[str, dict[str, tuple[tuple[float, float, float], str, int]]] = {
    "clinical": {"flair": ((0.9, 0.9, 5.0), "axial", 3), "t1ce": ((1.0, 1.0, 1.0), "sagittal", 7),
                 "t1": ((1.0, 1.0, 1.0), "axial", 4), "t2": ((0.5, 0.5, 4.0), "axial", 5)},
    # Every series 1 mm isotropic (other orientations and motions kept): what is lost to thick
    # slices is then out of the comparison, and only the preparation's own error is left.
    "isotropic": {"flair": ((1.0, 1.0, 1.0), "axial", 3), "t1ce": ((1.0, 1.0, 1.0), "sagittal", 7),
                  "t1": ((1.0, 1.0, 1.0), "axial", 4), "t2": ((1.0, 1.0, 1.0), "coronal", 5)},
    # For tests: the same orientations, coarser (a 2 mm source case).
    "small": {"flair": ((1.8, 1.8, 5.0), "axial", 3), "t1ce": ((2.0, 2.0, 2.0), "sagittal", 7),
              "t1": ((2.0, 2.0, 2.0), "axial", 4), "t2": ((1.5, 1.5, 4.0), "axial", 5)},
}
#: Row direction, column direction (LPS) of each orientation, as scanners write them.
_ORIENTATIONS = {"axial": ((1, 0, 0), (0, 1, 0)), "sagittal": ((0, 1, 0), (0, 0, -1)),
                 "coronal": ((1, 0, 0), (0, 0, -1))}
MAX_ROTATION_DEG = 4.0
MAX_SHIFT_MM = 4.0
_MARGIN_MM = 8.0


def _direction(orientation: str) -> np.ndarray:
    """Columns: the row, column and slice directions (LPS) of a series in this orientation."""
    row, column = (np.array(v, float) for v in _ORIENTATIONS[orientation])
    return np.stack([row, column, np.cross(row, column)], axis=1)


def _motion(rng: np.random.Generator, centre: np.ndarray):
    import SimpleITK as sitk

    angles = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3)
    shift = rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, 3)
    transform = sitk.Euler3DTransform(centre.tolist(), *np.deg2rad(angles).tolist(), shift.tolist())
    return transform, angles, shift


def _blurred(world, direction: np.ndarray, spacing, world_spacing: float):
    """``world`` blurred along each scanner axis to the series' voxel size (thick slices average)."""
    import SimpleITK as sitk

    variance = [0.0, 0.0, 0.0]
    for k in range(3):
        axis = int(np.argmax(np.abs(direction[:, k])))
        variance[axis] = max(spacing[k] ** 2 - world_spacing**2, 0.0) / 2.355**2
    return sitk.DiscreteGaussian(world, variance=variance, maximumKernelWidth=64, useImageSpacing=True)


def _series_rng(seed: int, case_id: str, modality: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(case_id.encode()), zlib.crc32(modality.encode())])


def write_raw_study(case, out: str | Path, seed: int = 0, grids: str = "clinical") -> dict:
    """Write ``case`` (a skull-stripped synthetic case on disk) as a raw study under ``out``.

    Args:
        case: a :class:`~brainsegfounder.data.layouts.CaseFiles` with images (modality names
            :data:`~brainsegfounder.data.synthetic.contrasts.CONTRAST` knows) and a label.
        out: the raw studies' root (``dicom/``, ``nifti/``, ``truth/`` go under it).
        seed: random seed of the motions, shells and noise.
        grids: a :data:`GRIDS` preset: ``clinical`` (FLAIR 0.9 x 0.9 x 5 mm axial, T1ce 1 mm
            sagittal, T1 1 mm axial, T2 0.5 x 0.5 x 4 mm axial), ``isotropic`` (every series 1 mm, T2
            coronal) or ``small`` (coarser, for tests).

    Returns:
        The truth (what ``motion.json`` holds).
    """
    import nibabel as nib
    import SimpleITK as sitk
    from torchio.data.io import nib_to_sitk

    from brainsegfounder.data.synthetic.contrasts import CONTRAST
    from brainsegfounder.data.synthetic.dicom import SEQUENCES, Study, stored_values, uid, write_series
    from brainsegfounder.data.synthetic.head import add_head

    if grids not in GRIDS:
        raise ConfigError(f"unknown raw grid preset {grids!r}; choose one of {', '.join(GRIDS)}.")
    out, cid = Path(out), case.subject_id
    first = nib.load(next(iter(case.images.values())))
    affine = first.affine
    spacing = float(np.abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    images = {m: np.asarray(nib.load(p).dataobj, np.float32) for m, p in case.images.items()}
    brain = np.any([img != 0 for img in images.values()], axis=0)
    has_label = case.label is not None and Path(case.label).exists()
    label = np.asarray(nib.load(case.label).dataobj, np.uint8) if has_label else np.zeros_like(brain, np.uint8)
    head = add_head(images, brain, spacing, np.random.default_rng([int(seed), zlib.crc32(cid.encode())]))
    world_affine = head.affine(affine)

    def world(array):
        return nib_to_sitk(np.asarray(array)[None], world_affine)

    label_world = world(np.pad(label, head.pad))
    brain_world = world(head.brain.astype(np.uint8))
    idx = np.argwhere(head.head)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (idx.max(0) - idx.min(0)) + idx.min(0)
    corners = np.array([brain_world.TransformContinuousIndexToPhysicalPoint(p.astype(float).tolist()) for p in corners])
    centre = np.array(brain_world.TransformContinuousIndexToPhysicalPoint(idx.mean(0).tolist()))
    study = Study(patient_id=cid, study_uid=uid(seed, cid, "study"), frame_uid=uid(seed, cid, "frame"))
    truth: dict = {"case_id": cid, "source": {m: str(p) for m, p in case.images.items()}, "grids": grids,
                   "seed": int(seed), "space": "LPS mm (DICOM patient coordinates)", "series": {}}
    folders = {k: out / k / cid for k in ("dicom", "nifti", "truth")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for modality, image in head.images.items():
        contrast = CONTRAST.get(modality.lower())
        if contrast is None or contrast not in GRIDS[grids]:
            raise ConfigError(f"{cid}: no clinical grid for modality {modality!r} (known: {', '.join(GRIDS[grids])}).")
        voxel, orientation, number = GRIDS[grids][contrast]
        direction = _direction(orientation)
        transform, angles, shift = _motion(_series_rng(seed, cid, modality), centre)
        grid = grid_covering(corners, direction, voxel, _MARGIN_MM)
        source = _blurred(world(image), direction, voxel, spacing)
        native = stored_values(sitk.Resample(source, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        tags = dict(SEQUENCES[contrast])
        series_uid = uid(study.study_uid, number, modality)
        files = write_series(native, folders["dicom"] / f"{number:02d}_{modality}", study, number, tags, series_uid)
        sitk.WriteImage(native, str(folders["nifti"] / f"{cid}_{modality}.nii.gz"))
        for name, volume in (("brain", brain_world), ("seg", label_world)):
            on_grid = sitk.Resample(volume, grid, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            sitk.WriteImage(on_grid, str(folders["truth"] / f"{modality}_{name}.nii.gz"))
        sitk.WriteTransform(transform, str(folders["truth"] / f"{modality}_motion.tfm"))
        truth["series"][modality] = {
            "series_uid": series_uid, "series_number": number, "description": tags["SeriesDescription"],
            "voxel_mm": list(voxel), "orientation": orientation, "size": list(grid.GetSize()), "files": len(files),
            "rotation_deg": angles.round(4).tolist(), "translation_mm": shift.round(4).tolist(),
            "center_mm": centre.round(4).tolist(), "matrix": matrix_of(transform).round(8).tolist()}
    _localizer(head.images, world, centre, folders["dicom"] / "00_localizer", study)
    (folders["truth"] / "motion.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _localizer(images: dict, world, centre: np.ndarray, folder: Path, study) -> None:
    """A three-plane scout (one axial, one sagittal, one coronal slice): readers must skip it."""
    import SimpleITK as sitk

    from brainsegfounder.data.synthetic.dicom import LOCALIZER, uid, write_series

    source = world(next(iter(images.values())))
    series_uid = uid(study.study_uid, "localizer")
    for k, orientation in enumerate(("axial", "sagittal", "coronal")):
        direction = _direction(orientation)
        grid = sitk.Image([96, 96, 1], sitk.sitkUInt8)
        grid.SetSpacing([2.5, 2.5, 8.0])
        grid.SetDirection(direction.ravel().tolist())
        grid.SetOrigin((centre - direction @ np.array([48 * 2.5, 48 * 2.5, 0.0])).tolist())
        plane = sitk.Resample(source, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        write_series(plane, folder, study, 1, dict(LOCALIZER), series_uid, prefix="LOC", first=k + 1)


def write_raw_studies(cases: list, out: str | Path, seed: int = 0, grids: str = "clinical",
                      overwrite: bool = False) -> list[Path]:
    """:func:`write_raw_study` for each case; a study whose ``motion.json`` exists is kept unless ``overwrite``.

    Returns the DICOM study folders (one per case: what ``predict --input`` takes).
    """
    out = Path(out)
    folders = []
    for case in cases:
        if overwrite or not (out / "truth" / case.subject_id / "motion.json").exists():
            write_raw_study(case, out, seed, grids)
        folders.append(out / "dicom" / case.subject_id)
    return folders
