"""BraTS 2024 post-treatment subjects: a CSF-like resection cavity beside residual tumour."""

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import find_cases
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.data.synthetic import synthesize_subject


@pytest.fixture(scope="module")
def brats2024_root(synthetic_set):
    return synthetic_set("brats2024", subjects=3, seed=0, spacing=3.0)


def test_files_are_named_as_2024_and_read_with_its_scheme(brats2024_root):
    cases = find_cases("brats2024", brats2024_root)
    assert [c.subject_id for c in cases] == [f"BraTS-GLI-0000{i}-000" for i in range(3)]
    assert sorted(p.name for p in cases[0].folder.iterdir()) == sorted(
        f"BraTS-GLI-00000-000-{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f", "seg"))
    dm = SegmentationDataModule(root=str(brats2024_root), layout="brats2024", n_folds=3, patch_size=64)
    dm.setup("fit")  # validate="full": every label is one the brats2024 scheme knows
    assert dm.region_names == ("TC", "WT", "ET", "RC") and dm.preprocessing_record.scheme == "brats2024"


def test_every_subject_has_all_four_labels_and_the_cavity_touches_residual_tumour(brats2024_root):
    values = set(get_scheme("brats2024").label_values)
    for case in find_cases("brats2024", brats2024_root):
        label = np.asarray(nib.load(case.label).dataobj)
        assert set(np.unique(label)) == values, case.subject_id
        cavity = label == 4
        assert ndimage.label(cavity)[1] == 1
        assert (ndimage.binary_dilation(cavity) & np.isin(label, (1, 2, 3))).any()


def test_cavity_looks_like_fluid():
    subject = synthesize_subject("brats2024", 1, spacing=2.0)
    cavity = subject.label == 4
    normal_wm = (subject.tissue["wm"] > 0.9) & ~ndimage.binary_dilation(subject.label > 0, iterations=5)

    def ratio(modality):
        return subject.images[modality][cavity].mean() / subject.images[modality][normal_wm].mean()

    assert ratio("t1n") < 0.6 and ratio("t1c") < 0.6  # dark on T1 and T1ce: no enhancement
    assert ratio("t2w") > 1.5  # bright on T2
    assert ratio("t2f") < 0.8  # FLAIR nulls most of the fluid
    # The anatomy is the same person's as in the other layouts; only the lesion differs.
    np.testing.assert_array_equal(subject.brain_mask, synthesize_subject("brats2023", 1).brain_mask)
