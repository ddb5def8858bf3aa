"""Inputs that differ from the training data in ways a person does not see: a background that is
not 0, empty space around the head, no background at all. Each is made to conform (the same
probabilities as the prepared case) or said by name. Real synthetic BraTS cases on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.conform import CropToForeground, ZeroConstantBackground, border_constant
from brainsegfounder.inference.inputs import find_inputs
from brainsegfounder.inference.predictor import Predictor
from brainsegfounder.predict import main as predict_main

MODALITIES = ("flair", "t1ce", "t1", "t2")
PAD = ((9, 14), (20, 3), (6, 11))  # voxels added before and after, per axis


def _rewrite(source: Path, dest: Path, change) -> Path:
    """Copy one case folder, passing each image (not the label) through ``change(data, affine)``."""
    dest.mkdir(parents=True)
    for path in source.glob("*.nii.gz"):
        image = nib.load(path)
        if path.name.endswith("_seg.nii.gz"):
            shutil.copy(path, dest / path.name)
            continue
        data, affine = change(np.asarray(image.dataobj).astype(np.float32), image.affine.copy())
        nib.save(nib.Nifti1Image(data, affine), dest / path.name)
    return dest


def _padded(data, affine):
    out = np.pad(data, PAD)
    affine[:3, 3] -= affine[:3, :3] @ np.array([p[0] for p in PAD])  # world coordinates kept
    return out, affine


def _inside(array: np.ndarray) -> np.ndarray:
    """The original extent of a padded (..., X, Y, Z) array."""
    return array[(..., *(slice(b, s - a) for (b, a), s in zip(PAD, array.shape[-3:], strict=True)))]


@pytest.fixture(scope="module")
def case(brats2021_root) -> Path:
    return brats2021_root / "BraTS2021_00000"


def _predict(checkpoint, folder: Path, **kwargs):
    predictor = Predictor.from_checkpoints([checkpoint], device="cpu", **kwargs)
    return predictor.predict_case(find_inputs([folder], MODALITIES)[0])


def test_padding_with_empty_space_changes_no_probability_inside_the_original_extent(random_checkpoint, case, tmp_path):
    padded = _rewrite(case, tmp_path / "padded" / case.name, _padded)
    original, bigger = _predict(random_checkpoint, case), _predict(random_checkpoint, padded)
    assert bigger.label.shape == tuple(s + a + b for s, (a, b) in zip(original.label.shape, PAD, strict=True))
    np.testing.assert_allclose(_inside(bigger.probabilities), original.probabilities, atol=1e-5)
    np.testing.assert_array_equal(_inside(bigger.label), original.label)
    assert (bigger.label > 0).sum() == (original.label > 0).sum()  # nothing marked in the padding
    # MONAI's whole-volume grid (bbox=False, what the bundle runs) is what moved with the padding.
    plain = _predict(random_checkpoint, padded, bbox=False)
    assert np.abs(_inside(plain.probabilities) - original.probabilities).max() > 1e-3


def test_a_constant_background_offset_is_set_to_zero_and_gives_the_prepared_result(random_checkpoint, case, tmp_path):
    shifted = _rewrite(case, tmp_path / "offset" / case.name, lambda d, a: (d + 10.0, a))
    assert border_constant(nib.load(next(shifted.glob("*_flair.nii.gz"))).get_fdata()) == 10.0
    original, offset = _predict(random_checkpoint, case), _predict(random_checkpoint, shifted)
    # float32 rounding of x + 10 - 10 is the only difference left (it was a z-score over the air).
    np.testing.assert_allclose(offset.probabilities, original.probabilities, atol=1e-4)
    assert (offset.label != original.label).sum() <= 5


def test_predict_says_which_files_it_conformed_and_which_do_not_look_skull_stripped(random_checkpoint, case,
                                                                                   tmp_path, capsys):
    root = tmp_path / "data"
    _rewrite(case, root / "BraTS2021_00000", lambda d, a: (d + 10.0, a))
    rng = np.random.default_rng(0)
    _rewrite(case, root / "BraTS2021_00001", lambda d, a: (d + rng.uniform(1, 5, d.shape).astype(np.float32), a))
    assert predict_main(["--ckpt", str(random_checkpoint), "--input", str(root), "--output", str(tmp_path / "p"),
                         "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    line = next(t for t in err.splitlines() if "BraTS2021_00000" in t and "background" in t)
    assert "constant background of 10" in line and "subtracted from the image" in line
    line = next(t for t in err.splitlines() if "BraTS2021_00001" in t and "skull-stripped" in t)
    # Not a terminal (a batch job's log): one line per case with its volumes, as the bar would show.
    assert any(t.startswith("1/2 BraTS2021_00000: TC ") and " mL (" in t for t in err.splitlines()), err
    assert any(t.startswith("2/2 BraTS2021_00001: TC ") for t in err.splitlines()), err
    assert "0.0% of its voxels are 0" in line and "BraTS2021_00001/BraTS2021_00000_flair.nii.gz" in line, err


def test_the_transforms_on_their_own():
    import torch
    import torchio as tio

    volume = torch.full((1, 24, 24, 24), 7.0)
    volume[0, 8:16, 8:16, 8:16] = 20.0
    subject = tio.Subject(t1=tio.ScalarImage(tensor=volume.clone()))
    out = ZeroConstantBackground()(subject).t1.data
    assert int((out == 0).sum()) == 24 ** 3 - 8 ** 3 and float(out[0, 11, 11, 11]) == 13.0
    brain_at_edge = torch.zeros(1, 24, 24, 24)
    brain_at_edge[0, 0:4, 5:9, 20:24] = 1.0
    cropped = CropToForeground(margin=2)(tio.Subject(t1=tio.ScalarImage(tensor=brain_at_edge))).t1
    assert cropped.shape == (1, 8, 8, 8)  # 4 + 2 + 2 each way: padded with 0 past the volume's edge
    assert float(cropped.data[0, 2, 2, 2]) == 1.0 and float(cropped.data[0, 0, 0, 0]) == 0.0
