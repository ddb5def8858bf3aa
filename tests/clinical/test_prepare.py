"""Preparing a raw DICOM study: registration against the known motion, brain extraction against the
generated brain mask, the stored transforms, and the prepared case predict reads unchanged."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from brainsegfounder.clinical.brain import FALLBACK
from brainsegfounder.clinical.prepare import load_prepared, prepare_study, resample_series, thick_series
from brainsegfounder.clinical.truth import dice, registration_errors, truth_on_prepared
from brainsegfounder.inference.inputs import find_inputs
from brainsegfounder.utils.errors import DataError
from tests.clinical.conftest import CASE, MODALITIES


def test_every_series_is_registered_within_a_millimetre_of_the_true_motion(prepared, raw_study):
    errors = registration_errors(prepared, raw_study / "raw" / "truth" / CASE)
    assert set(errors) == set(MODALITIES) - {prepared.record["reference"]}
    assert max(errors.values()) <= 1.0, errors
    for modality in errors:
        assert prepared.record["series"][modality]["registration"]["normalised_mi"] > 1.05


def test_the_brain_is_extracted_and_said_to_be_the_fallback(prepared, raw_study):
    stripping = prepared.record["skull_strip"]
    assert stripping["stripped"] and stripping["method"] == FALLBACK and "not HD-BET" in stripping["method"]
    assert stripping["reference_zero_fraction"] < 0.05
    truth = truth_on_prepared(prepared, raw_study / "raw" / "truth" / CASE,
                              raw_study / "cases" / CASE / f"{CASE}_t1.nii.gz")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(prepared.folder / stripping["mask"])))
    assert dice(mask, sitk.GetArrayFromImage(truth) > 0) >= 0.9
    flair = np.asarray(nib.load(prepared.images["flair"]).dataobj)
    assert (flair[mask.transpose() == 0] == 0).all() and (flair == 0).mean() > 0.3  # BraTS-like background


def test_the_prepared_case_is_a_brats_case_folder_on_the_asked_grid(prepared):
    case = find_inputs([prepared.folder], MODALITIES)[0]
    assert case.subject_id == CASE and list(case.images) == list(MODALITIES)
    affines = [nib.load(p).affine for p in case.images.values()]
    assert all(np.allclose(a, affines[0]) for a in affines)
    assert np.allclose(np.diag(affines[0])[:3], 2.0)  # RAS, 2 mm
    record = json.loads((prepared.folder / "preparation" / "preparation.json").read_text())
    assert record["reference"] == "t1ce" and record["volumes_on"].startswith("the prepared grid (2 mm")
    assert record["interpolation"] == "bspline"
    assert thick_series(record) == {"flair": 5.0, "t2": 4.0}  # the small grids' thick FLAIR and T2
    for modality in MODALITIES:
        assert (prepared.folder / record["series"][modality]["transform"]).exists()
        assert record["series"][modality]["series_instance_uid"] and record["series"][modality]["files"]
    assert load_prepared(prepared.folder).record == record


def test_bspline_resampling_keeps_what_linear_blurs_and_stays_in_the_series_range(raw_study):
    """Half a voxel there and back (what a rotated grid does to many voxels): linear interpolation
    blurs the image twice; the cubic B-spline nearly gives it back, without values the series lacks."""
    image = sitk.ReadImage(str(raw_study / "cases" / CASE / f"{CASE}_t1.nii.gz"), sitk.sitkFloat32)
    there, back = sitk.TranslationTransform(3, (1.0, 0.6, 0.4)), sitk.TranslationTransform(3, (-1.0, -0.6, -0.4))
    original = sitk.GetArrayFromImage(image)
    inside = np.zeros(original.shape, bool)
    inside[4:-4, 4:-4, 4:-4] = True  # away from the field of view's edge (0 comes in there)
    error = {}
    for interpolation in ("linear", "bspline"):
        moved = resample_series(resample_series(image, image, there, interpolation), image, back, interpolation)
        values = sitk.GetArrayFromImage(moved)
        assert values.min() >= min(original.min(), 0) and values.max() <= original.max()
        error[interpolation] = float(np.abs(values - original)[inside].mean())
    assert error["bspline"] < 0.6 * error["linear"], error


def test_a_series_that_does_not_register_is_refused_by_name(study_copy, tmp_path):
    rng = np.random.default_rng(0)
    for path in sorted(study_copy.glob("*_t2/*.dcm")):  # the T2's pixels replaced by noise: no anatomy
        ds = pydicom.dcmread(path)
        ds.PixelData = rng.integers(0, 4096, (ds.Rows, ds.Columns), dtype=np.uint16).tobytes()
        ds.save_as(path)
    with pytest.raises(DataError, match=r"registration of series t2 \(5 'AX T2 TSE'\) to the reference t1ce .* did not "
                                        r"converge: .*normalised MI"):
        prepare_study(study_copy, tmp_path / "out", MODALITIES, spacing=2.0, brain_method="fallback")


def test_atlas_preparation_lands_the_brain_on_the_mni152_template(raw_study, tmp_path):
    """--atlas mni152: the case on the template's field of view, the brain over the template's brain,
    every series still within a millimetre of its true motion, the truth carried there and back."""
    from brainsegfounder.clinical.atlas import load_atlas
    from brainsegfounder.clinical.native import native_labels

    case = prepare_study(raw_study / "raw" / "dicom" / CASE, tmp_path / "out", MODALITIES, spacing=2.0,
                         brain_method="fallback", atlas="mni152")
    truth = raw_study / "raw" / "truth" / CASE
    assert case.record["atlas"]["name"] == "mni152" and case.record["volumes_on"].startswith("the mni152 atlas grid")
    assert max(registration_errors(case, truth).values()) <= 1.0
    template, _ = load_atlas("mni152")
    mask = sitk.ReadImage(str(case.folder / case.record["skull_strip"]["mask"]))
    assert mask.GetSize() == (99, 117, 95)  # the template's 197 x 233 x 189 mm at 2 mm
    on_grid = sitk.Resample(template, mask, sitk.Transform(), sitk.sitkLinear, 0)
    assert dice(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(on_grid) > 0.2) >= 0.9
    label = truth_on_prepared(case, truth, raw_study / "cases" / CASE / f"{CASE}_seg.nii.gz")
    back = native_labels(case, _write(label, tmp_path / "label.nii.gz"))["flair"]
    expected = sitk.ReadImage(str(truth / "flair_seg.nii.gz"))
    assert dice(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(expected)) >= 0.85
    with pytest.raises(DataError, match="--atlas /nowhere/sri24.nii.gz: neither 'mni152' nor a file"):
        prepare_study(raw_study / "raw" / "dicom" / CASE, tmp_path / "out2", MODALITIES, spacing=2.0,
                      brain_method="fallback", atlas="/nowhere/sri24.nii.gz")


def test_an_atlas_file_of_the_same_brain_puts_the_study_on_that_case_grid_voxel_for_voxel(raw_study, tmp_path):
    """--atlas <a BraTS-way case's T1>: the raw study lands on that case's very grid (as BraTS prepares
    onto SRI24), by a registration within a millimetre of the known motion, so the two cases' images and
    labels compare voxel for voxel (the benchmark's ``--atlas case``)."""
    from brainsegfounder.clinical.registration import registration_error
    from brainsegfounder.data.geometry import matrix_of, physical_points

    t1 = raw_study / "cases" / CASE / f"{CASE}_t1.nii.gz"
    case = prepare_study(raw_study / "raw" / "dicom" / CASE, tmp_path / "out", MODALITIES, spacing=2.0,
                         brain_method="fallback", atlas=str(t1))
    source, truth = sitk.ReadImage(str(t1)), raw_study / "raw" / "truth" / CASE
    prepared_t1 = sitk.ReadImage(str(case.images["t1"]))
    assert prepared_t1.GetSize() == source.GetSize() and prepared_t1.GetSpacing() == source.GetSpacing()
    assert np.allclose(prepared_t1.GetOrigin(), source.GetOrigin()) and prepared_t1.GetDirection() == source.GetDirection()
    motion = matrix_of(sitk.ReadTransform(str(truth / f"{case.record['reference']}_motion.tfm")))  # reference -> case
    brain = sitk.GetArrayViewFromImage(source) > 0
    assert registration_error(matrix_of(case.to_reference()), np.linalg.inv(motion), physical_points(source, brain)) <= 1.0
    assert max(registration_errors(case, truth).values()) <= 1.0
    ours = sitk.GetArrayFromImage(prepared_t1)
    assert dice(ours > 0, brain) >= 0.95
    assert np.corrcoef(ours[brain], sitk.GetArrayViewFromImage(source)[brain])[0, 1] > 0.8  # the same anatomy there


def _write(image, path):
    sitk.WriteImage(sitk.Cast(image, sitk.sitkUInt8), str(path))
    return path
