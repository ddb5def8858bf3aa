"""Results back where the radiologist looks: label maps on every series' own grid, and a DICOM SEG
that reads back (pydicom + highdicom) with the same frames as the native-grid label map."""

from __future__ import annotations

import base64
import io
import json
import re
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
from brainsegfounder.data.regions import get_scheme
from tests.clinical.conftest import CASE, MODALITIES

LEGEND = {1: "necrotic tumour core", 2: "peritumoral oedema", 4: "enhancing tumour"}
SCHEME = get_scheme("brats2021")


def test_the_true_labels_go_back_onto_every_native_grid_and_into_a_dicom_seg(prepared, raw_study, tmp_path):
    truth = raw_study / "raw" / "truth" / CASE
    label = truth_on_prepared(prepared, truth, raw_study / "cases" / CASE / f"{CASE}_seg.nii.gz", SCHEME)
    label_path = tmp_path / f"{CASE}.nii.gz"
    write_image(sitk.Cast(label, sitk.sitkUInt8), label_path)
    written = write_back(prepared, label_path, tmp_path / "out", LEGEND, scheme=SCHEME)
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


def test_the_report_shows_every_series_as_acquired_under_its_labels(prepared, raw_study, tmp_path):
    """The report of a raw study's predictions draws each series in its own plane at its slice with the
    most tumour, labels in the legend's colours, named as the scanner named it; a study whose files
    moved gets one line instead."""
    from PIL import Image

    from brainsegfounder.report import write_report

    out = tmp_path / "pred"
    label_path = out / f"{CASE}.nii.gz"
    label_path.parent.mkdir()
    truth = raw_study / "raw" / "truth" / CASE
    write_image(sitk.Cast(truth_on_prepared(prepared, truth, raw_study / "cases" / CASE / f"{CASE}_seg.nii.gz"),
                          sitk.sitkUInt8), label_path)
    write_back(prepared, label_path, out, LEGEND)
    shutil.copytree(prepared.folder, out / "prepared" / CASE)
    summary = write_report(out, viewers=False)
    assert summary["native_series"] == 4
    page = (out / "report.html").read_text()
    assert page.count('<figure class="native">') == 4 and "The series as acquired" in page
    assert "FLAIR: series 3 &#x27;AX T2 FLAIR&#x27;, 1.8 x 1.8 x 5 mm, slice" in page
    captions = dict(re.findall(r"<figcaption>(\w+): ([^<]*)</figcaption>", page))
    assert "thick slices: between them" in captions["FLAIR"] and "thick slices" not in captions["T1CE"]
    png = re.search(r'alt="FLAIR: [^"]*" data-src="data:image/png;base64,([^"]+)"', page).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")).reshape(-1, 3).astype(int)
    coloured = (pixels.max(axis=1) - pixels.min(axis=1)) > 80  # the labels over a grey image
    assert coloured.sum() > 100, coloured.sum()
    record = json.loads((out / "prepared" / CASE / "preparation" / "preparation.json").read_text())
    record["source"] = str(tmp_path / "moved")
    (out / "prepared" / CASE / "preparation" / "preparation.json").write_text(json.dumps(record))
    write_report(out, viewers=False)
    page = (out / "report.html").read_text()
    assert "The native series were not found where the study was read" in page and 'class="native"' not in page
