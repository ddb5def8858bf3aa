"""Predict: real checkpoints from a short fit, real NIfTI files in tmp folders, outputs read back."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegfounder.checkpoints import PREPROCESSING_KEY
from brainsegfounder.data.layouts import find_cases
from brainsegfounder.data.transforms import PreprocessingRecord
from brainsegfounder.evaluate import evaluate
from brainsegfounder.inference.inputs import find_inputs
from brainsegfounder.inference.predictor import Predictor
from brainsegfounder.inference.writers import PROBABILITY_FOLDER, VOLUMES_FILE
from brainsegfounder.predict import main
from brainsegfounder.utils.errors import DataError, WeightsError

BRATS_MODALITIES = ("flair", "t1ce", "t1", "t2")


def _write_case(folder: Path, arrays: dict[str, np.ndarray], affine: np.ndarray) -> dict[str, Path]:
    folder.mkdir(parents=True)
    paths = {}
    for modality, array in arrays.items():
        paths[modality] = folder / f"{folder.name}_{modality}.nii.gz"
        nib.save(nib.Nifti1Image(array.astype(np.float32), affine), paths[modality])
    return paths


def _source_arrays(brats2021_root: Path, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """A real synthetic subject's modalities, cropped around the tumour to an odd-sized block."""
    case = find_cases("brats2021", brats2021_root)[0]
    label = np.asanyarray(nib.load(case.label).dataobj)
    centre = np.round(np.argwhere(label > 0).mean(0)).astype(int)
    start = [max(0, c - s // 2) for c, s in zip(centre, shape, strict=True)]
    box = tuple(slice(a, a + s) for a, s in zip(start, shape, strict=True))
    return {m: np.asanyarray(nib.load(case.images[m]).dataobj)[box] for m in BRATS_MODALITIES}


def test_checkpoint_records_the_preprocessing_of_training_and_predict_reads_it(checkpoint, tmp_path):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    record = PreprocessingRecord.from_dict(saved[PREPROCESSING_KEY])
    assert record.modalities == BRATS_MODALITIES and record.spacing is None and record.crop_to_brain is False
    assert record.scheme == "brats2021" and record.roi_size == (64, 64, 64)
    if saved[PREPROCESSING_KEY].get("layout") is not None:  # the data module's own record (data layer)
        assert record.layout == "brats2021"
    backbone = saved["hyper_parameters"]["backbone"]
    assert (backbone["preset"], backbone["feature_size"]) == ("tiny", 12)
    predictor = Predictor.from_checkpoints([checkpoint], device="cpu")
    assert predictor.record == record and predictor.modalities == BRATS_MODALITIES

    # A checkpoint written before the Backbone and the typed record: flat backbone arguments in the
    # hyper-parameters and a plain preprocessing dict. It still loads, with the same weights.
    old = dict(saved)
    hparams = {k: v for k, v in saved["hyper_parameters"].items() if k != "backbone"}
    old["hyper_parameters"] = {**hparams, "preset": "tiny", "feature_size": 12, "init_from": None,
                               "freeze_encoder_epochs": 0}
    old[PREPROCESSING_KEY] = {"modalities": list(BRATS_MODALITIES), "layout": "brats2021", "spacing": 2.0,
                              "crop_to_brain": False}
    torch.save(old, tmp_path / "old.ckpt")
    legacy = Predictor.from_checkpoints([tmp_path / "old.ckpt"], device="cpu")
    assert legacy.spacing == 2.0 and legacy.record.layout == "brats2021" and legacy.modalities == BRATS_MODALITIES
    for name, value in legacy.modules[0].state_dict().items():
        assert torch.equal(value, saved["state_dict"][name]), name


def test_geometry_round_trip_lps_anisotropic_odd_sized(checkpoint, brats2021_root, tmp_path):
    # 45 x 51 x 29 voxels (no side a multiple of 32, all below the 64-voxel window: padded) at
    # 1 x 1 x 2 mm, once RAS and once LPS (the same voxels stored with the first two axes reversed).
    arrays = _source_arrays(brats2021_root, (45, 51, 29))
    ras_affine = np.diag([1.0, 1.0, 2.0, 1.0])
    ras_affine[:3, 3] = (-20.0, -30.0, 10.0)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = (44, 50)  # voxel i of the LPS file is voxel 44 - i of the RAS one
    lps_affine = ras_affine @ flip
    ras_files = _write_case(tmp_path / "in" / "ras", arrays, ras_affine)
    lps_files = _write_case(tmp_path / "in" / "lps", {m: a[::-1, ::-1] for m, a in arrays.items()}, lps_affine)
    assert nib.aff2axcodes(nib.load(lps_files["flair"]).affine) == ("L", "P", "S")

    for name, files in (("ras", ras_files), ("lps", lps_files)):
        code = main(["--ckpt", str(checkpoint), "--input", *map(str, files.values()),
                     "--output", str(tmp_path / "out" / name), "--device", "cpu"])
        assert code == 0
    ras_in, lps_in = nib.load(ras_files["flair"]), nib.load(lps_files["flair"])
    ras_out, lps_out = nib.load(tmp_path / "out" / "ras" / "ras.nii.gz"), nib.load(tmp_path / "out" / "lps" / "lps.nii.gz")
    for image_in, image_out in ((ras_in, ras_out), (lps_in, lps_out)):
        assert image_out.shape == image_in.shape == (45, 51, 29)
        np.testing.assert_allclose(image_out.affine, image_in.affine, atol=1e-5)
        assert nib.aff2axcodes(image_out.affine) == nib.aff2axcodes(image_in.affine)
        np.testing.assert_allclose(image_out.header.get_zooms()[:3], (1.0, 1.0, 2.0))
        assert image_out.get_data_dtype() == np.uint8
    ras_label = np.asanyarray(ras_out.dataobj)
    lps_label = np.asanyarray(lps_out.dataobj)
    assert set(np.unique(ras_label).tolist()) <= {0, 1, 2, 4}
    # Both are the same voxels in the same canonical space: identical segmentations, each written
    # back in its own file's orientation.
    np.testing.assert_array_equal(lps_label, ras_label[::-1, ::-1])

    # Independently: the network's output on the padded canonical volume, un-padded by hand.
    predictor = Predictor.from_checkpoints([checkpoint], device="cpu")
    # Pad to 64^3 (before = missing // 2), then z-score every voxel by the brain's mean and std.
    padded = [np.pad(a.astype(np.float64), ((9, 10), (6, 7), (17, 18))) for a in arrays.values()]
    x = np.stack([(a - a[a != 0].mean()) / a[a != 0].std(ddof=1) for a in padded])
    probs = predictor.probabilities(torch.from_numpy(x).float()[None])[0, :, 9:54, 6:57, 17:46]
    expected = predictor.scheme.to_label((probs > 0.5)[None])[0, 0].numpy()
    agreement = (expected == ras_label).mean()
    assert agreement > 0.999, agreement  # z-scores differ only in float rounding from TorchIO's


def test_spacing_of_training_is_repeated_and_undone(checkpoint, brats2021_root, tmp_path):
    # A checkpoint trained on 2 mm resampled data: a 1 x 1 x 2 mm input goes to 2 mm and back.
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved[PREPROCESSING_KEY]["spacing"] = 2.0
    resampling = tmp_path / "resampling.ckpt"
    torch.save(saved, resampling)
    arrays = _source_arrays(brats2021_root, (47, 39, 33))
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    files = _write_case(tmp_path / "in" / "case7", arrays, affine)
    predictor = Predictor.from_checkpoints([resampling], device="cpu")
    assert predictor.spacing == 2.0
    result = predictor.predict_case(find_inputs(list(files.values()), predictor.modalities)[0])
    assert result.label.shape == (47, 39, 33) and result.probabilities.shape == (3, 47, 39, 33)
    np.testing.assert_allclose(result.affine, affine)
    assert set(np.unique(result.label).tolist()) <= {0, 1, 2, 4}
    assert 0.0 <= result.probabilities.min() and result.probabilities.max() <= 1.0


def test_ensemble_of_one_checkpoint_twice_equals_the_checkpoint(checkpoint, two_cases):
    case = find_inputs([two_cases], BRATS_MODALITIES)[0]
    single = Predictor.from_checkpoints([checkpoint], device="cpu").predict_case(case)
    double = Predictor.from_checkpoints([checkpoint, checkpoint], device="cpu").predict_case(case)
    np.testing.assert_allclose(double.probabilities, single.probabilities, atol=1e-6)
    np.testing.assert_array_equal(double.label, single.label)


def test_mirroring_tta_makes_the_prediction_mirror_equivariant(checkpoint, brats2021_root):
    # With all 8 mirrorings averaged, mirroring the input mirrors the output (one 64^3 window, so
    # the tiling cannot break the symmetry).
    arrays = _source_arrays(brats2021_root, (64, 64, 64))
    x = torch.from_numpy(np.stack(list(arrays.values()))).float()[None]
    x = (x - x.mean()) / x.std()
    plain = Predictor.from_checkpoints([checkpoint], device="cpu")
    tta = Predictor.from_checkpoints([checkpoint], device="cpu", tta=True)
    once, mirrored = tta.probabilities(x), tta.probabilities(torch.flip(x, (2,)))
    torch.testing.assert_close(torch.flip(mirrored, (2,)), once, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(torch.flip(plain.probabilities(torch.flip(x, (2,))), (2,)), plain.probabilities(x))


def test_command_writes_outputs_evaluate_reads_them_and_a_rerun_resumes(checkpoint, two_cases, tmp_path, capsys):
    out, png = tmp_path / "pred", tmp_path / "png"
    args = ["--ckpt", str(checkpoint), "--input", str(two_cases), "--output", str(out),
            "--probabilities", "--png", str(png), "--device", "cpu"]
    assert main(args) == 0
    cases = sorted(p.name for p in two_cases.iterdir())
    for case in cases:
        label = nib.load(out / f"{case}.nii.gz")
        source = nib.load(two_cases / case / f"{case}_flair.nii.gz")
        assert label.shape == source.shape and np.allclose(label.affine, source.affine)
        probs = nib.load(out / PROBABILITY_FOLDER / f"{case}.nii.gz")
        assert probs.shape == (*source.shape, 3)
        data = probs.get_fdata()
        assert data.min() >= 0 and data.max() <= 1.0 + 1e-6
        assert (png / f"{case}.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(out / VOLUMES_FILE)))
    assert [r["case_id"] for r in rows] == cases and list(rows[0]) == ["case_id", "TC_ml", "WT_ml", "ET_ml"]
    first = nib.load(out / f"{cases[0]}.nii.gz")
    wt_voxels = int((np.asanyarray(first.dataobj) > 0).sum())
    assert float(rows[0]["WT_ml"]) == pytest.approx(wt_voxels * 8 / 1000, abs=1e-3)  # 2 mm voxels
    assert not (out / ".partial").exists()

    # evaluate pairs on the outputs (the probabilities folder and the CSV are not taken for cases).
    summary = evaluate(out, two_cases, "brats2021", tmp_path / "metrics.csv")
    assert summary["n_cases"] == 2

    # A rerun without --overwrite keeps every file; removing one case's label redoes only that case.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")}
    capsys.readouterr()
    assert main(args) == 0
    assert "skipped 2 case(s)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")} == stamps
    (out / f"{cases[1]}.nii.gz").unlink()
    assert main(args) == 0
    assert (out / f"{cases[1]}.nii.gz").exists()
    for path, stamp in stamps.items():
        if path.name != f"{cases[1]}.nii.gz" or path.parent.name == PROBABILITY_FOLDER:
            assert path.stat().st_mtime_ns == stamp, path  # kept, not rewritten
    assert [r["case_id"] for r in csv.DictReader(open(out / VOLUMES_FILE))] == cases

    # --overwrite redoes everything.
    assert main([*args, "--overwrite"]) == 0
    assert all(p.stat().st_mtime_ns != s for p, s in stamps.items() if p.exists())


def test_refuses_to_write_inside_an_input_case_folder(checkpoint, two_cases, capsys):
    case = sorted(two_cases.iterdir())[0]
    before = sorted(case.iterdir())
    assert main(["--ckpt", str(checkpoint), "--input", str(case), "--output", str(case / "pred")]) == 2
    err = capsys.readouterr().err
    assert "lies inside the input folder" in err and "Traceback" not in err
    assert sorted(case.iterdir()) == before


def test_files_in_another_modality_order_are_refused(checkpoint, two_cases, capsys):
    case = sorted(two_cases.iterdir())[0]
    files = [str(case / f"{case.name}_{m}.nii.gz") for m in ("t1", "t1ce", "flair", "t2")]
    assert main(["--ckpt", str(checkpoint), "--input", *files, "--output", str(two_cases.parent / "o")]) == 2
    assert "looks like modality 't1'" in capsys.readouterr().err


def test_ensemble_members_must_agree_on_regions(checkpoint, tmp_path):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["hyper_parameters"]["regions"] = "brats2023"
    other = tmp_path / "brats2023.ckpt"
    torch.save(saved, other)
    with pytest.raises(WeightsError, match="differ in regions"):
        Predictor.from_checkpoints([checkpoint, other], device="cpu")


def test_inputs_are_found_in_a_root_a_case_folder_or_files(two_cases, tmp_path):
    root_cases = find_inputs([two_cases], BRATS_MODALITIES)
    assert [c.subject_id for c in root_cases] == sorted(p.name for p in two_cases.iterdir())
    folder = sorted(two_cases.iterdir())[0]
    (one,) = find_inputs([folder], BRATS_MODALITIES)
    assert one.subject_id == folder.name and list(one.images) == list(BRATS_MODALITIES)
    (listed,) = find_inputs(list(one.images.values()), BRATS_MODALITIES)
    assert listed.subject_id == folder.name and listed.images == one.images
    with pytest.raises(DataError, match="takes 4 modalities"):
        find_inputs(list(one.images.values())[:3], BRATS_MODALITIES)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no cases found"):
        find_inputs([empty], BRATS_MODALITIES)


def test_missing_checkpoint_is_a_clear_error(tmp_path, two_cases, capsys):
    assert main(["--ckpt", str(tmp_path / "nope.ckpt"), "--input", str(two_cases), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_brain_box_default_and_onnx_runtime_engine_agree_with_the_plain_sliding_window(checkpoint, two_cases):
    case = find_inputs([two_cases], BRATS_MODALITIES)[0]
    plain = Predictor.from_checkpoints([checkpoint], device="cpu", bbox=False).predict_case(case)
    boxed = Predictor.from_checkpoints([checkpoint], device="cpu").predict_case(case)
    np.testing.assert_allclose(boxed.probabilities, plain.probabilities, atol=1e-6)
    onnx = Predictor.from_checkpoints([checkpoint], device="cpu", engine="onnxruntime").predict_case(case)
    np.testing.assert_allclose(onnx.probabilities, plain.probabilities, atol=1e-3)
    fast = Predictor.from_checkpoints([checkpoint], device="cpu", fast=True)
    assert fast.overlaps == [0.25] and not fast.align
    assert fast.predict_case(case).label.shape == plain.label.shape


def test_report_flag_writes_provenance_and_a_page_with_every_case_and_its_volume(checkpoint, two_cases, tmp_path):
    import json

    out = tmp_path / "pred"
    assert main(["--ckpt", str(checkpoint), "--input", str(two_cases), "--output", str(out), "--device", "cpu",
                 "--report"]) == 0
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["checkpoints"] == [str(Path(checkpoint).resolve())]
    assert list(provenance["preprocessing"]["modalities"]) == list(BRATS_MODALITIES)
    page = (out / "report.html").read_text()
    rows = list(csv.DictReader(open(out / VOLUMES_FILE)))
    from brainsegfounder.report.page import volume_text

    for row in rows:  # the page reads 0.1 mL and sorts on the file's value
        assert row["case_id"] in page and f'<td data-v="{row["WT_ml"]}">{volume_text(row["WT_ml"])}</td>' in page
