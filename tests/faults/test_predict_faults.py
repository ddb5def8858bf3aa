"""predict under faults: every one ends non-zero in one line naming the file (or is handled as
documented), no input byte changes, no temp file remains. Real NIfTI files, a real tiny checkpoint."""

from __future__ import annotations

import csv
import gzip
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegfounder.inference.writers import RECORD_FILE, VOLUMES_FILE
from brainsegfounder.predict import main
from tests.faults.conftest import (
    assert_one_clear_line,
    checksums,
    code_carrying_checkpoint,
    temp_files,
)


def _predict(random_checkpoint, inputs, output, *extra):
    return main(["--ckpt", str(random_checkpoint), "--input", *map(str, inputs), "--output", str(output),
                 "--device", "cpu", *extra])


def _refused(capsys, random_checkpoint, inputs, output, *needles, extra=(), roots=()):
    before = checksums(*roots)
    code = _predict(random_checkpoint, inputs, output, *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_clear_line(err, *needles)
    assert checksums(*roots) == before
    return err


def test_truncated_image_is_refused_before_any_case_is_predicted(random_checkpoint, cases, tmp_path, capsys):
    broken = cases / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    out = tmp_path / "pred"
    _refused(capsys, random_checkpoint, [cases], out, str(broken), "cannot be read", roots=[cases])
    assert not list(out.glob("*.nii.gz")) and not temp_files(out)  # the good case was not predicted either


def test_nan_voxels_are_refused_or_zeroed_and_counted_when_asked(random_checkpoint, cases, tmp_path, capsys):
    path = cases / "BraTS2021_00000" / "BraTS2021_00000_t1.nii.gz"
    image = nib.load(path)
    data = image.get_fdata().astype(np.float32)
    data[:3, :3, :3] = np.nan
    data[0, 0, 5] = np.inf
    nib.save(nib.Nifti1Image(data, image.affine), path)
    out = tmp_path / "pred"
    _refused(capsys, random_checkpoint, [cases], out, str(path), "28 NaN/Inf voxel(s)", roots=[cases])

    before = checksums(cases)
    assert _predict(random_checkpoint, [cases], out, "--non_finite", "zero") == 0
    err = capsys.readouterr().err
    assert "BraTS2021_00000: 28 NaN/Inf voxel(s) replaced by 0" in err
    rows = {r["case_id"]: r for r in csv.DictReader(open(out / VOLUMES_FILE))}
    assert rows["BraTS2021_00000"]["non_finite_voxels"] == "28" and rows["BraTS2021_00001"]["non_finite_voxels"] == "0"
    assert checksums(cases) == before and not temp_files(out)


def test_all_zero_modality_is_refused_naming_the_file(random_checkpoint, cases, tmp_path, capsys):
    path = cases / "BraTS2021_00001" / "BraTS2021_00001_flair.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 32), np.float32), np.diag([2.0, 2, 2, 1])), path)
    _refused(capsys, random_checkpoint, [cases], tmp_path / "pred", str(path), "is constant (every voxel is 0)", roots=[cases])


def test_code_carrying_or_nan_checkpoint_is_refused_as_what_it_is(random_checkpoint, cases, tmp_path, capsys):
    hostile = code_carrying_checkpoint(tmp_path / "hostile.ckpt")
    _refused(capsys, hostile, [cases], tmp_path / "pred", "contains code references that are not allowed",
             "posix.system", "it was not run", roots=[cases, hostile.parent])
    nan = tmp_path / "nan.ckpt"
    saved = torch.load(random_checkpoint, weights_only=True)
    saved["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                           for k, v in saved["state_dict"].items()}
    torch.save(saved, nan)
    _refused(capsys, nan, [cases], tmp_path / "pred", str(nan), "NaN/Inf", roots=[cases])


def test_foreign_or_truncated_file_with_an_output_name_is_refused_unless_overwrite(random_checkpoint, cases, tmp_path, capsys):
    out = tmp_path / "pred"
    assert _predict(random_checkpoint, [cases], out) == 0
    label = out / "BraTS2021_00000.nii.gz"
    assert (out / RECORD_FILE).exists()
    # A rerun trusts what it wrote.
    capsys.readouterr()
    assert _predict(random_checkpoint, [cases], out) == 0 and "skipped 2 case(s)" in capsys.readouterr().err
    # Truncated in place (a copy that stopped half-way).
    good = label.read_bytes()
    label.write_bytes(good[: len(good) // 2])
    _refused(capsys, random_checkpoint, [cases], out, str(label), "changed since it was written", roots=[cases])
    # A foreign file carrying an output's name: its volumes must not reach volumes.csv.
    shutil.copy(cases / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz", label)
    (out / RECORD_FILE).unlink()
    before_csv = (out / VOLUMES_FILE).read_text()
    _refused(capsys, random_checkpoint, [cases], out, "not written by brainsegfounder.predict", "--overwrite", roots=[cases])
    assert (out / VOLUMES_FILE).read_text() == before_csv
    assert _predict(random_checkpoint, [cases], out, "--overwrite") == 0
    assert label.read_bytes() != (cases / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz").read_bytes()
    assert not temp_files(out)


def test_output_in_the_data_set_root_of_a_case_folder_is_refused(random_checkpoint, cases, capsys):
    case = cases / "BraTS2021_00000"
    _refused(capsys, random_checkpoint, [case], cases, "data set root", roots=[cases])
    _refused(capsys, random_checkpoint, [case], cases / "predictions", "data set root", roots=[cases])
    assert not (cases / "predictions").exists()


def test_a_case_lacking_t2_is_named_with_the_file_it_expected(random_checkpoint, cases, tmp_path, capsys):
    missing = cases / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    missing.unlink()
    err = _refused(capsys, random_checkpoint, [cases], tmp_path / "pred", roots=[cases])
    assert "BraTS2021_00001_t2.nii.gz" in err


def test_read_only_output_is_one_line_and_leaves_nothing(random_checkpoint, cases, tmp_path, capsys, mounted_tmpfs):
    out = mounted_tmpfs(tmp_path / "ro", "ro,size=64k")
    _refused(capsys, random_checkpoint, [cases], out / "pred", "not writable", roots=[cases])
    assert not list(out.rglob("*"))


def test_full_disk_is_one_line_and_leaves_no_temp_file(random_checkpoint, cases, tmp_path, capsys, mounted_tmpfs):
    out = mounted_tmpfs(tmp_path / "small", "size=64k")
    # Fill it up, leaving room for the folder entries but not for a label map.
    subprocess.run(["dd", "if=/dev/zero", f"of={out / 'filler'}", "bs=4k"], capture_output=True, check=False)
    _refused(capsys, random_checkpoint, [cases], out, "the disk is full", roots=[cases])
    assert not temp_files(out) and not list(out.glob("BraTS*"))


def test_gzip_stream_with_a_bad_crc_is_refused(random_checkpoint, cases, tmp_path, capsys):
    # Not shorter, but corrupt inside: only reading every voxel finds it.
    path = cases / "BraTS2021_00000" / "BraTS2021_00000_t1ce.nii.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    packed = bytearray(gzip.compress(bytes(raw)))
    packed[-8] ^= 0xFF  # the CRC32 of the trailer
    path.write_bytes(bytes(packed))
    _refused(capsys, random_checkpoint, [cases], tmp_path / "pred", str(path), "corrupt", roots=[cases])


@pytest.mark.parametrize("value", ["maybe"])
def test_unknown_non_finite_choice_is_one_line(random_checkpoint, cases, tmp_path, capsys, value):
    _refused(capsys, random_checkpoint, [cases], tmp_path / "pred", "--non_finite", extra=("--non_finite", value),
             roots=[cases])
