"""Volumes over time: label maps with known lesion volumes, written here, read back by the report."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.report import subject_and_timepoint, write_report
from brainsegfounder.report.longitudinal import timepoint_order

SPACING = (1.0, 1.2, 1.5)  # anisotropic on purpose: the report must use the voxel volume


def _ball(shape, radius_vox: float) -> np.ndarray:
    grid = np.indices(shape).astype(float) - (np.array(shape)[:, None, None, None] - 1) / 2
    return (grid**2).sum(0) <= radius_vox**2


def _write_followup(folder: Path, radii: list[float]) -> list[float]:
    """BraTS 2023 time points of one subject: a tumour (oedema + core + rim) whose size grows by radius.

    Returns the true whole-tumour volume (mL) of each scan, counted from the arrays written.
    """
    truth, affine = [], np.diag([*SPACING, 1.0])
    for t, radius in enumerate(radii):
        label = np.zeros((48, 48, 40), np.uint8)
        label[_ball(label.shape, radius)] = 2
        label[_ball(label.shape, radius * 0.6)] = 3
        label[_ball(label.shape, radius * 0.4)] = 1
        nib.save(nib.Nifti1Image(label, affine), folder / f"BraTS-GLI-00042-{t:03d}.nii.gz")
        truth.append(float((label > 0).sum()) * np.prod(SPACING) / 1000)
    return truth


def test_subject_and_timepoint_reads_brats_bids_and_plain_ids():
    assert subject_and_timepoint("BraTS-GLI-00001-000") == ("BraTS-GLI-00001", "000")
    assert subject_and_timepoint("BraTS-MET-00123-002") == ("BraTS-MET-00123", "002")
    assert subject_and_timepoint("sub-r001s001_ses-10") == ("sub-r001s001", "ses-10")
    assert subject_and_timepoint("BraTS2021_00000") == ("BraTS2021_00000", None)
    assert sorted(["ses-10", "ses-2", "ses-1"], key=timepoint_order) == ["ses-1", "ses-2", "ses-10"]


def test_report_states_tumour_growth_within_one_percent(tmp_path):
    truth = _write_followup(tmp_path, [8.0, 10.0, 9.0])  # grows, then shrinks
    other = np.zeros((20, 20, 20), np.uint8)
    other[5:10, 5:10, 5:10] = 2
    nib.save(nib.Nifti1Image(other, np.eye(4)), tmp_path / "BraTS-GLI-00007-000.nii.gz")  # one scan: not followed

    result = write_report(tmp_path, out=tmp_path / "report.html", scheme="brats2023", viewers=False)

    assert result["cases"] == 4 and result["subjects_followed"] == 1
    with (tmp_path / "longitudinal.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["timepoint"] for r in rows] == ["000", "001", "002"]
    assert {r["subject"] for r in rows} == {"BraTS-GLI-00042"}
    for before, after, row in zip(truth[:-1], truth[1:], rows[1:], strict=True):
        assert float(row["WT_ml"]) == pytest.approx(after, rel=1e-3)
        assert float(row["WT_ml_change_ml"]) == pytest.approx(after - before, rel=0.01)
        assert float(row["WT_ml_change_pct"]) == pytest.approx(100 * (after - before) / before, rel=0.01)
    assert rows[0]["WT_ml_change_ml"] == "" and rows[0]["WT_ml_change_pct"] == ""
    page = (tmp_path / "report.html").read_text()
    stated = f"{100 * (truth[1] - truth[0]) / truth[0]:+.1f}"
    assert stated in page and "<svg" in page and 'id="subject-BraTS-GLI-00042"' in page


def test_volumes_csv_and_review_columns_are_shown(tmp_path):
    label = np.zeros((16, 16, 16), np.uint8)
    label[4:8, 4:8, 4:8] = 1
    for case in ("sub-01_ses-1", "sub-01_ses-2"):
        nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / f"{case}.nii.gz")
    (tmp_path / "volumes.csv").write_text("case_id,lesion_ml,expected_dice,flag,review\n"
                                          "sub-01_ses-1,0.0640,0.93,0,\nsub-01_ses-2,0.5120,0.41,1,review first\n")
    write_report(tmp_path, scheme="lesion", viewers=False)
    page = (tmp_path / "report.html").read_text()
    assert '<td data-v="0.5120">0.51</td>' in page  # read to 0.01 mL below 1 mL, sorted on the file's value
    assert ">expected Dice</th>" in page and ">flag</th>" in page and ">review</th>" in page
    assert page.count('class="flagged"') == 1 and '<td data-v="0.41">0.41</td>' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_command_names_a_folder_without_label_maps(tmp_path, capsys):
    from brainsegfounder.report.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", str(tmp_path), "--viewers", "false"])
    assert exit_info.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err
