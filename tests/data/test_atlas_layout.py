"""The ATLAS v2.0 BIDS reader on the synthetic BIDS layout."""

import shutil

import numpy as np
import pytest
import torchio as tio

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import LAYOUTS, find_cases, load_subjects
from brainsegfounder.evaluate import case_id_from_reference
from brainsegfounder.utils.errors import DataError


def test_atlas_reader_finds_each_subject_with_t1w_and_lesion_mask(atlas_root):
    cases = find_cases("atlas", atlas_root)
    assert [c.subject_id for c in cases] == [f"sub-r001s00{i}" for i in range(1, 6)]
    for case in cases:
        assert list(case.images) == ["t1w"] == list(LAYOUTS["atlas"].modalities)
        assert case.images["t1w"].name == f"{case.subject_id}_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz"
        assert case.label.name.endswith("_label-L_desc-T1lesion_mask.nii.gz")
        assert case.label.parent == case.images["t1w"].parent
        # The reader and `evaluate` agree on what a case is called.
        assert case_id_from_reference(case.label) == case.subject_id
    subject = load_subjects("atlas", atlas_root)[0]
    assert isinstance(subject["label"], tio.LabelMap)
    assert set(np.unique(subject["label"].numpy())) == {0, 1}


def test_atlas_data_module_is_one_channel_binary_lesion(atlas_root):
    dm = SegmentationDataModule(root=str(atlas_root), layout="atlas", patch_size=64, n_folds=5, validate="header")
    assert dm.in_channels == 1 and dm.region_names == ("lesion",) and dm.modalities == ["t1w"]
    dm.setup("fit")
    assert len(dm.train_cases) == 4 and len(dm.val_cases) == 1


def test_test_release_without_masks_is_unlabelled_and_refused_for_fine_tuning(atlas_root, tmp_path):
    root = tmp_path / "atlas"
    shutil.copytree(atlas_root, root)
    for mask in root.rglob("*_desc-T1lesion_mask.nii.gz"):
        mask.unlink()
    assert all(c.label is None for c in find_cases("atlas", root))
    dm = SegmentationDataModule(root=str(root), layout="atlas", patch_size=64)
    with pytest.raises(DataError, match="have no label file.*sub-r001s001"):
        dm.setup("fit")


def test_two_sessions_of_one_subject_are_refused_naming_both(atlas_root, tmp_path):
    root = tmp_path / "atlas"
    shutil.copytree(atlas_root, root)
    session = root / "Training" / "R001" / "sub-r001s002" / "ses-1"
    shutil.copytree(session, session.with_name("ses-2"))
    with pytest.raises(DataError, match=r"subject sub-r001s002 has 2 T1w files .*ses-1.*ses-2.*manifest"):
        find_cases("atlas", root)


def test_empty_folder_describes_the_bids_names(tmp_path):
    with pytest.raises(DataError, match="no atlas cases found.*_T1w.nii.gz.*T1lesion_mask"):
        find_cases("atlas", tmp_path)
