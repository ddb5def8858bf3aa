"""predict on a raw study in one command: a DICOM study folder (prepared on the fly) and NIfTI series
with --preprocess; label maps on every series' own grid, a DICOM SEG, and a rerun that reuses."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np

from brainsegfounder.predict import main as predict_main
from tests.clinical.conftest import CASE, MODALITIES
from tests.faults.conftest import checksums


def test_predict_takes_a_dicom_study_and_writes_results_on_every_native_grid(checkpoint, raw_study, tmp_path, capsys):
    study = raw_study / "raw" / "dicom" / CASE
    before = checksums(study)
    out = tmp_path / "pred"
    args = ["--ckpt", str(checkpoint), "--input", str(study), "--output", str(out), "--device", "cpu",
            "--spacing", "2", "--skull_strip", "yes"]
    assert predict_main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "skipped series 1 'localizer' (a localizer)" in err and "registered to t1ce" in err
    # The small grids' FLAIR (1.8 x 1.8 x 5 mm) and T2 (1.5 x 1.5 x 4 mm) are thick-sliced: said, and kept.
    assert "flair (3 'AX T2 FLAIR') has 5 mm slices: between them the prepared images are interpolated" in err
    label = nib.load(out / f"{CASE}.nii.gz")
    assert np.allclose(np.diag(label.affine)[:3], 2.0)
    assert label.shape == nib.load(out / "prepared" / CASE / f"{CASE}_flair.nii.gz").shape
    for modality in MODALITIES:
        native = nib.load(out / "native" / f"{CASE}_{modality}.nii.gz")
        raw = nib.load(raw_study / "raw" / "nifti" / CASE / f"{CASE}_{modality}.nii.gz")
        assert native.shape == raw.shape and np.allclose(native.affine, raw.affine, atol=1e-3)
    assert (out / "dicom_seg" / f"{CASE}_flair.dcm").exists()
    with open(out / "volumes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["volumes_on"].startswith("the prepared grid (2 mm")
    assert rows[0]["thick_slices"] == "flair 5 mm; t2 4 mm"
    assert checksums(study) == before
    assert predict_main(args) == 0  # a rerun reuses the preparation and skips the case
    err = capsys.readouterr().err
    assert "same files and options" in err and "skipped 1 case(s)" in err
    assert predict_main([*args, "--interpolation", "linear"]) == 2  # other options: said, nothing replaced
    err = capsys.readouterr().err
    assert "interpolation: bspline then, linear now" in err and "--overwrite" in err
    assert predict_main([*args, "--interpolation", "cubic"]) == 2
    assert "--interpolation 'cubic': choose bspline or linear" in capsys.readouterr().err


def test_predict_preprocess_takes_nifti_series_on_their_own_grids(checkpoint, raw_study, tmp_path, capsys):
    study = raw_study / "raw" / "nifti" / CASE
    out = tmp_path / "pred"
    code = predict_main(["--ckpt", str(checkpoint), "--input", str(study), "--output", str(out), "--device", "cpu",
                         "--spacing", "2", "--preprocess"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / f"{CASE}.nii.gz").exists() and len(list((out / "native").glob("*.nii.gz"))) == 4
    assert not (out / "dicom_seg").exists()  # no DICOM source to reference
    without = predict_main(["--ckpt", str(checkpoint), "--input", str(study), "--output", str(tmp_path / "p2"),
                            "--device", "cpu"])
    err = capsys.readouterr().err
    assert without == 2 and "Resample the modalities to one grid" in err and "--preprocess" in err
