"""Enhanced (multi-frame) MR DICOM: a series in one file, its geometry in functional groups. Made here
from the synthetic single-slice series by highdicom's Legacy Converted Enhanced MR Image, frames
shuffled; read, checked, prepared and answered with a DICOM SEG the same way as single slices."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from brainsegfounder.clinical.native import read_dicom_seg, write_dicom_seg
from brainsegfounder.clinical.study import read_series, scan_dicom
from brainsegfounder.utils.errors import DataError
from tests.clinical.conftest import CASE

LEGEND = {1: "necrotic tumour core", 2: "peritumoral oedema", 4: "enhancing tumour"}


def _enhanced(files: list[Path], out: Path, drop: int | None = None) -> Path:
    from highdicom.legacy import LegacyConvertedEnhancedMRImage
    from pydicom.uid import generate_uid

    slices = [pydicom.dcmread(f) for i, f in enumerate(sorted(files)) if i != drop]
    random.Random(0).shuffle(slices)
    image = LegacyConvertedEnhancedMRImage(slices, series_instance_uid=slices[0].SeriesInstanceUID,
                                           series_number=int(slices[0].SeriesNumber), sop_instance_uid=generate_uid(),
                                           instance_number=1)
    out.mkdir(parents=True, exist_ok=True)
    image.save_as(out / "MF0001.dcm")
    return out / "MF0001.dcm"


@pytest.fixture(scope="module")
def enhanced_study(raw_study, tmp_path_factory) -> Path:
    """The raw DICOM study with every series (not the localizer) as one Enhanced MR file."""
    source, out = raw_study / "raw" / "dicom" / CASE, tmp_path_factory.mktemp("enhanced") / CASE
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        if "localizer" in folder.name:
            shutil.copytree(folder, out / folder.name)
        else:
            _enhanced(list(folder.glob("*.dcm")), out / folder.name)
    return out


def test_enhanced_series_read_as_the_single_slices_do(raw_study, enhanced_study):
    single, _ = scan_dicom(raw_study / "raw" / "dicom" / CASE)
    multi, skipped = scan_dicom(enhanced_study)
    assert skipped == ["1 'localizer' (a localizer)"]
    assert [s.number for s in multi] == [s.number for s in single] and all(s.frames for s in multi)
    for a, b in zip(single, multi, strict=True):
        assert b.tags["EchoTime"] == a.tags["EchoTime"] and b.tags["RepetitionTime"] == a.tags["RepetitionTime"]
        x, y = read_series(a), read_series(b)
        assert x.GetSize() == y.GetSize()
        for get in ("GetOrigin", "GetSpacing", "GetDirection"):
            np.testing.assert_allclose(getattr(y, get)(), getattr(x, get)(), atol=1e-4)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(y), sitk.GetArrayFromImage(x))


def test_a_dicom_seg_on_an_enhanced_series_references_its_frames(raw_study, enhanced_study, tmp_path):
    flair = next(enhanced_study.glob("*flair*/MF0001.dcm"))
    label = sitk.ReadImage(str(raw_study / "raw" / "truth" / CASE / "flair_seg.nii.gz"))
    path = write_dicom_seg(label, [flair], tmp_path / "seg.dcm", LEGEND)
    seg = pydicom.dcmread(path)
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        pydicom.dcmread(flair, stop_before_pixels=True).SOPInstanceUID
    np.testing.assert_array_equal(read_dicom_seg(path, [flair]), sitk.GetArrayFromImage(label))
    if shutil.which("dciodvfy"):
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        assert not [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def test_a_missing_frame_is_named(raw_study, tmp_path):
    folder = next((raw_study / "raw" / "dicom" / CASE).glob("*t1ce*"))
    _enhanced(list(folder.glob("*.dcm")), tmp_path / CASE / folder.name, drop=20)
    with pytest.raises(DataError, match=r"series 7 'SAG T1 MPRAGE POST GD.*a slice is missing"):
        scan_dicom(tmp_path / CASE)
