"""evaluate counts every reference case: a missing prediction is scored as the rule set says (a
failure, never left out of the mean) and named, or refused with --missing error; a prediction with
no reference is named and not scored. Real NIfTI cases in the BraTS 2021 layout."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

from brainsegfounder.evaluate import main
from tests.faults.conftest import SHAPE, assert_one_clear_line, checksums, write_case

IDS = ("BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002")


@pytest.fixture
def scored(tmp_path):
    """Three reference cases; perfect predictions (copies of the labels) for the first two only."""
    root, preds = tmp_path / "data", tmp_path / "preds"
    preds.mkdir()
    for seed, case in enumerate(IDS):
        write_case(root, case, seed=seed)
    for case in IDS[:2]:
        shutil.copy(root / case / f"{case}_seg.nii.gz", preds / f"{case}.nii.gz")
    return root, preds


def _evaluate(root, preds, out, *extra) -> int:
    return main(["--pred", str(preds), "--ref", str(root), "--scheme", "brats2021", "--out", str(out), *extra])


def _rows(path):
    with open(path, newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


# The HD95 each rule set gives a region that was not predicted, on 40 x 40 x 32 voxels of 2 mm.
DIAGONAL = math.sqrt(sum(s * s for s in SHAPE))


@pytest.mark.parametrize(("rules", "hd95_column", "penalty"), [
    ("brats2021", "hd95_vox_WT", DIAGONAL),          # voxels
    ("brats2023", "hd95_mm_WT", 374.0),
    ("brats2024", "hd95_mm_WT", 337.0),
    ("plain", "hd95_mm_WT", 2 * DIAGONAL),            # the image diagonal in mm
])
def test_a_missing_prediction_counts_as_a_failure_by_the_rule_set(scored, tmp_path, capsys, rules, hd95_column,
                                                                  penalty):
    root, preds = scored
    out = tmp_path / "metrics.csv"
    assert _evaluate(root, preds, out, "--rules", rules) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "scored 3 of 3 cases, 1 missing prediction(s) counted as failure" in err and IDS[2] in err

    rows = _rows(out)
    assert sorted(rows) == list(IDS)
    missed = rows[IDS[2]]
    assert missed["missing_prediction"] == "1" and rows[IDS[0]]["missing_prediction"] == "0"
    for region in ("TC", "WT", "ET"):
        assert float(missed[f"dice_{region}"]) == 0.0
        assert float(missed[hd95_column.replace("WT", region)]) == pytest.approx(penalty)
        assert float(rows[IDS[0]][f"dice_{region}"]) == 1.0
    if rules != "brats2021":
        assert float(missed["lw_dice_mean"]) == 0.0
    summary = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert summary["n_cases"] == 3 and summary["n_predicted"] == 2
    assert summary["missing_predictions"] == [IDS[2]]
    assert summary["metrics"]["dice_mean"]["mean"] == pytest.approx(2 / 3)  # over all three, not the two found
    assert "missing_prediction" not in summary["metrics"]


def test_missing_error_refuses_in_one_line_naming_the_case(scored, tmp_path, capsys):
    root, preds = scored
    before = checksums(root, preds)
    out = tmp_path / "metrics.csv"
    assert _evaluate(root, preds, out, "--missing", "error") == 2
    assert_one_clear_line(capsys.readouterr().err, "have no prediction", IDS[2], "--missing error")
    assert not out.exists() and checksums(root, preds) == before
    assert _evaluate(root, preds, out, "--missing", "maybe") == 2
    assert_one_clear_line(capsys.readouterr().err, "--missing 'maybe'", "fail", "error")


def test_a_prediction_without_reference_is_named_and_not_scored(scored, tmp_path, capsys):
    root, preds = scored
    shutil.copy(preds / f"{IDS[0]}.nii.gz", preds / "BraTS2021_00099.nii.gz")
    out = tmp_path / "metrics.csv"
    assert _evaluate(root, preds, out) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "1 prediction(s) have no reference" in err and "not scored: BraTS2021_00099" in err
    assert sorted(_rows(out)) == list(IDS)
    assert json.loads((tmp_path / "metrics_summary.json").read_text())["predictions_without_reference"] == [
        "BraTS2021_00099"]


def test_subjects_scores_part_of_a_data_set_root(scored, tmp_path, capsys):
    root, preds = scored
    out = tmp_path / "metrics.csv"
    assert _evaluate(root, preds, out, "--subjects", f"[{IDS[0]},{IDS[1]}]") == 0
    assert "scored 2 of 2 cases, every case predicted" in " ".join(capsys.readouterr().err.split())
    assert sorted(_rows(out)) == list(IDS[:2])
    assert _evaluate(root, preds, out, "--overwrite", "--subjects", "[BraTS2021_00042]") == 2
    assert_one_clear_line(capsys.readouterr().err, "--subjects", "BraTS2021_00042")
