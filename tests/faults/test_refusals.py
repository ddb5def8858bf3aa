"""Refusals that used to be tracebacks or said the wrong thing: each is now one line that names what
is wrong and what to do, and leaves no folder behind. Real NIfTI files, a real tiny checkpoint."""

from __future__ import annotations

import os
import pickle

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.predict import main as predict_main
from brainsegfounder.utils.errors import DataError, WeightsError
from brainsegfounder.utils.safe_load import safe_load
from tests.faults.conftest import assert_one_clear_line, checksums

PWNED = "/tmp/brainsegfounder-fault-suite-pwned-protocol4"


def _predict(checkpoint, inputs, output, *extra) -> int:
    return predict_main(["--ckpt", str(checkpoint), "--input", *map(str, inputs), "--output", str(output),
                         "--device", "cpu", *extra])


@pytest.mark.parametrize(("option", "value", "needles"), [
    ("--roi_size", "50", ("--roi_size 50x50x50", "multiple of 32", "try 64")),
    ("--roi_size", "0", ("--roi_size 0x0x0", "multiple of 32")),
    ("--overlap", "1.5", ("--overlap 1.5", "below 1")),
    ("--overlap", "-0.1", ("--overlap -0.1", "at least 0")),
])
def test_window_options_the_network_cannot_run_are_one_line_and_leave_no_folder(
        random_checkpoint, cases, tmp_path, capsys, option, value, needles):
    out = tmp_path / "pred"
    before = checksums(cases)
    code = _predict(random_checkpoint, [cases], out, option, value)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_clear_line(err, *needles)
    assert not out.exists() and checksums(cases) == before


def test_a_4d_modality_file_is_called_a_series_not_a_corrupt_file(random_checkpoint, cases, tmp_path, capsys):
    path = cases / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    image = nib.load(path)
    series = np.stack([np.asarray(image.dataobj)] * 2, axis=-1)
    nib.save(nib.Nifti1Image(series, image.affine), path)
    code = _predict(random_checkpoint, [cases], tmp_path / "pred")
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_clear_line(err, str(path), "2 volumes of shape (40, 40, 32) (a 4-D series)", "one 3-D volume")
    assert "corrupt" not in err and "truncated" not in err


class _Payload:
    def __reduce__(self):
        return os.system, (f"touch {PWNED}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_hostile_raw_pickle_is_named_as_code_whatever_its_protocol(tmp_path, protocol):
    """torch's weights-only reader stops at protocol 4's first FRAME opcode, before any code reference:
    the file used to be called "corrupt" (protocol 4) while protocol 2 was correctly refused as code."""
    path = tmp_path / "hostile.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": {"w": [0.0]}, "payload": _Payload()}, handle, protocol=protocol)
    with pytest.raises(WeightsError) as caught:
        safe_load(path)
    text = str(caught.value)
    assert "contains code references that are not allowed" in text and "system" in text, text
    assert "it was not run" in text and "corrupt" not in text
    assert not os.path.exists(PWNED)


def test_a_plain_pickle_is_called_a_pickle_with_the_way_to_save_weights(tmp_path):
    path = tmp_path / "weights.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"w": [1.0, 2.0]}, handle, protocol=4)
    with pytest.raises(WeightsError, match=r"plain pickle file, not a torch checkpoint; save the weights with torch.save"):
        safe_load(path)


def test_folds_that_leave_no_training_subject_are_refused_naming_the_folds(brats2021_root):
    data = SegmentationDataModule(root=str(brats2021_root), patch_size=64, n_folds=2, fold=0, test_fold=1,
                                  validate="off")
    with pytest.raises(DataError) as caught:
        data.setup("fit")
    text = str(caught.value)
    assert "no training subject is left" in text and "2 fold(s)" in text
    assert "fold 0 validates and fold 1 is the test set" in text and "data.n_folds 3 or more" in text


def test_a_refusal_after_the_output_folder_was_made_leaves_no_empty_folder(random_checkpoint, cases, tmp_path,
                                                                           capsys):
    broken = cases / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    kept = tmp_path / "kept"
    kept.mkdir()
    code = _predict(random_checkpoint, [cases], kept / "new" / "pred")  # the folder is made, then the data refused
    err = capsys.readouterr().err
    assert code == 2 and "cannot be read" in err
    assert not (kept / "new").exists() and kept.is_dir()  # what existed before stays
