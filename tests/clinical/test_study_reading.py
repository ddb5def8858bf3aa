"""Reading a DICOM study: series grouped and named, localizers skipped, and bad studies refused in one
line naming the series and what to do (real files, broken on purpose)."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import generate_uid

from brainsegfounder.clinical.modalities import assign, parse_overrides, recognise
from brainsegfounder.clinical.study import scan_dicom
from brainsegfounder.preprocess import main as preprocess_main
from brainsegfounder.utils.errors import ConfigError, DataError
from tests.clinical.conftest import CASE, MODALITIES
from tests.faults.conftest import assert_one_clear_line, checksums


def _rewrite(files, **tags):
    for path in files:
        ds = pydicom.dcmread(path)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(path)


def test_series_are_found_named_and_the_localizer_skipped(raw_study):
    series, skipped = scan_dicom(raw_study / "raw" / "dicom" / CASE)
    assert skipped == ["1 'localizer' (a localizer)"]
    assert {recognise(s) for s in series} == set(MODALITIES)
    chosen = assign(series, MODALITIES)
    assert {m: s.description for m, s in chosen.items()} == {
        "flair": "AX T2 FLAIR", "t1ce": "SAG T1 MPRAGE POST GD", "t1": "AX T1 MPRAGE", "t2": "AX T2 TSE"}
    positions = [float(pydicom.dcmread(p).SliceLocation) for p in chosen["flair"].files]
    assert positions == sorted(positions)


def test_a_missing_slice_is_named(study_copy):
    files = sorted(study_copy.glob("*_flair/*.dcm"))
    files[len(files) // 2].unlink()
    with pytest.raises(DataError, match=r"series 3 'AX T2 FLAIR' .*a slice is missing"):
        scan_dicom(study_copy)


def test_two_flair_series_are_refused_until_one_is_chosen(study_copy):
    import shutil

    copy = study_copy / "08_flair_repeat"
    shutil.copytree(next(study_copy.glob("*_flair")), copy)
    new_uid = generate_uid()
    _rewrite(sorted(copy.glob("*.dcm")), SeriesInstanceUID=new_uid, SeriesNumber=8, SeriesDescription="AX FLAIR rpt")
    series, _ = scan_dicom(study_copy)
    with pytest.raises(DataError, match=r"2 series look like flair: 3 'AX T2 FLAIR' .* and 8 'AX FLAIR rpt' .*--series "
                                        r"flair="):
        assign(series, MODALITIES)
    chosen = assign(series, MODALITIES, parse_overrides([f"flair={new_uid}"], MODALITIES))
    assert chosen["flair"].number == 8
    assert assign(series, MODALITIES, parse_overrides(["flair=3"], MODALITIES))["flair"].number == 3
    with pytest.raises(ConfigError, match="not a modality of the checkpoint"):
        parse_overrides(["dwi=4"], MODALITIES)


def test_mixed_patients_and_huge_series_are_refused(study_copy):
    _rewrite(sorted(study_copy.glob("*_t2/*.dcm")), PatientID="SOMEONE-ELSE")
    with pytest.raises(DataError, match="holds series of 2 patients .*SOMEONE-ELSE: 5 'AX T2 TSE'"):
        scan_dicom(study_copy)
    _rewrite(sorted(study_copy.glob("*_t2/*.dcm")), PatientID=CASE)
    with pytest.raises(DataError, match=r"series 3 'AX T2 FLAIR' .*voxels, more than this tool reads"):
        scan_dicom(study_copy, max_voxels=10_000)


def test_an_unrecognised_series_is_named_with_the_line_that_settles_it(study_copy):
    _rewrite(sorted(study_copy.glob("*_t2/*.dcm")), SeriesDescription="series 5", ProtocolName="p5", EchoTime=30.0)
    with pytest.raises(DataError, match=r"no series looks like t2 .*5 'series 5' -> unrecognised.*--series t2="):
        assign(scan_dicom(study_copy)[0], MODALITIES)


def test_the_command_refuses_in_one_line_and_changes_nothing(study_copy, tmp_path, capsys):
    files = sorted(study_copy.glob("*_t1/*.dcm"))
    files[3].unlink()
    before = checksums(study_copy)
    code = preprocess_main(["--input", str(study_copy), "--output", str(tmp_path / "out"), "--spacing", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_clear_line(err, "series 4 'AX T1 MPRAGE'", "a slice is missing", "Export the series again")
    assert checksums(study_copy) == before and not (tmp_path / "out").exists()


def test_a_series_of_another_body_part_is_refused(study_copy):
    _rewrite(sorted(study_copy.glob("*_t2/*.dcm")), BodyPartExamined="KNEE")
    with pytest.raises(DataError, match=r"series 5 'AX T2 TSE' .*BodyPartExamined is 'KNEE', not the head"):
        scan_dicom(study_copy)
