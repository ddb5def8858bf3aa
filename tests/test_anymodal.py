"""One model for any subset of modalities, uncertainty and calibration, end to end.

Real synthetic NIfTI cases, checkpoints from real one-step fits of the demo configs, the real
``predict`` and ``calibrate`` commands.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegfounder.calibrate import main as calibrate_main
from brainsegfounder.checkpoints import (
    FLAG_CASES_KEY,
    FLAG_THRESHOLD_KEY,
    PREPROCESSING_KEY,
    SUBSET_DICE_KEY,
    TEMPERATURE_KEY,
)
from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.modality_dropout import RandomModalityDropout
from brainsegfounder.inference.predictor import Predictor
from brainsegfounder.inference.writers import UNCERTAINTY_FOLDER, VOLUMES_FILE
from brainsegfounder.predict import main as predict_main
from tests.conftest import DEMO, REPO, fit_checkpoint

ANYMODAL = REPO / "experiments" / "demo_anymodal.yaml"
BRATS = ("flair", "t1ce", "t1", "t2")


@pytest.fixture(scope="session")
def anymodal_checkpoint(brats2021_root, tmp_path_factory) -> Path:
    """A tiny checkpoint from a real two-step fit of demo_anymodal.yaml (modality dropout 0.25)."""
    return fit_checkpoint(ANYMODAL, brats2021_root, tmp_path_factory.mktemp("anymodal_run"), steps=2)


def _volumes(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / VOLUMES_FILE).open() as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def test_dropout_is_in_the_training_transform_only_and_recorded(brats2021_root):
    dm = SegmentationDataModule(root=str(brats2021_root), patch_size=64, modality_dropout=0.5, validate="off")
    train = [type(t) for t in dm.train_transform()]
    assert train[-1] is RandomModalityDropout  # last: after z-score and intensity augmentation
    assert RandomModalityDropout not in [type(t) for t in dm.preprocessing()]  # validation's transform
    assert dm.preprocessing_record.accepts_missing == BRATS
    plain = SegmentationDataModule(root=str(brats2021_root), patch_size=64, validate="off")
    assert RandomModalityDropout not in [type(t) for t in plain.train_transform()]
    assert plain.preprocessing_record.accepts_missing == ()
    # Every training volume keeps at least one real channel.
    dm.setup("fit")
    from brainsegfounder.data.layouts import cases_to_subjects

    torch.manual_seed(0)
    subject = dm.train_transform()(cases_to_subjects(dm.train_cases[:1])[0])
    kept = [m for m in BRATS if subject[m].data.std() > 0]
    assert kept and set(subject["dropped_modalities"]) == set(BRATS) - set(kept)


def test_checkpoint_records_what_it_can_do_without(anymodal_checkpoint, checkpoint):
    record = torch.load(anymodal_checkpoint, weights_only=True)[PREPROCESSING_KEY]
    assert record["accepts_missing"] == list(BRATS)
    assert torch.load(checkpoint, weights_only=True)[PREPROCESSING_KEY]["accepts_missing"] == []


def test_dropout_checkpoint_predicts_flair_only_and_without_t1ce(anymodal_checkpoint, two_cases, tmp_path, capsys):
    flair_only, no_t1ce = sorted(p for p in two_cases.iterdir())
    for m in ("t1ce", "t1", "t2"):
        (flair_only / f"{flair_only.name}_{m}.nii.gz").unlink()
    (no_t1ce / f"{no_t1ce.name}_t1ce.nii.gz").unlink()
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(anymodal_checkpoint), "--input", str(two_cases), "--output", str(out),
                         "--device", "cpu"]) == 0
    rows = _volumes(out)
    assert rows[flair_only.name]["missing_modalities"] == "t1ce+t1+t2"
    assert rows[no_t1ce.name]["missing_modalities"] == "t1ce"
    for folder in (flair_only, no_t1ce):
        written = nib.load(out / f"{folder.name}.nii.gz")
        given = nib.load(folder / f"{folder.name}_flair.nii.gz")
        assert written.shape == given.shape and np.allclose(written.affine, given.affine)
    log = capsys.readouterr().err
    assert f"{flair_only.name}: predicted without t1ce, t1, t2" in log


def test_normal_checkpoint_refuses_a_case_with_a_missing_file(checkpoint, two_cases, tmp_path, capsys):
    case = sorted(two_cases.iterdir())[0]
    missing = case / f"{case.name}_t1ce.nii.gz"
    missing.unlink()
    assert predict_main(["--ckpt", str(checkpoint), "--input", str(two_cases), "--output", str(tmp_path / "p"),
                         "--device", "cpu"]) == 2
    message = capsys.readouterr().err
    assert str(missing) in message.replace("\n", "")  # which file
    assert str(checkpoint) in message.replace("\n", "")  # which model
    assert "modality_dropout" in message and "experiments/brats_anymodal.yaml" in message  # how to get one
    assert not (tmp_path / "p" / f"{case.name}.nii.gz").exists()


def test_forced_subset_with_an_ensemble_tta_and_uncertainty_maps(anymodal_checkpoint, two_cases, tmp_path):
    case = sorted(two_cases.iterdir())[0]
    out = tmp_path / "pred"
    ck = str(anymodal_checkpoint)
    assert predict_main(["--ckpt", ck, ck, "--input", str(case), "--output", str(out), "--device", "cpu",
                         "--tta", "--modalities", "t1,flair", "--uncertainty"]) == 0
    given = nib.load(case / f"{case.name}_flair.nii.gz")
    entropy = nib.load(out / UNCERTAINTY_FOLDER / f"{case.name}_entropy.nii.gz")
    variance = nib.load(out / UNCERTAINTY_FOLDER / f"{case.name}_variance.nii.gz")
    assert entropy.shape == given.shape and np.allclose(entropy.affine, given.affine)
    assert variance.shape == (*given.shape, 3) and np.allclose(variance.affine, given.affine)
    e, v = entropy.get_fdata(), variance.get_fdata()
    assert 0 <= e.min() and e.max() <= 1 and e.max() > 0  # bits
    assert 0 <= v.min() and v.max() <= 0.25 and v.max() > 0  # 8 mirrorings disagree somewhere
    row = _volumes(out)[case.name]
    assert row["missing_modalities"] == "t1ce+t2"
    # Uncalibrated: no expected Dice is written, and the review column says why.
    assert row["expected_dice"] == "" and row["flag"] == "" and row["review"].startswith("not calibrated")


def test_normal_checkpoint_refuses_a_forced_subset(checkpoint, two_cases, tmp_path, capsys):
    case = sorted(two_cases.iterdir())[0]
    assert predict_main(["--ckpt", str(checkpoint), "--input", str(case), "--output", str(tmp_path / "p"),
                         "--device", "cpu", "--modalities", "flair"]) == 2
    assert "asked (--modalities) to do without" in capsys.readouterr().err


def test_calibrate_lowers_the_nll_of_an_over_confident_model(checkpoint, brats2021_root, tmp_path, capsys):
    data = torch.load(checkpoint, weights_only=True)
    head = [k for k in data["state_dict"] if k.startswith("net.out.")]
    assert head
    for key in head:  # the last 1x1x1 convolution: logits x 30, a deliberately over-confident model
        data["state_dict"][key] = data["state_dict"][key] * 30
    over = tmp_path / "over.ckpt"
    torch.save(data, over)
    before_bytes = over.read_bytes()
    result = calibrate_main(["--ckpt", str(over), "--config", str(DEMO), f"--data.init_args.root={brats2021_root}",
                             "--data.init_args.validate=off", "--max_cases", "1", "--max_voxels", "20000"])
    assert over.read_bytes() == before_bytes  # the user's file is never modified
    assert result["path"] == tmp_path / "over.calibrated.ckpt"
    for name in ("TC", "WT", "ET"):
        assert result["after"][f"nll_{name}"] < result["before"][f"nll_{name}"]
    assert all(t > 1 for t in result["temperature"])
    stored = torch.load(result["path"], weights_only=True)
    assert stored[TEMPERATURE_KEY] == result["temperature"] and FLAG_THRESHOLD_KEY in stored
    # A model without modality dropout is never given a partial case: no subsets measured.
    assert result["subset_dice"] == {} and SUBSET_DICE_KEY not in stored
    predictor = Predictor.from_checkpoints([result["path"]], device="cpu")
    assert predictor.temperatures[0] == result["temperature"]
    assert predictor.flag_threshold == pytest.approx(result["flag_threshold"])
    assert predictor.flag_below == pytest.approx(1 - result["flag_threshold"]) == pytest.approx(result["flag_below"])
    assert predictor.calibrated and predictor.flag_cases == result["flag_cases"] == 1 == stored[FLAG_CASES_KEY]
    printed = capsys.readouterr().out
    assert "NLL before" in printed and "a threshold fitted on 1 validation case (fewer than 20" in printed


def test_calibrate_measures_what_each_missing_modality_costs(anymodal_checkpoint, brats2021_root, two_cases,  # noqa: F811
                                                            tmp_path, capsys):
    result = calibrate_main(["--ckpt", str(anymodal_checkpoint), "--config", str(ANYMODAL),
                             f"--data.init_args.root={brats2021_root}", "--data.init_args.validate=off",
                             "--out", str(tmp_path / "cal.ckpt"), "--max_cases", "1", "--max_voxels", "20000"])
    table = result["subset_dice"]
    assert len(table) == 15 and list(table)[0] == "flair+t1ce+t1+t2"
    assert all(len(v) == 3 and all(0.0 <= d <= 1.0 for d in v) for v in table.values())
    assert torch.load(result["path"], weights_only=True)[SUBSET_DICE_KEY] == table
    assert "validation Dice by available modalities" in capsys.readouterr().out

    predictor = Predictor.from_checkpoints([result["path"]], device="cpu")
    assert predictor.subset_dice.keys() == table.keys()
    for subset, dice in table.items():  # pytest >= 9 no longer compares nested dicts approximately
        assert predictor.subset_dice[subset] == pytest.approx(dice), subset
    assert predictor.reliability(()) is None  # a complete case: the expected Dice alone
    factors = predictor.reliability(("t1ce",))
    full, kept = table["flair+t1ce+t1+t2"], table["flair+t1+t2"]
    assert factors == pytest.approx([min(1.0, k / f) if f > 0 else 1.0 for k, f in zip(kept, full, strict=True)])
    # The same case without T1ce scores at least as badly with the factors as without them.
    from brainsegfounder.inference.inputs import find_inputs

    case = sorted(two_cases.iterdir())[0]
    (case / f"{case.name}_t1ce.nii.gz").unlink()
    files = find_inputs([case], predictor.modalities, allow_missing=True)[0]
    scaled = predictor.predict_case(files, uncertainty=True)
    predictor.subset_dice = {}
    plain = predictor.predict_case(files, uncertainty=True)
    assert scaled.missing == ("t1ce",) and 0.0 <= plain.quality <= scaled.quality <= 1.0


def test_partial_case_folders_keep_the_expected_names(two_cases, tmp_path):
    from brainsegfounder.inference.inputs import find_inputs

    root = tmp_path / "copy"
    shutil.copytree(two_cases, root)
    case = sorted(root.iterdir())[0]
    (case / f"{case.name}_t2.nii.gz").unlink()
    found = {c.subject_id: c for c in find_inputs([root], BRATS, allow_missing=True)}
    assert list(found[case.name].images) == ["flair", "t1ce", "t1"]
    assert found[case.name].extra["expected"]["t2"] == str(case / f"{case.name}_t2.nii.gz")


def test_evaluate_reports_ece_and_brier_from_probability_maps(checkpoint, two_cases, tmp_path):
    from brainsegfounder.evaluate import evaluate

    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(checkpoint), "--input", str(two_cases), "--output", str(out),
                         "--device", "cpu", "--probabilities"]) == 0
    summary = evaluate(out, two_cases, task="brats2021", out=tmp_path / "metrics.csv",
                       probabilities=out / "probabilities")
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for name in ("TC", "WT", "ET"):
        assert 0 <= float(rows[0][f"ece_{name}"]) <= 1 and 0 <= float(rows[0][f"brier_{name}"]) <= 1
        assert f"ece_{name}" in summary["metrics"]
