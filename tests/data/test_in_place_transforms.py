"""Transforms that work in place (no deep copy per step) leave the data set's subjects untouched."""

import torch
import torchio as tio

from brainsegfounder.data.datamodule import SegmentationDataModule


def test_in_place_preprocessing_gives_the_same_volume_twice(brats2021_root):
    dm = SegmentationDataModule(root=str(brats2021_root), layout="brats2021", patch_size=64, validate="off")
    dm.setup("fit")
    pre = dm.preprocessing()
    assert not pre.copy and not any(t.copy for t in pre.transforms)
    from brainsegfounder.data.layouts import cases_to_subjects

    dataset = tio.SubjectsDataset(cases_to_subjects(dm.train_cases[:1]), transform=pre)
    first, second = dataset[0], dataset[0]
    assert torch.equal(first["flair"].data, second["flair"].data)
    brain = tio.ScalarImage(dm.train_cases[0].images["flair"]).data != 0
    assert abs(float(first["flair"].data[brain].mean())) < 1e-3  # z-scored over the brain
    # The data set's own subject was never loaded or changed by the in-place steps.
    assert not dataset._subjects[0]["flair"]._loaded
    augmented = tio.SubjectsDataset(cases_to_subjects(dm.train_cases[:1]), transform=dm.train_transform())[0]
    assert augmented["flair"].shape == first["flair"].shape
