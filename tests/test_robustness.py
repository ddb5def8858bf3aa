"""The robustness study: a real tiny checkpoint from a one-step fit, real NIfTI cases, all 15 subsets."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torchio as tio

from brainsegfounder.data.layouts import find_cases
from brainsegfounder.data.transforms import PreprocessingRecord
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.robustness import main, module_predict_fn, read_cases, robustness_study, summarise
from brainsegfounder.tasks.segmentation import SegmentationModule

MODALITIES = ("flair", "t1ce", "t1", "t2")


def test_study_with_a_real_tiny_module_on_two_cases(cropped_cases):
    """Two real cases through the checkpoint-free path: a tiny module as predict_fn (MONAI sliding
    window), the full set and FLAIR alone (the fast subset of the study; all 15 run in the slow test)."""
    module = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4,
                                regions="brats2021", modalities=list(MODALITIES), roi_size=64, sw_batch_size=1).eval()
    transform = tio.Compose(PreprocessingRecord(modalities=MODALITIES).transforms(module.roi_size))
    cases = list(read_cases(cropped_cases, "brats2021", MODALITIES, transform))
    assert [images["flair"].shape for _, images, _ in cases] == [(64, 64, 64)] * 2   # padded like training
    assert all(np.isin(label, [0, 1, 2, 4]).all() and (label > 0).any() for _, _, label in cases)
    rows = robustness_study(module_predict_fn(module, MODALITIES), cases, MODALITIES, module.scheme,
                            subsets=[MODALITIES, ("flair",)])
    assert [(r["modalities"], r["missing"]) for r in rows] == [("flair+t1ce+t1+t2", ""), ("flair", "t1ce+t1+t2")] * 2
    for row in rows:
        assert all(0.0 <= row[f"dice_{r}"] <= 1.0 for r in ("TC", "WT", "ET"))
        assert row["dice_mean"] == pytest.approx(np.mean([row["dice_TC"], row["dice_WT"], row["dice_ET"]]))
    summary = summarise(rows)
    assert [(s["modalities"], s["cases"]) for s in summary] == [("flair+t1ce+t1+t2", 2), ("flair", 2)]


@pytest.mark.slow
def test_command_writes_csv_markdown_and_plot(checkpoint, cropped_cases, tmp_path, capsys):
    """All 15 subsets of a real one-step fit's checkpoint on the held-out case of a split file."""
    held_out = sorted(c.subject_id for c in find_cases("brats2021", cropped_cases))[1:]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"folds": {}, "val": held_out}))
    out = tmp_path / "study"
    paths = main(["--ckpt", str(checkpoint), "--data", str(cropped_cases), "--layout", "brats2021",
                  "--split_file", str(split), "--out", str(out)])
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15 and {r["case"] for r in rows} == set(held_out)
    table = paths["md"].read_text().splitlines()
    assert table[2] == "| modalities | cases | TC | WT | ET | mean |"
    assert len([line for line in table if line.startswith("| flair") or line.startswith("| t")]) == 15
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "flair+t1ce+t1+t2" in capsys.readouterr().out


def test_missing_checkpoint_is_one_line_and_exit_2(cropped_cases, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--ckpt", str(tmp_path / "none.ckpt"), "--data", str(cropped_cases), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "none.ckpt does not exist" in capsys.readouterr().err
