"""End to end: a synthetic subject scanned three times; the report states its growth as generated."""

import csv
import shutil

import pytest

from brainsegfounder.data.synthetic import generate
from brainsegfounder.report import write_report


def test_report_states_the_generated_growth_within_one_percent(tmp_path):
    data, predictions = tmp_path / "data", tmp_path / "predictions"
    generate("brats2023", data, subjects=1, seed=4, spacing=3.0, timepoints=3)
    predictions.mkdir()
    # A perfect "prediction": each scan's reference label map, named by case id as predict names it.
    for case in sorted(p for p in data.iterdir() if p.is_dir()):
        shutil.copy(case / f"{case.name}-seg.nii.gz", predictions / f"{case.name}.nii.gz")
    write_report(predictions, scheme="brats2023", viewers=False)
    truth = {r["case_id"]: r for r in csv.DictReader(open(data / "timepoints_truth.csv"))}
    rows = list(csv.DictReader(open(predictions / "longitudinal.csv")))
    assert [r["timepoint"] for r in rows] == ["000", "001", "002"]
    assert {r["subject"] for r in rows} == {"BraTS-GLI-00000"}
    for before, after in zip(rows, rows[1:], strict=False):
        for region in ("TC", "WT", "ET"):
            expected = float(truth[after["case_id"]][f"{region}_ml"]) - float(truth[before["case_id"]][f"{region}_ml"])
            stated = float(after[f"{region}_ml_change_ml"])
            assert stated == pytest.approx(expected, rel=0.01, abs=1e-3)
    assert "BraTS-GLI-00000" in (predictions / "report.html").read_text()
