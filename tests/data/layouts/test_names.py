"""Cross-layout names: modality of a file, one case folder, references, backgrounds, time points."""

import shutil

import pytest

from brainsegfounder import evaluate
from brainsegfounder.data.layouts import (
    background_image,
    case_from_folder,
    find_cases,
    find_references,
    modality_of,
    reference_case_id,
    subject_and_timepoint,
)
from brainsegfounder.utils.errors import DataError

BRATS21 = ("flair", "t1ce", "t1", "t2")


@pytest.mark.parametrize("name, modalities, expected", [
    ("BraTS2021_00000_t1ce.nii.gz", BRATS21, "t1ce"),
    ("BraTS2021_00000_t1.nii.gz", BRATS21, "t1"),
    ("BraTS2021_00000_FLAIR.NII.GZ", BRATS21, "flair"),
    ("BraTS-GLI-00001-000-t1c.nii", ("t2f", "t1c", "t1n", "t2w"), "t1c"),
    ("sub-01_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz", ("t1w",), "t1w"),
    ("t2.nii.gz", BRATS21, "t2"),
    ("BraTS2021_00000_seg.nii.gz", BRATS21, None),
    ("patient_t1cet.nii.gz", BRATS21, None),
])
def test_modality_of_reads_the_end_of_the_name(name, modalities, expected):
    assert modality_of(name, modalities) == expected


def test_one_case_folder_is_read_and_a_missing_modality_names_the_missing_file(brats2021_root, tmp_path):
    folder = tmp_path / "BraTS2021_00003"
    shutil.copytree(brats2021_root / "BraTS2021_00003", folder)
    case = case_from_folder(folder, BRATS21)
    assert case.subject_id == "BraTS2021_00003" and list(case.images) == list(BRATS21)
    assert case.images["t1"].name == "BraTS2021_00003_t1.nii.gz"
    (folder / "BraTS2021_00003_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match=r"no image for modality t1ce: expected .*BraTS2021_00003/BraTS2021_00003_t1ce\.nii\.gz"):
        case_from_folder(folder, BRATS21)
    (folder / "BraTS2021_00003_t1ce.nii").write_bytes(b"")
    (folder / "copy_t1ce.nii").write_bytes(b"")
    assert case_from_folder(folder, BRATS21) is None  # two case prefixes: not one case folder


def test_a_data_set_root_or_an_unrelated_folder_is_not_one_case(brats2021_root, tmp_path):
    assert case_from_folder(brats2021_root, BRATS21) is None
    assert case_from_folder(tmp_path, BRATS21) is None
    (tmp_path / "a_flair.nii.gz").write_bytes(b"")
    (tmp_path / "sub" / "a_flair.nii").parent.mkdir()
    (tmp_path / "sub" / "a_flair.nii").write_bytes(b"")
    with pytest.raises(DataError, match="2 files end in 'flair'"):
        case_from_folder(tmp_path, BRATS21)


@pytest.mark.parametrize("case_id, expected", [
    ("BraTS-GLI-00001-001", ("BraTS-GLI-00001", "001")),
    ("BraTS-MET-00012-000", ("BraTS-MET-00012", "000")),
    ("sub-X_ses-2", ("sub-X", "ses-2")),
    ("sub-r001s001/ses-1", ("sub-r001s001", "ses-1")),
    ("sub-r001s001", ("sub-r001s001", None)),
    ("BraTS2021_00000", ("BraTS2021_00000", None)),
])
def test_subject_and_timepoint(case_id, expected):
    assert subject_and_timepoint(case_id) == expected


def test_references_agree_with_evaluate_on_every_layout(brats2021_root, brats2023_root, atlas_root, tmp_path):
    # The layout versions are a superset of evaluate's own pairing (which the lead rewires to them).
    for root in (brats2021_root, brats2023_root, atlas_root):
        ours = find_references(root)
        assert ours == evaluate.find_references(root)
        for case_id, path in ours.items():
            assert reference_case_id(path) == evaluate.case_id_from_reference(path) == case_id
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("BraTS2021_00000.nii.gz", "sub-r001s001.nii", "BraTS-MET-00001-000.NII.GZ"):
        (flat / name).write_bytes(b"")
    assert sorted(find_references(flat)) == ["BraTS-MET-00001-000", "BraTS2021_00000", "sub-r001s001"]
    (flat / "BraTS2021_00000_seg.nii.gz").write_bytes(b"")
    assert list(find_references(flat)) == ["BraTS2021_00000"]  # a named reference wins over flat files
    (flat / "BraTS2021_00000-seg.nii").write_bytes(b"")
    with pytest.raises(DataError, match="BraTS2021_00000: .*-seg.nii, .*_seg.nii.gz"):
        find_references(flat)


def test_background_image_beside_each_layouts_reference(brats2021_root, brats2023_root, atlas_root, tmp_path):
    refs = find_references(brats2021_root)
    assert background_image(refs["BraTS2021_00000"]).name == "BraTS2021_00000_flair.nii.gz"
    assert background_image(next(iter(find_references(brats2023_root).values()))).name.endswith("-t2f.nii.gz")
    atlas = find_references(atlas_root)["sub-r001s001"]
    assert background_image(atlas) == atlas.with_name(atlas.name.replace("_label-L_desc-T1lesion_mask", "_T1w"))
    (tmp_path / "BraTS2021_00000.nii.gz").write_bytes(b"")
    assert background_image(tmp_path / "BraTS2021_00000.nii.gz") is None


@pytest.mark.parametrize("layout, root_fixture", [("brats2021", "brats2021_root"), ("brats2023", "brats2023_root"),
                                                  ("atlas", "atlas_root")])
def test_a_subset_made_of_linked_case_folders_is_read_like_the_data_set(layout, root_fixture, tmp_path, request):
    # A held-out subset picked with `ln -s` (as on a cluster): fit and predict found its cases,
    # while evaluate's reference search (Path.rglob, which does not follow linked folders) found none.
    root = request.getfixturevalue(root_fixture)
    subset = tmp_path / "subset"
    subset.mkdir()
    # Each case's own folder (BraTS2021_00000/, or an ATLAS sub-*/ below Training/R001/), linked flat.
    picked = [next(p for p in case.label.parents if p.name == case.subject_id) for case in find_cases(layout, root)[:2]]
    for folder in picked:
        (subset / folder.name).symlink_to(folder, target_is_directory=True)
    (subset / "loop").symlink_to(subset, target_is_directory=True)  # a link back up is visited once
    cases = find_cases(layout, subset)
    references = find_references(subset)
    whole = {case.subject_id: case for case in find_cases(layout, root)}
    assert len(cases) == len(references) == 2
    assert sorted(references) == sorted(case.subject_id for case in cases)
    for case in cases:
        assert case.subject_id in whole
        assert all(path.is_file() for path in case.images.values())
        assert references[case.subject_id].resolve() == whole[case.subject_id].label.resolve()
