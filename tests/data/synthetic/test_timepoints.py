"""Longitudinal synthetic series: one person per subject, the lesion scaled by recorded factors."""

import csv

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.layouts import subject_and_timepoint
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.data.synthetic import generate, synthesize_subject
from brainsegfounder.data.synthetic.subjects import growth_factors
from brainsegfounder.utils.errors import ConfigError


def truth(root):
    with (root / "timepoints_truth.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    generate("brats2023", root, subjects=2, seed=0, spacing=3.0, timepoints=3)
    return root


def test_brats2023_series_names_time_points_and_records_true_volumes(series):
    rows = truth(series)
    assert [r["case_id"] for r in rows] == [f"BraTS-GLI-0000{i}-00{t}" for i in range(2) for t in range(3)]
    for row in rows:
        assert subject_and_timepoint(row["case_id"]) == (row["subject"], row["timepoint"])
        label = np.asarray(nib.load(series / row["case_id"] / f"{row['case_id']}-seg.nii.gz").dataobj)
        masks = get_scheme("brats2023").region_masks(label)
        for region in ("TC", "WT", "ET"):  # the CSV states the volumes of the files written, within 1%
            written = masks[region].sum() * 27 / 1000.0  # 3 mm voxels, mL
            assert float(row[f"{region}_ml"]) == pytest.approx(written, rel=0.01)


def test_volumes_change_as_the_recorded_factors_say(series):
    rows = truth(series)
    for index in range(2):
        scans = [r for r in rows if r["index"] == str(index)]
        factors = growth_factors(0, index, 3)
        assert [float(r["volume_factor"]) for r in scans] == pytest.approx(factors, rel=1e-5)
        base = float(scans[0]["WT_ml"])
        for scan, factor in zip(scans[1:], factors[1:], strict=True):
            # Same shape scaled in radius by factor^(1/3): the voxelised volume follows the factor
            # up to discretisation and the brain's edge.
            assert float(scan["WT_ml"]) / base == pytest.approx(factor, rel=0.15)
            assert (float(scan["WT_ml"]) > base) == (factor > 1)


def test_a_series_is_one_person_and_the_first_scan_equals_a_series_of_one():
    first, later = (synthesize_subject("atlas", 1, spacing=4.0, timepoint=t, timepoints=2) for t in (0, 1))
    assert (first.case_id, later.case_id) == ("sub-r001s002_ses-1", "sub-r001s002_ses-2")
    assert np.array_equal(first.brain_mask, later.brain_mask)  # same anatomy
    grew = later.volume_factor > 1
    assert (later.label.sum() > first.label.sum()) == grew
    alone = synthesize_subject("atlas", 1, spacing=4.0)
    assert alone.case_id == "sub-r001s002" and alone.volume_factor == 1.0


def test_atlas_sessions_are_written_as_bids(tmp_path):
    generate("atlas", tmp_path, subjects=1, spacing=4.0, timepoints=2)
    anat = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*_T1w.nii.gz"))
    assert anat == [f"Training/R001/sub-r001s001/ses-{s}/anat/sub-r001s001_ses-{s}_space-MNI152NLin2009aSym_T1w.nii.gz"
                    for s in (1, 2)]
    assert [r["timepoint"] for r in truth(tmp_path)] == ["ses-1", "ses-2"]


def test_layouts_without_time_points_refuse_a_series(tmp_path):
    with pytest.raises(ConfigError, match="names no time points"):
        generate("brats2021", tmp_path, subjects=1, spacing=4.0, timepoints=2)
    with pytest.raises(ConfigError, match="timepoints must be >= 1"):
        generate("brats2023", tmp_path, subjects=1, spacing=4.0, timepoints=0)
