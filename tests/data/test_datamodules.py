"""Both data modules find cases and split them through one piece of code, and describe themselves."""

import pytest

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import read_fold_json
from brainsegfounder.data.splits import case_folds, kfold_split, save_split
from brainsegfounder.data.transforms import PreprocessingRecord
from brainsegfounder.data.unlabelled import UnlabelledDataModule

FAST = {"patch_size": 64, "validate": "off"}


def ids(cases):
    return {c.subject_id for c in cases}


def test_stage2_never_sees_the_finetuning_validation_fold_of_a_monai_fold_file(brats2021_root):
    fold_file = str(brats2021_root / "brats21_folds.json")
    everyone = ids(read_fold_json(fold_file, brats2021_root))
    # The fold file's folds are not the seeded k-fold's: re-deriving a split (the old bug) held out
    # other subjects than fine-tuning validates on.
    file_folds = case_folds(read_fold_json(fold_file, brats2021_root))
    assert any(set(file_folds[k]) != set(v) for k, v in kfold_split(sorted(everyone), 5, 0).items())
    for k in range(5):
        finetune = SegmentationDataModule(root=str(brats2021_root), fold_file=fold_file, fold=k, **FAST)
        finetune.setup("fit")
        stage2 = UnlabelledDataModule(root=str(brats2021_root), layout="brats2021", fold_file=fold_file,
                                      exclude_fold=k, **FAST)
        stage2.setup("fit")
        seen = ids(stage2.train_cases) | ids(stage2.val_cases)
        assert seen.isdisjoint(ids(finetune.val_cases)), k
        assert seen == ids(finetune.train_cases) and seen | ids(finetune.val_cases) == everyone


def test_a_saved_split_file_is_honoured_by_both(brats2021_root, tmp_path):
    split = save_split(tmp_path / "split.json", kfold_split([f"BraTS2021_{i:05d}" for i in range(10)], 5, seed=7))
    finetune = SegmentationDataModule(root=str(brats2021_root), split_file=str(split), fold=2, **FAST)
    stage2 = UnlabelledDataModule(root=str(brats2021_root), layout="brats2021", split_file=str(split),
                                  exclude_fold=2, **FAST)
    finetune.setup("fit")
    stage2.setup("fit")
    assert (ids(stage2.train_cases) | ids(stage2.val_cases)).isdisjoint(ids(finetune.val_cases))
    assert len(ids(stage2.train_cases) | ids(stage2.val_cases)) == 8


def test_both_expose_a_typed_preprocessing_record(brats2021_root):
    seg = SegmentationDataModule(root=str(brats2021_root), patch_size=[64, 64, 96], spacing=2.0, validate="off")
    assert seg.preprocessing_record == PreprocessingRecord(
        modalities=("flair", "t1ce", "t1", "t2"), layout="brats2021", spacing=2.0, crop_to_brain=False,
        scheme="brats2021", roi_size=(64, 64, 96))
    assert (seg.in_channels, seg.scheme.name, seg.patch_size) == (4, "brats2021", (64, 64, 96))
    ssl = UnlabelledDataModule(root=str(brats2021_root), layout="brats2021", modalities=["t1", "flair"], **FAST)
    assert ssl.preprocessing_record == PreprocessingRecord(modalities=("t1", "flair"), layout="brats2021",
                                                           roi_size=(64, 64, 64))
    assert (ssl.in_channels, ssl.scheme, ssl.modalities) == (2, None, ["t1", "flair"])
    assert PreprocessingRecord.from_dict(seg.preprocessing_record.to_dict()) == seg.preprocessing_record


def test_unknown_fold_to_exclude_names_the_folds(brats2021_root):
    dm = UnlabelledDataModule(root=str(brats2021_root), layout="brats2021", exclude_fold=7, **FAST)
    with pytest.raises(Exception, match="fold 7 does not exist"):
        dm.setup("fit")
