"""Each layout finds what it names: the synthetic writer's files are the reader's cases."""

import pytest

from brainsegfounder.data.layouts import LAYOUTS, find_cases
from brainsegfounder.data.synthetic import generate, main
from brainsegfounder.utils.errors import ConfigError


@pytest.mark.parametrize("fixture, layout", [("brats2021_root", "brats2021"), ("brats2023_root", "brats2023"),
                                             ("atlas_root", "atlas")])
def test_reader_finds_exactly_the_files_the_layout_names(request, fixture, layout):
    root = request.getfixturevalue(fixture)
    spec = LAYOUTS[layout]
    for case in find_cases(layout, root):
        named = spec.case_files(root, case.subject_id)
        assert case.images == named.images and case.label == named.label
        assert case.folder == named.folder and case.folder.is_dir()


def test_brats2023_reader_reads_the_other_cohorts(tmp_path, capsys):
    folders = main(["--layout", "brats2023", "--cohort", "MET", "--subjects", "2", "--out", str(tmp_path),
                    "--spacing", "6"])
    generate("brats2023", tmp_path, subjects=1, spacing=6.0, cohort="PED")
    assert [f.name for f in folders] == ["BraTS-MET-00000-000", "BraTS-MET-00001-000"]
    cases = find_cases("brats2023", tmp_path)
    assert [c.subject_id for c in cases] == ["BraTS-MET-00000-000", "BraTS-MET-00001-000", "BraTS-PED-00000-000"]
    assert cases[2].images["t1c"].name == "BraTS-PED-00000-000-t1c.nii.gz" and cases[2].label.is_file()


def test_a_layout_without_names_cannot_be_written():
    with pytest.raises(ConfigError, match="manifest"):
        LAYOUTS["manifest"].case_files("/data", "P01")
