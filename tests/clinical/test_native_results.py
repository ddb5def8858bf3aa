"""Results back where the radiologist looks: label maps on every series' own grid, and a DICOM SEG
that reads back (pydicom + highdicom) with the same frames as the native-grid label map."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from brainsegfounder.clinical.native import read_dicom_seg, write_back
from brainsegfounder.clinical.prepare import write_image
from brainsegfounder.clinical.truth import dice, truth_on_prepared
from tests.clinical.conftest import CASE, MODALITIES

LEGEND = {1: "necrotic tumour core", 2: "peritumoral oedema", 4: "enhancing tumour"}


def test_the_true_labels_go_back_onto_every_native_grid_and_into_a_dicom_seg(prepared, raw_study, tmp_path):
    truth = raw_study / "raw" / "truth" / CASE
    label = truth_on_prepared(prepared, truth, raw_study / "cases" / CASE / f"{CASE}_seg.nii.gz")
    label_path = tmp_path / f"{CASE}.nii.gz"
    write_image(sitk.Cast(label, sitk.sitkUInt8), label_path)
    written = write_back(prepared, label_path, tmp_path / "out", LEGEND)
    assert {p.name for p in written} == {*(f"{CASE}_{m}.nii.gz" for m in MODALITIES), f"{CASE}_flair.dcm"}
    for modality in MODALITIES:
        native = sitk.ReadImage(str(tmp_path / "out" / "native" / f"{CASE}_{modality}.nii.gz"))
        expected = sitk.ReadImage(str(truth / f"{modality}_seg.nii.gz"))
        assert native.GetSize() == expected.GetSize()
        np.testing.assert_allclose(native.GetOrigin(), expected.GetOrigin(), atol=1e-3)
        wt = dice(sitk.GetArrayViewFromImage(native), sitk.GetArrayViewFromImage(expected))
        assert wt >= 0.85, (modality, wt)  # through two 2 mm resamplings and a registration
    seg_path = tmp_path / "out" / "dicom_seg" / f"{CASE}_flair.dcm"
    seg = pydicom.dcmread(seg_path)
    flair_files = [Path(prepared.record["source"]) / f for f in prepared.record["series"]["flair"]["files"]]
    assert seg.Modality == "SEG" and len(seg.SegmentSequence) == 3
    referenced = {item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence}
    assert referenced == {pydicom.dcmread(flair_files[0]).SeriesInstanceUID}
    frames = read_dicom_seg(seg_path, flair_files)
    native = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "native" / f"{CASE}_flair.nii.gz")))
    np.testing.assert_array_equal(frames, native)
    assert set(np.unique(frames).tolist()) == {0, 1, 2, 4}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools: apt install dicom3tools) not installed")
def test_the_dicom_seg_and_the_synthetic_series_pass_the_dicom_standard_validator(prepared, raw_study, tmp_path):
    """dciodvfy (David Clunie's dicom3tools, the standard's reference checker) finds no error in the
    SEG (IOD Segmentation) nor in a synthetic MR slice: what a PACS or viewer checks on import."""
    truth = raw_study / "raw" / "truth" / CASE
    label_path = tmp_path / f"{CASE}.nii.gz"
    write_image(sitk.Cast(truth_on_prepared(prepared, truth, raw_study / "cases" / CASE / f"{CASE}_seg.nii.gz"),
                          sitk.sitkUInt8), label_path)
    write_back(prepared, label_path, tmp_path / "out", LEGEND)
    flair = Path(prepared.record["source"]) / prepared.record["series"]["flair"]["files"][0]
    for path, iod in ((tmp_path / "out" / "dicom_seg" / f"{CASE}_flair.dcm", "Segmentation"), (flair, "MRImage")):
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        lines = (run.stdout + run.stderr).splitlines()
        assert lines and lines[0].strip() == iod, lines[:3]
        assert not [line for line in lines if line.startswith("Error")], (path.name, lines)
