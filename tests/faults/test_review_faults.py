"""The review flag under faults: numbers that would be misread are not written, and options that
would be misread are refused in one line before anything is made. Real NIfTI cases, a real
random-weight checkpoint (uncalibrated, as every checkpoint is before ``calibrate``)."""

from __future__ import annotations

import csv

from brainsegfounder.inference.calibration import NOT_CALIBRATED
from brainsegfounder.inference.writers import VOLUMES_FILE
from brainsegfounder.predict import main
from tests.faults.conftest import assert_one_clear_line


def _predict(ckpt, cases, out, *extra):
    return main(["--ckpt", str(ckpt), "--input", str(cases), "--output", str(out), "--device", "cpu", *extra])


def test_uncalibrated_checkpoint_gives_no_expected_dice_and_says_why(random_checkpoint, cases, tmp_path, capsys):
    """Uncalibrated probabilities of a young model read Dice 0.10 for a case of Dice 0.87: not written."""
    out = tmp_path / "pred"
    assert _predict(random_checkpoint, cases, out, "--uncertainty") == 0
    assert "not calibrated" in capsys.readouterr().err
    rows = list(csv.DictReader((out / VOLUMES_FILE).open()))
    assert len(rows) == 2 and "quality" not in rows[0]
    for row in rows:
        assert row["expected_dice"] == "" and row["flag"] == "" and row["review"] == NOT_CALIBRATED


def test_flag_below_on_an_uncalibrated_checkpoint_is_refused_before_any_folder(random_checkpoint, cases, tmp_path,
                                                                               capsys):
    out = tmp_path / "pred"
    assert _predict(random_checkpoint, cases, out, "--uncertainty", "--flag_below", "0.7") == 2
    assert_one_clear_line(capsys.readouterr().err, "--flag_below needs calibrated checkpoints", "calibrate")
    assert not out.exists()


def test_old_flag_threshold_is_refused_with_its_translation(random_checkpoint, cases, tmp_path, capsys):
    out = tmp_path / "pred"
    assert _predict(random_checkpoint, cases, out, "--uncertainty", "--flag_threshold", "0.3") == 2
    assert_one_clear_line(capsys.readouterr().err, "--flag_below 0.7")
    assert not out.exists()


def test_flag_below_outside_zero_to_one_is_refused(random_checkpoint, cases, tmp_path, capsys):
    assert _predict(random_checkpoint, cases, tmp_path / "pred", "--uncertainty", "--flag_below", "70") == 2
    assert_one_clear_line(capsys.readouterr().err, "between 0 and 1")
