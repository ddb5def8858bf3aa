import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.layouts import find_cases
from brainsegfounder.data.validation import validate_cases
from brainsegfounder.fit import main as fit_main
from brainsegfounder.utils.errors import DataError
from tests.conftest import DEMO


def _case_file(root, case, suffix):
    return root / case / f"{case}_{suffix}.nii.gz"


def test_clean_data_passes(brats2021_root):
    validate_cases(find_cases("brats2021", brats2021_root), label_values={0, 1, 2, 4})


def test_mismatched_shape_is_reported_with_subject_and_file(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00002", "t2")
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:-3], image.affine), path)
    with pytest.raises(DataError) as err:
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})
    message = str(err.value)
    assert "BraTS2021_00002" in message and "BraTS2021_00002_t2.nii.gz" in message
    assert "shape" in message and "co-register" in message.lower()


def test_shifted_affine_is_reported(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00001", "t1")
    image = nib.load(path)
    affine = image.affine.copy()
    affine[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), path)
    with pytest.raises(DataError, match=r"BraTS2021_00001.*another affine"):
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})


def test_truncated_gzip_is_reported(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00004", "flair")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"BraTS2021_00004.*flair.*cannot be read.*truncated"):
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})


def test_unexpected_label_value_is_reported(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00005", "seg")
    image = nib.load(path)
    label = np.asarray(image.dataobj).copy()
    label[label == 4] = 3  # the 2023 convention in a 2021 data set
    nib.save(nib.Nifti1Image(label, image.affine), path)
    with pytest.raises(DataError, match=r"BraTS2021_00005.*unexpected values \[3\]"):
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})


def test_problems_are_all_listed_at_once(brats2021_copy):
    for case in ("BraTS2021_00001", "BraTS2021_00006"):
        path = _case_file(brats2021_copy, case, "t2")
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="2 problem") as err:
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})
    assert "BraTS2021_00001" in str(err.value) and "BraTS2021_00006" in str(err.value)


def test_fit_refuses_bad_data_before_training_without_traceback(brats2021_copy, tmp_path, capsys):
    path = _case_file(brats2021_copy, "BraTS2021_00007", "seg")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(SystemExit) as exit_info:
        fit_main(["--config", str(DEMO), f"--data.init_args.root={brats2021_copy}",
                  f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                  "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "BraTS2021_00007_seg.nii.gz" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.ckpt"))


def _rewrite(path, change):
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.float32)
    nib.save(nib.Nifti1Image(change(data), image.affine), path)


def test_all_zero_modality_is_refused_naming_the_file(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00003", "t1ce")
    _rewrite(path, np.zeros_like)
    with pytest.raises(DataError) as err:
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})
    assert "BraTS2021_00003_t1ce.nii.gz" in str(err.value) and "constant" in str(err.value)


def test_nan_voxels_are_refused_with_their_count(brats2021_copy):
    path = _case_file(brats2021_copy, "BraTS2021_00004", "flair")

    def poison(data):
        data.flat[:7] = np.nan
        data.flat[7:9] = np.inf
        return data

    _rewrite(path, poison)
    with pytest.raises(DataError, match=r"BraTS2021_00004_flair.nii.gz holds 9 NaN/Inf voxel"):
        validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4})
    validate_cases(find_cases("brats2021", brats2021_copy), label_values={0, 1, 2, 4}, allow_non_finite=True)
