"""``predict --postprocess largest``: only the largest connected lesion is kept, and volumes follow it."""

from __future__ import annotations

import csv
import re

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brainsegfounder.evaluation.postprocessing import (
    islands_note,
    keep_largest_lesion,
    postprocess,
    resolve_rule,
)
from brainsegfounder.inference.writers import VOLUMES_FILE
from brainsegfounder.predict import main
from brainsegfounder.utils.errors import ConfigError

FULL = np.ones((3, 3, 3), dtype=bool)


def test_the_largest_lesion_keeps_its_labels_and_islands_go():
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:10, 2:10, 2:10] = 2          # oedema
    label[4:8, 4:8, 4:8] = 1             # its core
    label[5, 5, 5] = 4
    label[15:18, 15:18, 15:18] = 2       # an island of 27 voxels
    label[12, 12, 12] = 4                # a lone enhancing voxel
    label[10, 10, 10] = 2                # touches the tumour at a corner: 26-connected, kept
    kept = keep_largest_lesion(label)
    assert kept.dtype == label.dtype
    assert (kept[label == 0] == 0).all() and kept[15:18, 15:18, 15:18].max() == 0 and kept[12, 12, 12] == 0
    np.testing.assert_array_equal(kept[:11, :11, :11], label[:11, :11, :11])
    assert ndimage.label(kept > 0, structure=FULL)[1] == 1
    empty = np.zeros((4, 4, 4), np.uint8)
    assert keep_largest_lesion(empty) is empty and postprocess(label, "none") is label
    with pytest.raises(ConfigError, match="--postprocess 'biggest': choose one of none, largest"):
        postprocess(label, "biggest")
    with pytest.raises(ConfigError, match="--postprocess 'biggest': choose one of none, largest, auto"):
        resolve_rule("biggest", [None])


def test_auto_applies_every_members_own_choice():
    chose = [{"rule": "largest", "val_dice_mean": 0.88, "val_dice_mean_largest": 0.89}]
    declined = [{"rule": "none", "val_dice_mean": 0.90, "val_dice_mean_largest": 0.89}]
    assert resolve_rule("auto", chose * 2) == ("largest", "every checkpoint's validation chose largest (mean Dice "
                                                          "0.8900 with it, 0.8800 without; mean Dice 0.8900 with it, "
                                                          "0.8800 without)")
    assert resolve_rule("auto", chose + declined)[0] == "none"  # one member declined: the maps are left whole
    assert resolve_rule("auto", chose + [None])[0] == "none"  # an older member has no choice
    assert resolve_rule("none", chose) == ("none", "--postprocess none")  # an explicit rule wins


def test_predict_largest_writes_one_lesion_and_its_volume(checkpoint, two_cases, tmp_path, capsys):
    """The one-step checkpoint's label maps are scattered; with the rule each is its largest component."""
    plain, largest = tmp_path / "plain", tmp_path / "largest"
    common = ["--ckpt", str(checkpoint), "--input", str(two_cases), "--device", "cpu"]
    assert main([*common, "--output", str(plain)]) == 0
    assert main([*common, "--output", str(largest), "--postprocess", "largest"]) == 0
    rows = {r["case_id"]: r for r in csv.DictReader(open(largest / VOLUMES_FILE))}
    islands = 0
    for case in sorted(p.name for p in two_cases.iterdir()):
        before = np.asanyarray(nib.load(plain / f"{case}.nii.gz").dataobj)
        after = np.asanyarray(nib.load(largest / f"{case}.nii.gz").dataobj)
        components, count = ndimage.label(before > 0, structure=FULL)
        islands += count - 1
        np.testing.assert_array_equal(after, keep_largest_lesion(before))
        assert ndimage.label(after > 0, structure=FULL)[1] == min(count, 1)
        assert float(rows[case]["WT_ml"]) == pytest.approx(int((after > 0).sum()) * 8 / 1000, abs=1e-3)  # 2 mm voxels
    assert islands > 0, "the test needs a prediction with islands to remove"
    # Without the rule, predict said which cases hold 1 mL or more outside their largest lesion.
    err = capsys.readouterr().err
    for case in sorted(p.name for p in two_cases.iterdir()):
        note = islands_note(np.asanyarray(nib.load(plain / f"{case}.nii.gz").dataobj), (2.0, 2.0, 2.0), case)
        said = re.findall(rf"{case}: [0-9.]+ mL of the label map lies outside its largest lesion[^\n]*", err)
        assert said == ([note] if note else [])
    # The plain folder's files were made without the rule: a rerun with it refuses them, naming why.
    capsys.readouterr()
    assert main([*common, "--output", str(plain), "--postprocess", "largest"]) != 0
    assert "or another --postprocess" in capsys.readouterr().err


def test_validation_logs_the_dice_predict_largest_would_give():
    """``val/dice_mean_largest`` scores the label map with its islands removed, next to the plain Dice."""
    import torch

    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    module = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), regions="brats2021", roi_size=32)
    truth = np.zeros((1, 1, 24, 24, 24), np.uint8)
    truth[0, 0, 4:12, 4:12, 4:12] = 2
    truth[0, 0, 6:10, 6:10, 6:10] = 1
    truth[0, 0, 7:9, 7:9, 7:9] = 4
    predicted = truth.copy()
    predicted[0, 0, 18:22, 18:22, 18:22] = 2  # an island of false oedema far from the tumour
    y = module.scheme.to_regions(torch.from_numpy(truth))
    probabilities = module.scheme.to_regions(torch.from_numpy(predicted))  # 0 or 1: thresholds at 0.5
    from brainsegfounder.metrics import dice_per_channel

    plain = dice_per_channel(probabilities > 0.5, y > 0).mean()
    largest = module._largest_lesion_dice(probabilities, y)
    assert largest.shape == (1,) and float(largest[0]) == pytest.approx(1.0)
    assert float(plain) == pytest.approx((2 + 2 * 512 / (512 + 576)) / 3)  # WT lost to the island: 512 vs 576 voxels


def test_predict_auto_applies_the_choice_the_checkpoint_carries(checkpoint, two_cases, tmp_path, capsys):
    """The one-step checkpoint with a stored choice set each way: ``auto`` follows it and says so (that fit
    stores the choice of its validation is asserted in tests/tasks/test_segmentation_fit.py)."""
    import torch

    from brainsegfounder.checkpoints import POSTPROCESS_KEY

    stored = torch.load(checkpoint, weights_only=True)  # a fit without validation: no choice stored
    outputs = {}
    for rule in ("largest", "none"):
        chosen = tmp_path / f"chose_{rule}.ckpt"
        torch.save({**stored, POSTPROCESS_KEY: {"rule": rule, "val_dice_mean": 0.5, "val_dice_mean_largest": 0.6}},
                   chosen)
        capsys.readouterr()
        outputs[rule] = tmp_path / f"auto_{rule}"
        assert main(["--ckpt", str(chosen), "--input", str(two_cases), "--device", "cpu", "--output",
                     str(outputs[rule]), "--postprocess", "auto"]) == 0
        said = " ".join(capsys.readouterr().err.split())
        assert f"--postprocess auto: {rule} (" in said and "mean Dice 0.6000 with it, 0.5000 without" in said
    for case in sorted(p.name for p in two_cases.iterdir()):
        plain = np.asanyarray(nib.load(outputs["none"] / f"{case}.nii.gz").dataobj)
        kept = np.asanyarray(nib.load(outputs["largest"] / f"{case}.nii.gz").dataobj)
        np.testing.assert_array_equal(kept, keep_largest_lesion(plain))
    # A checkpoint without a choice (no validation, or written before fit stored it): auto leaves the maps whole.
    older = tmp_path / "older.ckpt"
    torch.save({k: v for k, v in stored.items() if k != POSTPROCESS_KEY}, older)
    capsys.readouterr()
    assert main(["--ckpt", str(older), "--input", str(two_cases), "--device", "cpu", "--output",
                 str(tmp_path / "auto_older"), "--postprocess", "auto"]) == 0
    assert "--postprocess auto: none (a checkpoint carries no validation choice" in " ".join(
        capsys.readouterr().err.split())
    for case in sorted(p.name for p in two_cases.iterdir()):
        np.testing.assert_array_equal(np.asanyarray(nib.load(tmp_path / "auto_older" / f"{case}.nii.gz").dataobj),
                                      np.asanyarray(nib.load(outputs["none"] / f"{case}.nii.gz").dataobj))
