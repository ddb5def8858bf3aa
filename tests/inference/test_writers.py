"""The output contract: what writers.py writes is what the report reads, under the names writers.py owns."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from brainsegfounder.data.regions import get_scheme
from brainsegfounder.inference import writers
from brainsegfounder.report.data import gather_cases, provenance


def test_provenance_written_by_writers_is_read_back_by_the_report(tmp_path):
    path = writers.write_provenance(tmp_path, [tmp_path / "a.ckpt"], {"modalities": ["t1"]}, "python -m x", [tmp_path])
    assert path == tmp_path / writers.PROVENANCE_FILE
    written = json.loads(path.read_text())
    assert written["checkpoints"] == [str((tmp_path / "a.ckpt").resolve())] and written["command"] == "python -m x"
    assert written["versions"]["numpy"] == np.__version__ and "python" in written["versions"]
    read = provenance(tmp_path)
    assert read["preprocessing"] == {"modalities": ["t1"]} and read["versions"] == written["versions"]
    assert read["report"]["source"] == str(path)


def test_report_without_volumes_csv_computes_predicts_volumes_and_format(tmp_path):
    scheme = get_scheme("brats2021")
    label = np.zeros((10, 10, 10), np.uint8)
    label[2:6, 2:6, 2:6] = 2          # oedema: WT only
    label[3:5, 3:5, 3:5] = 4          # enhancing: ET, TC and WT
    nib.save(nib.Nifti1Image(label, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "case1.nii.gz")
    expected = writers.volumes_from_file(tmp_path / "case1.nii.gz", scheme)
    assert list(expected) == writers.volume_columns(scheme) == ["TC_ml", "WT_ml", "ET_ml"]
    assert expected == {"TC_ml": 0.064, "WT_ml": 0.512, "ET_ml": 0.064}
    (case,) = gather_cases(tmp_path, scheme)
    assert case.volumes == {k: f"{v:.4f}" for k, v in expected.items()}
    assert not (tmp_path / writers.VOLUMES_FILE).exists()
