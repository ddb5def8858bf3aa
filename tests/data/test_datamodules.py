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


def test_lightning_cli_links_the_record_and_attributes_at_instantiation(brats2021_root):
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    class Probe(pl.LightningModule):  # stands in for a task: what it takes from the data module
        def __init__(self, in_channels: int = 1, modalities: list[str] | None = None, roi_size: tuple = (),
                     preprocessing: dict | None = None):
            super().__init__()
            self.in_channels, self.modalities, self.roi_size = in_channels, modalities, roi_size
            self.preprocessing = preprocessing

    class LinkingCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data", "model.in_channels", compute_fn=lambda dm: dm.in_channels,
                                  apply_on="instantiate")
            parser.link_arguments("data", "model.modalities", compute_fn=lambda dm: list(dm.modalities),
                                  apply_on="instantiate")
            parser.link_arguments("data", "model.roi_size", compute_fn=lambda dm: dm.patch_size,
                                  apply_on="instantiate")
            parser.link_arguments("data", "model.preprocessing",
                                  compute_fn=lambda dm: dm.preprocessing_record.to_dict(), apply_on="instantiate")

    cli = LinkingCLI(Probe, UnlabelledDataModule, run=False, save_config_callback=None,
                     trainer_defaults={"logger": False, "enable_checkpointing": False},
                     args=[f"--data.root={brats2021_root}", "--data.layout=brats2021", "--data.modalities=[t1, flair]",
                           "--data.patch_size=64", "--data.validate=off"])
    assert (cli.model.in_channels, cli.model.modalities, tuple(cli.model.roi_size)) == (2, ["t1", "flair"], (64, 64, 64))
    assert PreprocessingRecord.from_dict(cli.model.preprocessing) == cli.datamodule.preprocessing_record


def test_a_test_fold_is_neither_trained_on_nor_validated_on_nor_seen_by_stage2(brats2021_root):
    finetune = SegmentationDataModule(root=str(brats2021_root), fold=0, test_fold=1, **FAST)
    finetune.setup("fit")
    train, val, test = ids(finetune.train_cases), ids(finetune.val_cases), ids(finetune.test_cases)
    assert len(test) == 2 and test == set(finetune.folds[1]) and len(train) == 6
    assert test.isdisjoint(train | val) and train | val | test == set().union(*map(set, finetune.folds.values()))
    stage2 = UnlabelledDataModule(root=str(brats2021_root), layout="brats2021", exclude_fold=[0, 1], **FAST)
    stage2.setup("fit")
    assert ids(stage2.train_cases) | ids(stage2.val_cases) == train
    with pytest.raises(Exception, match="test_fold and data.fold are both 0"):
        SegmentationDataModule(root=str(brats2021_root), fold=0, test_fold=0, **FAST)
