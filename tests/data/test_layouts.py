import json
import random

import numpy as np
import pytest
import torchio as tio

from brainsegfounder.data.layouts import LAYOUTS, find_cases, load_subjects, read_fold_json
from brainsegfounder.utils.errors import DataError


def test_brats2021_reader_finds_every_case_in_channel_order(brats2021_root):
    subjects = load_subjects("brats2021", brats2021_root)
    assert len(subjects) == 10
    first = subjects[0]
    assert first.subject_id == "BraTS2021_00000"
    assert list(first.get_images_dict(intensity_only=True)) == ["flair", "t1ce", "t1", "t2"]
    assert isinstance(first["label"], tio.LabelMap)
    assert set(np.unique(first["label"].numpy())) <= {0, 1, 2, 4}


def test_brats2023_reader_uses_its_names_and_labels(brats2023_root):
    cases = find_cases("brats2023", brats2023_root)
    assert [c.subject_id for c in cases][:2] == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    assert list(cases[0].images) == list(LAYOUTS["brats2023"].modalities) == ["t2f", "t1c", "t1n", "t2w"]
    label = load_subjects("brats2023", brats2023_root)[0]["label"].numpy()
    assert set(np.unique(label)) <= {0, 1, 2, 3} and 3 in np.unique(label)


def test_fold_json_order_of_images_is_not_trusted(brats2021_root, tmp_path):
    spec = json.loads((brats2021_root / "brats21_folds.json").read_text())
    for entry in spec["training"]:
        random.Random(0).shuffle(entry["image"])
    fold_file = tmp_path / "folds.json"
    fold_file.write_text(json.dumps(spec))
    cases = read_fold_json(fold_file, root=brats2021_root)
    assert len(cases) == 10
    for case in cases:
        assert list(case.images) == ["flair", "t1ce", "t1", "t2"]
        for modality, path in case.images.items():
            assert path.name.endswith(f"_{modality}.nii.gz") and path.exists()
        assert case.fold is not None


def test_missing_root_and_empty_root_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_cases("brats2021", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no brats2021 cases found"):
        find_cases("brats2021", tmp_path)


def test_missing_modality_names_subject_and_file(brats2021_copy):
    (brats2021_copy / "BraTS2021_00003" / "BraTS2021_00003_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS2021_00003.*'t1ce' is missing.*BraTS2021_00003_t1ce\.nii\.gz"):
        find_cases("brats2021", brats2021_copy)
