"""Thick-slice simulation (``augmentation.anisotropy_probability``): each modality on its own draw."""

import csv

import pytest
import torch
import torchio as tio

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import cases_to_subjects
from brainsegfounder.data.transforms import Augmentation
from brainsegfounder.fit import main as fit_main
from brainsegfounder.utils.errors import ConfigError
from tests.conftest import REPO

THICK = Augmentation(flip_probability=0.0, intensity_probability=0.0, anisotropy_probability=1.0,
                     anisotropy_downsampling=(4.0, 4.0))


def _roughness(volume: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour difference along each of the three axes."""
    return torch.stack([volume.diff(dim=axis).pow(2).mean() for axis in (1, 2, 3)])


def _thick_axis(before: torch.Tensor, after: torch.Tensor) -> int:
    """The axis along which the augmented image lost the most detail (its slice direction)."""
    ratio = _roughness(after) / _roughness(before)
    assert float(ratio.min()) < 0.8, f"no axis was smoothed: {ratio.tolist()}"
    return int(ratio.argmin())


def test_each_modality_gets_its_own_thick_slices_and_labels_stay(brats2021_root):
    plain = SegmentationDataModule(root=str(brats2021_root), patch_size=64, validate="off",
                                   augmentation=Augmentation(flip_probability=0.0, intensity_probability=0.0))
    thick = SegmentationDataModule(root=str(brats2021_root), patch_size=64, validate="off", augmentation=THICK)
    for dm in (plain, thick):
        dm.setup("fit")
    case = plain.train_cases[:1]
    before = tio.SubjectsDataset(cases_to_subjects(case), transform=plain.train_transform())[0]
    axes = set()
    for seed in range(3):
        torch.manual_seed(seed)
        after = tio.SubjectsDataset(cases_to_subjects(case), transform=thick.train_transform())[0]
        assert torch.equal(after["label"].data, before["label"].data)  # the truth is never blurred
        drawn = {m: _thick_axis(before[m].data.float(), after[m].data.float()) for m in thick.modalities}
        axes.add(tuple(drawn.values()))
        assert after["flair"].shape == before["flair"].shape
    # Four modalities, three axes each, three draws: one shared axis for all would be a 1-in-27^3 event.
    assert any(len(set(combo)) > 1 for combo in axes), axes


def test_bad_anisotropy_settings_are_config_errors():
    with pytest.raises(ConfigError, match="anisotropy_downsampling"):
        Augmentation(anisotropy_downsampling=(0.5, 2.0))
    with pytest.raises(ConfigError, match="anisotropy_probability"):
        Augmentation(anisotropy_probability=1.5)


def test_fit_with_thick_slice_augmentation_from_the_command_line(brats2021_root, tmp_path):
    cli = fit_main(["--config", str(REPO / "experiments" / "demo.yaml"), f"--data.init_args.root={brats2021_root}",
                    "--data.init_args.augmentation.anisotropy_probability=0.5",
                    "--data.init_args.augmentation.anisotropy_downsampling=[2, 5]",
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=1",
                    "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=1",
                    "--data.init_args.samples_per_volume=1", "--data.init_args.queue_length=2",
                    "--data.init_args.n_folds=2", "--data.init_args.test_fold=null"])
    assert cli.datamodule.augmentation.anisotropy_downsampling == (2.0, 5.0)
    names = [type(t).__name__ for t in cli.datamodule.train_transform().transforms]
    assert names.count("RandomAnisotropy") == len(cli.datamodule.modalities)
    rows = list(csv.DictReader(open(tmp_path / "finetune" / "version_0" / "metrics.csv")))
    assert any(row.get("train/loss") for row in rows) and any(row.get("val/dice_mean") for row in rows)
