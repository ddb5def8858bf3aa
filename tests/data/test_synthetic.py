"""The synthetic generator writes what the real data sets would hold, reproducibly.

Every test writes real NIfTI files to a temporary folder and reads them back with nibabel.
Name-only checks run at 4 mm; checks of anatomy and appearance at the default 2 mm.
"""

import json

import nibabel as nib
import numpy as np
import pytest
from nilearn import datasets
from scipy import ndimage

from brainsegfounder.data.synthetic import generate, main, synthesize_subject, writable_layouts
from brainsegfounder.utils.errors import ConfigError, DataError


def load(path):
    image = nib.load(str(path))
    return np.asarray(image.dataobj), image


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def brats21(tmp_path_factory):
    """Three BraTS 2021 subjects at the default 2 mm, written once for the module."""
    out = tmp_path_factory.mktemp("brats21")
    folders = generate("brats2021", out, subjects=3, seed=0)
    return out, folders


# --- file layouts -----------------------------------------------------------------------------


def test_brats2021_files_and_fold_file_are_laid_out_as_the_real_data(tmp_path):
    folders = generate("brats2021", tmp_path, subjects=5, seed=0, spacing=4.0)
    assert folders == [tmp_path / f"BraTS2021_{i:05d}" for i in range(5)]
    expected = {f"BraTS2021_{i:05d}/BraTS2021_{i:05d}_{m}.nii.gz"
                for i in range(5) for m in ("flair", "t1", "t1ce", "t2", "seg")}
    assert set(files_under(tmp_path)) == expected | {"brats21_folds.json"}

    entries = json.loads((tmp_path / "brats21_folds.json").read_text())["training"]
    assert sorted(e["fold"] for e in entries) == [0, 1, 2, 3, 4]
    for entry in entries:
        assert len(entry["image"]) == 4
        # The order of the original Swin UNETR fold file: flair, t1ce, t1, t2.
        assert [p.rsplit("_", 1)[1] for p in entry["image"]] == [
            "flair.nii.gz", "t1ce.nii.gz", "t1.nii.gz", "t2.nii.gz"]
        for path in [*entry["image"], entry["label"]]:
            assert not path.startswith("/") and (tmp_path / path).is_file()


def test_brats2023_files(tmp_path):
    generate("brats2023", tmp_path, subjects=2, spacing=4.0)
    assert files_under(tmp_path) == sorted(
        f"BraTS-GLI-{i:05d}-000/BraTS-GLI-{i:05d}-000-{m}.nii.gz"
        for i in range(2) for m in ("t1n", "t1c", "t2w", "t2f", "seg"))


def test_ukb_files_are_two_field_folders_without_labels(tmp_path):
    folders = generate("ukb", tmp_path, subjects=2, spacing=4.0)
    assert folders == [tmp_path / "1000000_20252_2_0", tmp_path / "1000001_20252_2_0"]
    assert files_under(tmp_path) == [
        "1000000_20252_2_0/T1/T1_brain_to_MNI.nii.gz",
        "1000000_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz",
        "1000001_20252_2_0/T1/T1_brain_to_MNI.nii.gz",
        "1000001_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz",
    ]
    assert synthesize_subject("ukb", 0, spacing=4.0).label is None


def test_atlas_files_follow_bids(tmp_path):
    folders = generate("atlas", tmp_path, subjects=2, spacing=4.0)
    assert folders == [tmp_path / "Training/R001/sub-r001s001", tmp_path / "Training/R001/sub-r001s002"]
    stem = "Training/R001/sub-r001s{0:03d}/ses-1/anat/sub-r001s{0:03d}_ses-1_space-MNI152NLin2009aSym"
    assert files_under(tmp_path) == sorted(
        stem.format(i) + suffix for i in (1, 2)
        for suffix in ("_T1w.nii.gz", "_label-L_desc-T1lesion_mask.nii.gz"))


# --- reproducibility --------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate("brats2023", tmp_path / name, subjects=2, seed=seed, spacing=4.0)
    for rel in files_under(tmp_path / "a"):
        a, _ = load(tmp_path / "a" / rel)
        b, _ = load(tmp_path / "b" / rel)
        c, _ = load(tmp_path / "c" / rel)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c), rel


def test_subject_depends_only_on_seed_and_index(tmp_path):
    generate("atlas", tmp_path / "two", subjects=2, seed=3, spacing=4.0)
    generate("atlas", tmp_path / "four", subjects=4, seed=3, spacing=4.0)
    for rel in files_under(tmp_path / "two"):
        np.testing.assert_array_equal(load(tmp_path / "two" / rel)[0], load(tmp_path / "four" / rel)[0])
    # In memory too, whatever was made before it in this process.
    first = synthesize_subject("atlas", 1, seed=3, spacing=4.0)
    path = tmp_path / "four/Training/R001/sub-r001s002/ses-1/anat"
    on_disk, _ = load(next(path.glob("*_T1w.nii.gz")))
    np.testing.assert_array_equal(first.images["t1w"], on_disk)


def test_the_two_brats_layouts_hold_the_same_subject():
    old = synthesize_subject("brats2021", 2, spacing=4.0)
    new = synthesize_subject("brats2023", 2, spacing=4.0)
    np.testing.assert_array_equal(new.label, np.where(old.label == 4, 3, old.label))
    for old_name, new_name in (("t1", "t1n"), ("t1ce", "t1c"), ("t2", "t2w"), ("flair", "t2f")):
        np.testing.assert_array_equal(old.images[old_name], new.images[new_name])


# --- volumes, labels, appearance --------------------------------------------------------------


def test_volumes_share_grid_affine_and_dtypes(brats21):
    out, folders = brats21
    for folder in folders:
        label, label_img = load(folder / f"{folder.name}_seg.nii.gz")
        assert label.shape == (99, 117, 95)
        assert label_img.get_data_dtype() == np.uint8
        # The template's RAS MNI affine at 2 mm: same corner, 2 mm steps.
        np.testing.assert_allclose(label_img.affine, [[2, 0, 0, -98], [0, 2, 0, -134], [0, 0, 2, -72],
                                                      [0, 0, 0, 1]])
        assert nib.aff2axcodes(label_img.affine) == ("R", "A", "S")
        for modality in ("flair", "t1", "t1ce", "t2"):
            image, img = load(folder / f"{folder.name}_{modality}.nii.gz")
            assert image.shape == label.shape and img.get_data_dtype() == np.float32
            np.testing.assert_array_equal(img.affine, label_img.affine)


def test_brats2021_labels_hold_all_three_regions(brats21):
    _, folders = brats21
    for folder in folders:
        label, _ = load(folder / f"{folder.name}_seg.nii.gz")
        assert set(np.unique(label)) == {0, 1, 2, 4}, folder.name
        # Whole tumour between a few mL and a few hundred mL (2 mm voxels = 0.008 mL).
        assert 5 < (label > 0).sum() * 0.008 < 300


def test_brats2023_labels_use_3_for_enhancing():
    for index in range(2):
        label = synthesize_subject("brats2023", index, spacing=2.0).label
        assert set(np.unique(label)) == {0, 1, 2, 3}


def test_skull_stripped_zero_outside_the_brain(brats21):
    _, folders = brats21
    subject = synthesize_subject("brats2021", 0)
    brain = subject.brain_mask
    folder = folders[0]
    label, _ = load(folder / f"{folder.name}_seg.nii.gz")
    assert 1.4e3 < brain.sum() * 0.008 < 2.4e3  # mL: a brain, not a box or a speck
    assert not label[~brain].any()
    for modality in ("flair", "t1", "t1ce", "t2"):
        image, _ = load(folder / f"{folder.name}_{modality}.nii.gz")
        assert not image[~brain].any()
        # Magnitude noise keeps every brain voxel positive: the mask is recoverable from any image.
        assert (image[brain] > 0).all()
        np.testing.assert_array_equal(image, subject.images[modality])


def test_tissue_fractions_are_the_template_deformed():
    subject = synthesize_subject("ukb", 0)
    csf, gm, wm = (subject.tissue[k] for k in ("csf", "gm", "wm"))
    np.testing.assert_allclose((csf + gm + wm)[subject.brain_mask], 1.0, atol=1e-5)
    assert not (csf + gm + wm)[~subject.brain_mask].any()
    # Deformed, yet still the template's anatomy: most white matter stays white matter.
    template_wm = datasets.load_mni152_wm_template(resolution=2).get_fdata() > 0.5
    overlap = 2 * (template_wm & (wm > 0.5)).sum() / (template_wm.sum() + (wm > 0.5).sum())
    assert 0.5 < overlap < 0.98


@pytest.mark.parametrize("layout, index", [("ukb", 0), ("ukb", 1), ("brats2021", 2)])
def test_healthy_tissue_contrasts(layout, index):
    subject = synthesize_subject(layout, index)
    healthy = subject.label == 0 if subject.label is not None else subject.brain_mask
    wm, gm, csf = ((subject.tissue[k] > 0.9) & healthy for k in ("wm", "gm", "csf"))

    def means(image):
        return image[wm].mean(), image[gm].mean(), image[csf].mean()

    t1_wm, t1_gm, t1_csf = means(subject.images["t1"])
    assert t1_wm > t1_gm > t1_csf
    flair_wm, flair_gm, flair_csf = means(subject.images["flair"])
    assert flair_gm > flair_wm > flair_csf  # FLAIR: T2-like, with the free water nulled
    if "t2" in subject.images:
        t2_wm, t2_gm, t2_csf = means(subject.images["t2"])
        assert t2_csf > t2_gm > t2_wm


def test_tumour_regions_look_as_on_real_scans(brats21):
    _, folders = brats21
    for index, folder in enumerate(folders):
        images = {m: load(folder / f"{folder.name}_{m}.nii.gz")[0] for m in ("flair", "t1", "t1ce", "t2")}
        label, _ = load(folder / f"{folder.name}_seg.nii.gz")
        far = ~ndimage.binary_dilation(label > 0, iterations=5)
        normal_wm = (synthesize_subject("brats2021", index).tissue["wm"] > 0.9) & far
        ncr, ed, et = label == 1, label == 2, label == 4

        def mean(modality, region, images=images):
            return images[modality][region].mean()

        assert mean("flair", ed) > 1.3 * mean("flair", normal_wm), folder.name
        assert mean("t2", ed) > 1.3 * mean("t2", normal_wm)
        assert mean("t1", ed) < mean("t1", normal_wm)
        assert mean("t1ce", et) > 1.3 * mean("t1ce", ncr)
        assert mean("t1ce", et) > mean("t1ce", normal_wm)
        assert mean("t1", ncr) < 0.6 * mean("t1", normal_wm)
        assert mean("t1ce", ncr) < 0.6 * mean("t1ce", normal_wm)
        assert mean("t2", ncr) > 1.5 * mean("t2", normal_wm)


def test_tumour_is_nested_and_in_one_piece(brats21):
    _, folders = brats21
    for folder in folders:
        label, _ = load(folder / f"{folder.name}_seg.nii.gz")
        _, n_tumours = ndimage.label(label > 0, structure=np.ones((3, 3, 3)))
        assert n_tumours == 1
        # Necrosis never touches edema or healthy tissue directly: the enhancing rim encloses it
        # (up to voxels whose neighbour lies outside the brain).
        touching = ndimage.binary_dilation(label == 1) & ((label == 2) | (label == 0))
        assert touching.sum() <= 0.05 * (label == 1).sum() + 2


def test_atlas_stroke_lesions():
    for index in range(3):
        subject = synthesize_subject("atlas", index)
        lesion = subject.label
        assert lesion.dtype == np.uint8 and set(np.unique(lesion)) == {0, 1}
        _, count = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
        assert 1 <= count <= 3
        t1 = subject.images["t1w"]
        normal_wm = (subject.tissue["wm"] > 0.9) & ~ndimage.binary_dilation(lesion > 0, iterations=3)
        assert t1[lesion > 0].mean() < 0.75 * t1[normal_wm].mean()  # hypointense


# --- command line and overwriting -------------------------------------------------------------


def test_cli_writes_and_reports_one_line(tmp_path, capsys):
    folders = main(["--layout", "ukb", "--subjects", "1", "--out", str(tmp_path), "--spacing", "4"])
    assert folders == [tmp_path / "1000000_20252_2_0"]
    assert (tmp_path / "1000000_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz").is_file()
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "wrote 1" in printed[0] and "skipped 0" in printed[0]


def test_existing_files_are_never_overwritten_unless_asked(tmp_path, capsys):
    generate("brats2021", tmp_path, subjects=2, seed=0, spacing=4.0)
    t1 = tmp_path / "BraTS2021_00000/BraTS2021_00000_t1.nii.gz"
    before = t1.read_bytes()
    capsys.readouterr()
    generate("brats2021", tmp_path, subjects=2, seed=1, spacing=4.0)
    assert t1.read_bytes() == before
    assert "wrote 0, skipped 2" in capsys.readouterr().out
    generate("brats2021", tmp_path, subjects=2, seed=1, spacing=4.0, overwrite=True)
    assert t1.read_bytes() != before


def test_incomplete_case_or_other_fold_file_is_an_error_naming_it(tmp_path, capsys):
    generate("brats2021", tmp_path, subjects=2, spacing=4.0)
    (tmp_path / "BraTS2021_00001/BraTS2021_00001_t2.nii.gz").unlink()
    flair = tmp_path / "BraTS2021_00001/BraTS2021_00001_flair.nii.gz"
    before = flair.read_bytes()
    with pytest.raises(DataError, match="BraTS2021_00001.*overwrite"):
        generate("brats2021", tmp_path, subjects=2, spacing=4.0)
    assert flair.read_bytes() == before
    with pytest.raises(SystemExit):
        main(["--layout", "brats2021", "--subjects", "2", "--out", str(tmp_path), "--spacing", "4"])
    assert "BraTS2021_00001" in capsys.readouterr().err
    generate("brats2021", tmp_path, subjects=2, spacing=4.0, overwrite=True)
    with pytest.raises(DataError, match="brats21_folds.json"):
        generate("brats2021", tmp_path, subjects=3, spacing=4.0)
    assert not (tmp_path / "BraTS2021_00002").exists()


def test_bad_arguments_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="atlas, brats2021, brats2023, brats2024, ukb"):
        synthesize_subject("brats2019", 0)
    with pytest.raises(ConfigError, match="spacing"):
        synthesize_subject("ukb", 0, spacing=0.0)
    with pytest.raises(ConfigError, match="cohort"):
        generate("brats2023", "unused", cohort="XYZ")
    with pytest.raises(ConfigError, match="no cohorts"):
        synthesize_subject("brats2021", 0, cohort="MET")
    assert set(writable_layouts()) == {"brats2021", "brats2023", "brats2024", "ukb", "atlas"}


@pytest.mark.slow
def test_one_mm_grid_is_the_templates():
    subject = synthesize_subject("brats2021", 0, spacing=1.0)
    assert subject.label.shape == (197, 233, 189)
    np.testing.assert_array_equal(np.diag(subject.affine), [1, 1, 1, 1])
    assert set(np.unique(subject.label)) == {0, 1, 2, 4}
