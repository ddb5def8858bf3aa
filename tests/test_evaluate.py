"""The evaluate command on real NIfTI files written in each data set's own layout."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder import metrics
from brainsegfounder.evaluate import case_id_from_reference, main, pair_cases, score_case
from brainsegfounder.utils.errors import DataError

SHAPE = (24, 24, 16)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def write(path, data, affine=AFFINE, zooms=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data), affine)
    if zooms is not None:
        image.header.set_zooms(zooms)
    nib.save(image, str(path))
    return path


def tumour(et=4, shift=0):
    label = np.zeros(SHAPE, np.uint8)
    label[4 + shift:16 + shift, 4:16, 3:13] = 2
    label[7 + shift:13 + shift, 7:13, 5:11] = 1
    label[8 + shift:12 + shift, 8:12, 6:10] = et
    return label


def read_csv(path):
    with open(path, newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def test_case_ids_from_each_layout():
    assert case_id_from_reference("x/BraTS2021_01234/BraTS2021_01234_seg.nii.gz") == "BraTS2021_01234"
    assert case_id_from_reference("BraTS-GLI-00002-001-seg.nii.gz") == "BraTS-GLI-00002-001"
    assert case_id_from_reference(
        "R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"
    ) == "sub-r001s001"
    assert case_id_from_reference("sub-r001s001_ses-1.nii.gz") == "sub-r001s001"
    assert case_id_from_reference("flat/case_7.nii") == "case_7"


def test_brats2021_root_layout_csv_summary_and_pngs(tmp_path, capsys):
    ref_root, preds = tmp_path / "BraTS2021", tmp_path / "preds"
    cases = {"BraTS2021_00000": (tumour(), tumour()),                    # perfect
             "BraTS2021_00001": (tumour(shift=2), tumour()),             # shifted by 2 voxels
             "BraTS2021_00002": (np.where(tumour() == 4, 1, tumour()).astype(np.uint8), tumour())}  # ET missed
    for case, (pred, ref) in cases.items():
        write(ref_root / case / f"{case}_seg.nii.gz", ref)
        write(ref_root / case / f"{case}_flair.nii.gz", np.random.default_rng(0).random(SHAPE).astype(np.float32))
        write(preds / f"{case}.nii.gz", pred)
    out = tmp_path / "out" / "metrics.csv"

    assert main(["--pred", str(preds), "--ref", str(ref_root), "--task", "brats2021",
                 "--out", str(out), "--png", str(tmp_path / "png")]) == 0
    rows = read_csv(out)
    assert sorted(rows) == sorted(cases)
    perfect, shifted, missed = (rows[c] for c in sorted(cases))
    for region in metrics.REGIONS:
        assert float(perfect[f"dice_{region}"]) == 1.0 and float(perfect[f"hd95_vox_{region}"]) == 0.0
    # The missed ET: reference has ET, prediction none -> Dice 0 and the grid diagonal in voxels.
    assert float(missed["dice_ET"]) == 0.0
    assert float(missed["hd95_vox_ET"]) == pytest.approx(np.sqrt(24**2 + 24**2 + 16**2))
    assert float(missed["dice_TC"]) == 1.0
    # The shifted case equals the metric functions on the same arrays.
    pred_r, ref_r = metrics.brats_regions(cases["BraTS2021_00001"][0]), metrics.brats_regions(tumour())
    for i, region in enumerate(metrics.REGIONS):
        assert float(shifted[f"dice_{region}"]) == pytest.approx(metrics.dice(pred_r[i], ref_r[i]))
        assert float(shifted[f"hd95_vox_{region}"]) == pytest.approx(metrics.hd95_brats2021(pred_r[i], ref_r[i]))
    assert float(shifted["hd95_vox_WT"]) == pytest.approx(2.0)

    summary = json.loads((tmp_path / "out" / "metrics_summary.json").read_text())
    assert summary["n_cases"] == 3 and summary["task"] == "brats2021"
    assert summary["units"] == {"hd95_vox": "voxels"}
    assert summary["metrics"]["dice_ET"]["median"] == pytest.approx(float(shifted["dice_ET"]))
    dice_et = [float(r["dice_ET"]) for r in rows.values()]
    assert summary["metrics"]["dice_ET"]["mean"] == pytest.approx(np.mean(dice_et))
    assert summary["metrics"]["dice_ET"]["std"] == pytest.approx(np.std(dice_et, ddof=1))
    for case in cases:
        png = tmp_path / "png" / f"{case}.png"
        assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "dice_WT" in capsys.readouterr().out


def test_brats2023_root_layout_lesionwise_columns_use_header_spacing(tmp_path):
    ref_root, preds = tmp_path / "GLI", tmp_path / "preds"
    case = "BraTS-GLI-00000-000"
    ref = tumour(et=3)
    pred = tumour(et=3)
    pred[20:22, 20:22, 1:3] = 2                       # an 8-voxel false-positive WT lesion
    zooms = (1.0, 1.0, 2.0)
    affine = np.diag([*zooms, 1.0])
    write(ref_root / case / f"{case}-seg.nii.gz", ref, affine, zooms)
    write(preds / f"{case}.nii.gz", pred, affine, zooms)
    out = tmp_path / "metrics.csv"
    assert main(["--pred", str(preds), "--ref", str(ref_root), "--task", "brats2023", "--out", str(out)]) == 0
    row = read_csv(out)[case]
    lesionwise = metrics.lesionwise_brats2023(pred, ref, spacing=zooms)
    assert (int(row["lw_tp_WT"]), int(row["lw_fn_WT"]), int(row["lw_fp_WT"])) == (1, 0, 1)
    assert float(row["lw_dice_WT"]) == pytest.approx(0.5) == pytest.approx(lesionwise["WT"]["dice"])
    assert float(row["lw_hd95_mm_WT"]) == pytest.approx((0 + 374) / 2)
    assert float(row["lw_dice_ET"]) == 1.0 and int(row["lw_fp_ET"]) == 0
    wt_pred, wt_ref = metrics.brats_regions(pred, "brats2023")[1], metrics.brats_regions(ref, "brats2023")[1]
    assert float(row["hd95_mm_WT"]) == pytest.approx(metrics.hd95_brats2023(wt_pred, wt_ref, zooms))
    assert float(row["dice_WT"]) == pytest.approx(metrics.dice(wt_pred, wt_ref))


def test_atlas_bids_layout_and_flat_reference_folder_agree(tmp_path):
    bids, flat, preds = tmp_path / "ATLAS_2" / "Training", tmp_path / "flat", tmp_path / "preds"
    ref = np.zeros(SHAPE, np.uint8)
    ref[3:8, 3:8, 3:8] = 1
    ref[15:18, 15:18, 10:13] = 1                      # a second lesion, missed
    pred = np.zeros(SHAPE, np.uint8)
    pred[4:8, 4:8, 4:8] = 1
    pred[20:22, 2:4, 2:4] = 1                         # a false positive
    subject = "sub-r001s001"
    anat = bids / "R001" / subject / "ses-1" / "anat"
    write(anat / f"{subject}_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz", ref)
    write(anat / f"{subject}_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz", np.ones(SHAPE, np.float32))
    write(flat / f"{subject}.nii.gz", ref)
    write(preds / f"{subject}.nii.gz", pred)

    assert [c for c, _, _ in pair_cases(preds, tmp_path / "ATLAS_2")] == [subject]
    rows = []
    for name, root in (("bids", tmp_path / "ATLAS_2"), ("flat", flat)):
        out = tmp_path / f"{name}.csv"
        assert main(["--pred", str(preds), "--ref", str(root), "--task", "atlas", "--out", str(out),
                     "--png", str(tmp_path / name)]) == 0
        rows.append(read_csv(out)[subject])
        assert (tmp_path / name / f"{subject}.png").is_file()
    assert rows[0] == rows[1]
    row = rows[0]
    # Hand values: 64 of 125 + 27 voxels found; 2*64 / (72 + 152); |72 - 152| = 80 voxels;
    # 2 predicted vs 2 reference lesions; TP 1, FP 1, FN 1 -> F1 = 1 / (1 + 1).
    assert float(row["dice"]) == pytest.approx(2 * 64 / (72 + 152))
    assert int(row["volume_difference"]) == 80
    assert int(row["simple_lesion_count"]) == 0
    assert float(row["lesion_f1"]) == pytest.approx(0.5)
    assert float(row["lesion_f1"]) == pytest.approx(metrics.lesion_f1(pred, ref))


def test_unpaired_prediction_is_named_and_not_scored(tmp_path, capsys):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "case_a.nii.gz", tumour())
    write(refs / "case_b.nii.gz", tumour())
    write(preds / "case_a.nii.gz", tumour())
    write(preds / "case_z.nii.gz", tumour())
    with pytest.raises(DataError, match="case_z.nii.gz"):
        pair_cases(preds, refs)  # the pairing function stays strict
    code = main(["--pred", str(preds), "--ref", str(refs), "--task", "brats2021", "--out", str(tmp_path / "m.csv")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "have no reference" in err and "not scored: case_z" in err and "Traceback" not in err
    assert sorted(read_csv(tmp_path / "m.csv")) == ["case_a", "case_b"]  # case_b: missing, scored as a failure
    # When no prediction has a reference (the wrong --ref), nothing is scored.
    (preds / "case_a.nii.gz").unlink()
    code = main(["--pred", str(preds), "--ref", str(refs), "--task", "brats2021", "--out", str(tmp_path / "n.csv")])
    assert code == 2 and "case_z.nii.gz" in capsys.readouterr().err and not (tmp_path / "n.csv").exists()


def test_references_without_prediction_skipped_unless_strict(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "case_a.nii.gz", tumour())
    write(refs / "case_b.nii.gz", tumour())
    write(preds / "case_a.nii.gz", tumour())
    assert [c for c, _, _ in pair_cases(preds, refs)] == ["case_a"]
    with pytest.raises(DataError, match="case_b"):
        pair_cases(preds, refs, strict=True)


def test_missing_dirs_shape_affine_and_label_mismatches_are_clear(tmp_path, capsys):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    with pytest.raises(DataError, match="does not exist"):
        pair_cases(preds, refs)
    write(refs / "c.nii.gz", tumour())
    args = ["--pred", str(preds), "--ref", str(refs), "--task", "brats2021", "--out", str(tmp_path / "m.csv")]

    write(preds / "c.nii.gz", tumour()[:, :, :8])
    assert main(args) == 2
    assert "shape" in capsys.readouterr().err
    write(preds / "c.nii.gz", tumour(), affine=np.diag([-1.0, 1.0, 1.0, 1.0]))
    assert main(args) == 2
    assert "different affines" in capsys.readouterr().err
    write(preds / "c.nii.gz", tumour(et=3))
    assert main(args) == 2
    assert "--task brats2023" in capsys.readouterr().err
    write(preds / "c.nii.gz", tumour().astype(np.float32) / 10)
    assert main(args) == 2
    assert "probabilities" in capsys.readouterr().err


def test_existing_outputs_are_not_overwritten(tmp_path, capsys):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "c.nii.gz", tumour())
    write(preds / "c.nii.gz", tumour())
    out = tmp_path / "m.csv"
    out.write_text("keep me\n")
    args = ["--pred", str(preds), "--ref", str(refs), "--task", "brats2021", "--out", str(out)]
    assert main(args) == 2
    assert "already exist" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert main([*args, "--overwrite", "true"]) == 0
    assert "c" in read_csv(out)
    out.write_text("keep me\n")
    assert main([*args, "--overwrite", "false"]) == 2 and out.read_text() == "keep me\n"
    assert main([*args, "--overwrite"]) == 0           # the bare flag, as in any CLI
    assert "c" in read_csv(out)
    assert main([*args[:-2], "--strict", "--overwrite", "--out", str(out)]) == 0


def test_score_case_columns():
    row = score_case(tumour(et=3), tumour(et=3), "brats2023", (1.0, 1.0, 1.0))
    assert {"dice_TC", "hd95_mm_ET", "lw_dice_WT", "lw_fp_ET", "lw_dice_mean", "dice_mean"} <= set(row)
    assert set(score_case(tumour(), tumour(), "brats2021", (1, 1, 1))) == {
        *(f"dice_{r}" for r in metrics.REGIONS), *(f"hd95_vox_{r}" for r in metrics.REGIONS), "dice_mean"}


def test_lab_scheme_file_scored_with_plain_rules_end_to_end(tmp_path, capsys):
    # A lab's own labels: 1 = lesion, 2 = enhancing lesion; regions from a YAML file written here.
    scheme_file = tmp_path / "ms_lesions.yaml"
    scheme_file.write_text("lesion: [1, 2]\nenhancing: [2]\n")
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:6, 2:6, 2:6] = 1                            # lesion A, 64 voxels, with ...
    ref[3:5, 3:5, 3:5] = 2                            # ... an 8-voxel enhancing part
    ref[15:18, 15:18, 10:13] = 1                      # lesion B, 27 voxels, missed
    pred = np.zeros(SHAPE, np.uint8)
    pred[2:6, 2:6, 2:6] = 1
    pred[3:5, 3:5, 3:5] = 2
    pred[20:22, 2:4, 12:14] = 1                       # an 8-voxel false positive
    zooms = (1.0, 1.0, 2.0)
    affine = np.diag([*zooms, 1.0])
    write(tmp_path / "refs" / "case_1.nii.gz", ref, affine, zooms)
    write(tmp_path / "preds" / "case_1.nii.gz", pred, affine, zooms)
    out = tmp_path / "m.csv"
    assert main(["--pred", str(tmp_path / "preds"), "--ref", str(tmp_path / "refs"), "--scheme", str(scheme_file),
                 "--out", str(out), "--png", str(tmp_path / "png")]) == 0
    row = {k: float(v) for k, v in read_csv(out)["case_1"].items() if k != "case_id"}
    # Lesion region: reference 91 voxels, prediction 72, 64 shared.
    assert row["dice_lesion"] == pytest.approx(2 * 64 / (91 + 72))
    assert row["volume_ml_ref_lesion"] == pytest.approx(91 * 2 / 1000)
    assert row["volume_ml_pred_lesion"] == pytest.approx(72 * 2 / 1000)
    assert row["hd95_mm_lesion"] == pytest.approx(metrics.hd95_mm(pred > 0, ref > 0, zooms))
    # Lesion-wise: A found exactly (Dice 1), B missed, one false positive: Dice 1 / 3, F1 1 / (1 + 1).
    assert (row["lw_tp_lesion"], row["lw_fn_lesion"], row["lw_fp_lesion"]) == (1, 1, 1)
    assert row["lw_dice_lesion"] == pytest.approx(1 / 3)
    assert row["lw_f1_lesion"] == pytest.approx(0.5)
    assert row["dice_enhancing"] == 1.0 and row["hd95_mm_enhancing"] == 0.0 and row["lw_f1_enhancing"] == 1.0
    summary = json.loads((tmp_path / "m_summary.json").read_text())
    assert (summary["scheme"], summary["rules"], summary["task"]) == ("ms_lesions", "plain", None)
    assert summary["regions"] == {"lesion": [1, 2], "enhancing": [2]}
    assert summary["units"] == {"hd95_mm": "mm", "volume_ml": "mL"}
    assert (tmp_path / "png" / "case_1.png").read_bytes()[:4] == b"\x89PNG"

    # A value the lab's scheme does not know is refused, naming the file and the scheme.
    bad = ref.copy()
    bad[0, 0, 0] = 7
    write(tmp_path / "refs" / "case_1.nii.gz", bad, affine, zooms)
    assert main(["--pred", str(tmp_path / "preds"), "--ref", str(tmp_path / "refs"), "--scheme", str(scheme_file),
                 "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "[7]" in err and "case_1.nii.gz" in err and "ms_lesions" in err and "Traceback" not in err


def test_brats2024_task_scores_six_regions_and_rules_can_be_swapped(tmp_path, capsys):
    label = np.zeros(SHAPE, np.uint8)
    label[2:7, 2:7, 2:7] = 4                          # resection cavity
    label[10:20, 10:20, 4:12] = 2
    label[12:16, 12:16, 6:10] = 1
    label[16:18, 12:16, 6:10] = 3
    write(tmp_path / "refs" / "BraTS-GLI-00001-001.nii.gz", label)
    write(tmp_path / "preds" / "BraTS-GLI-00001-001.nii.gz", label)
    base = ["--pred", str(tmp_path / "preds"), "--ref", str(tmp_path / "refs")]
    assert main([*base, "--task", "brats2024", "--out", str(tmp_path / "a.csv"), "--png", str(tmp_path / "png")]) == 0
    row = read_csv(tmp_path / "a.csv")["BraTS-GLI-00001-001"]
    for region in ("ET", "NETC", "SNFH", "RC", "TC", "WT"):
        assert float(row[f"dice_{region}"]) == 1.0 and float(row[f"lw_dice_{region}"]) == 1.0
        assert float(row[f"hd95_mm_{region}"]) == 0.0
    assert (tmp_path / "png" / "BraTS-GLI-00001-001.png").is_file()
    assert main([*base, "--scheme", "brats2024", "--rules", "brats2021", "--out", str(tmp_path / "b.csv")]) == 0
    assert "hd95_vox_RC" in read_csv(tmp_path / "b.csv")["BraTS-GLI-00001-001"]
    for wrong, message in ((["--task", "brats2024", "--scheme", "lesion"], "not both"),
                           (["--scheme", "brats2024", "--rules", "isles"], "unknown --rules"),
                           (["--task", "brats2019"], "unknown --task"), ([], "--scheme")):
        assert main([*base, *wrong, "--out", str(tmp_path / "c.csv")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "c.csv").exists()
