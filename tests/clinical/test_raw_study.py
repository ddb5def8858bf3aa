"""The raw-study generator: a head around the brain, each series on its own grid after a known motion,
DICOM files with realistic tags and NIfTI files with the same voxels, the truth beside them."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import SimpleITK as sitk

from brainsegfounder.data.conform import zero_fraction
from brainsegfounder.data.geometry import matrix_of
from tests.clinical.conftest import CASE, MODALITIES


def test_every_series_is_written_as_dicom_and_nifti_with_the_same_voxels(raw_study):
    raw = raw_study / "raw"
    for modality in MODALITIES:
        files = sorted((raw / "dicom" / CASE).glob(f"*_{modality}/*.dcm"))
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(f) for f in files])
        from_dicom = reader.Execute()
        from_nifti = sitk.ReadImage(str(raw / "nifti" / CASE / f"{CASE}_{modality}.nii.gz"))
        assert from_dicom.GetSize() == from_nifti.GetSize()
        np.testing.assert_allclose(from_dicom.GetOrigin(), from_nifti.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(from_dicom.GetDirection(), from_nifti.GetDirection(), atol=1e-5)
        np.testing.assert_allclose(sitk.GetArrayViewFromImage(from_dicom), sitk.GetArrayViewFromImage(from_nifti),
                                   rtol=1e-4, atol=1e-3)


def test_the_dicom_tags_say_what_a_scanner_says(raw_study):
    study = raw_study / "raw" / "dicom" / CASE
    flair = pydicom.dcmread(sorted(study.glob("*_flair/*.dcm"))[0])
    t1ce = pydicom.dcmread(sorted(study.glob("*_t1ce/*.dcm"))[0])
    assert flair.SeriesDescription == "AX T2 FLAIR" and list(flair.ImageType)[:2] == ["ORIGINAL", "PRIMARY"]
    assert float(flair.InversionTime) == 2500 and float(flair.SliceThickness) == 5.0
    assert [round(float(v), 3) for v in flair.PixelSpacing] == [1.8, 1.8]
    assert [round(float(v)) for v in t1ce.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]  # sagittal
    assert t1ce.ContrastBolusAgent and float(t1ce.RescaleSlope) > 0
    assert flair.PatientID == t1ce.PatientID == CASE and flair.StudyInstanceUID == t1ce.StudyInstanceUID
    assert flair.SeriesInstanceUID != t1ce.SeriesInstanceUID and flair.FrameOfReferenceUID == t1ce.FrameOfReferenceUID
    localizer = [pydicom.dcmread(p) for p in sorted(study.glob("00_localizer/*.dcm"))]
    assert len(localizer) == 3 and all("LOCALIZER" in ds.ImageType for ds in localizer)


def test_the_raw_series_have_a_skull_and_the_truth_is_on_every_grid(raw_study):
    raw = raw_study / "raw"
    truth = json.loads((raw / "truth" / CASE / "motion.json").read_text())
    for modality in MODALITIES:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "nifti" / CASE / f"{CASE}_{modality}.nii.gz")))
        brain = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "truth" / CASE / f"{modality}_brain.nii.gz")))
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "truth" / CASE / f"{modality}_seg.nii.gz")))
        assert image.shape == brain.shape == seg.shape
        assert zero_fraction(image) < 0.05  # not skull-stripped: noisy air, a head around the brain
        head = image[(brain == 0) & (image > 0.3 * np.median(image[brain > 0]))]
        assert head.size > 0.2 * (brain > 0).sum()  # scalp and marrow are bright outside the brain
        assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}
        info = truth["series"][modality]
        assert 0 < max(map(abs, info["rotation_deg"])) <= 4 and max(map(abs, info["translation_mm"])) <= 4
        stored = sitk.ReadTransform(str(raw / "truth" / CASE / f"{modality}_motion.tfm"))
        np.testing.assert_allclose(matrix_of(stored), np.array(info["matrix"]), atol=1e-6)
