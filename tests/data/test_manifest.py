"""Bring-your-own-data manifests: CSV, TSV and JSON, relative paths, custom names, clear errors."""

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import find_cases
from brainsegfounder.data.layouts.manifest import manifest_modalities, read_manifest
from brainsegfounder.utils.errors import DataError


def _lab_folder(brats2021_root: Path, dest: Path, n: int = 3) -> list[dict]:
    """A lab's own folder structure: images/<id>/{pd,t2star}.nii.gz, masks/<id>_mask.nii.gz."""
    rows = []
    for i in range(n):
        cid = f"BraTS2021_{i:05d}"
        sid = f"P{i + 1:02d}"
        (dest / "images" / sid).mkdir(parents=True)
        (dest / "masks").mkdir(exist_ok=True)
        shutil.copy(brats2021_root / cid / f"{cid}_flair.nii.gz", dest / "images" / sid / "pd.nii.gz")
        shutil.copy(brats2021_root / cid / f"{cid}_t1.nii.gz", dest / "images" / sid / "t2star.nii.gz")
        shutil.copy(brats2021_root / cid / f"{cid}_seg.nii.gz", dest / "masks" / f"{sid}_mask.nii.gz")
        rows.append({"subject_id": sid, "pd": f"images/{sid}/pd.nii.gz", "t2star": f"images/{sid}/t2star.nii.gz",
                     "age": 50 + i, "label": f"masks/{sid}_mask.nii.gz", "fold": i % 2})
    return rows


def _write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_manifest_resolves_relative_paths_and_keeps_column_order(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path)
    manifest = _write_csv(tmp_path / "cases.csv", rows)
    assert manifest_modalities(manifest) == ("pd", "t2star", "age")
    cases = read_manifest(manifest, modalities=["t2star", "pd"])  # age is ignored when modalities are named
    assert [c.subject_id for c in cases] == ["P01", "P02", "P03"]
    assert list(cases[0].images) == ["t2star", "pd"]
    assert cases[1].images["pd"] == tmp_path / "images" / "P02" / "pd.nii.gz"
    assert cases[2].label == tmp_path / "masks" / "P03_mask.nii.gz" and [c.fold for c in cases] == [0, 1, 0]


def test_json_and_tsv_manifests_read_the_same_cases(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path)
    for row in rows:
        del row["age"]
    rows[2]["label"] = None  # unlabelled subjects are allowed (e.g. for SSL)
    (tmp_path / "cases.json").write_text(json.dumps({"subjects": rows}))
    _write_csv(tmp_path / "cases.tsv", [{**r, "label": r["label"] or ""} for r in rows], delimiter="\t")
    from_json, from_tsv = read_manifest(tmp_path / "cases.json"), read_manifest(tmp_path / "cases.tsv")
    assert [(c.subject_id, c.images, c.label, c.fold) for c in from_json] == \
           [(c.subject_id, c.images, c.label, c.fold) for c in from_tsv]
    assert from_json[2].label is None and list(from_json[0].images) == ["pd", "t2star"]


def test_manifest_layout_finds_manifest_csv_in_root(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path, n=2)
    _write_csv(tmp_path / "manifest.csv", [{k: v for k, v in r.items() if k != "age"} for r in rows])
    assert [c.subject_id for c in find_cases("manifest", tmp_path)] == ["P01", "P02"]
    dm = SegmentationDataModule(root=str(tmp_path), layout="manifest", regions="brats2021", patch_size=64)
    assert dm.modalities == ["pd", "t2star"] and dm.in_channels == 2


def test_every_problem_is_listed_with_row_and_subject(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path)
    rows[1]["subject_id"] = "P01"
    rows[2]["pd"] = "images/P03/missing.nii.gz"
    rows[0]["fold"] = "first"
    manifest = _write_csv(tmp_path / "cases.csv", rows)
    with pytest.raises(DataError) as err:
        read_manifest(manifest, ["pd", "t2star"])
    message = str(err.value)
    assert "4 problem(s)" in message and "2 of 3 subjects have a fold" in message
    assert "row 1 (subject P01): fold 'first' is not an integer" in message
    assert "row 2 (subject P01): subject id P01 appears more than once" in message
    assert f"row 3 (subject P03): pd file {tmp_path / 'images/P03/missing.nii.gz'} does not exist" in message


def test_unknown_modality_column_and_missing_id_column_say_what_to_do(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path, n=1)
    manifest = _write_csv(tmp_path / "cases.csv", rows)
    with pytest.raises(DataError, match=r"\['flair'\] are not columns of manifest .*cases.csv, whose image columns are \('pd', 't2star', 'age'\)"):
        SegmentationDataModule(layout="manifest", manifest=str(manifest), modalities=["flair"])
    bad = _write_csv(tmp_path / "bad.csv", [{"id": "P01", "pd": "x.nii.gz"}])
    with pytest.raises(DataError, match="no 'subject_id' column"):
        read_manifest(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(tmp_path / "nowhere.csv")


def test_labels_outside_a_custom_scheme_fail_before_training(brats2021_root, tmp_path):
    rows = _lab_folder(brats2021_root, tmp_path, n=3)
    manifest = _write_csv(tmp_path / "cases.csv", rows)
    dm = SegmentationDataModule(layout="manifest", manifest=str(manifest), modalities=["pd", "t2star"],
                                regions={"oedema": [2], "core": [1, 4]}, n_folds=2, patch_size=64)
    dm.setup("fit")  # labels 1, 2, 4 all belong to the scheme
    mask = tmp_path / "masks" / "P02_mask.nii.gz"
    image = nib.load(mask)
    data = np.asarray(image.dataobj).copy()
    data[data == 4] = 7
    nib.save(nib.Nifti1Image(data, image.affine), mask)
    dm = SegmentationDataModule(layout="manifest", manifest=str(manifest), modalities=["pd", "t2star"],
                                regions={"oedema": [2], "core": [1, 4]}, n_folds=2, patch_size=64)
    with pytest.raises(DataError, match=r"subject P02: label file .*P02_mask.nii.gz holds unexpected values \[7\]"):
        dm.setup("fit")


def test_a_manifest_can_list_a_known_layouts_files(brats2021_root, tmp_path):
    rows = [{"subject_id": f"case{i}", **{m: str(brats2021_root / f"BraTS2021_{i:05d}" / f"BraTS2021_{i:05d}_{m}.nii.gz")
                                        for m in ("t2", "t1", "flair", "t1ce")},
             "label": str(brats2021_root / f"BraTS2021_{i:05d}" / f"BraTS2021_{i:05d}_seg.nii.gz")} for i in range(4)]
    manifest = _write_csv(tmp_path / "list.csv", rows)
    dm = SegmentationDataModule(layout="brats2021", manifest=str(manifest), n_folds=2, patch_size=64,
                                validate="header")
    dm.setup("fit")
    assert dm.modalities == ["flair", "t1ce", "t1", "t2"]  # the layout's channel order, not the file's
    assert list(dm.train_cases[0].images) == dm.modalities and len(dm.train_cases + dm.val_cases) == 4
