"""A lab's own layout and label scheme, declared in test code only, are generated and read back."""

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.layouts import LAYOUTS, find_cases, pattern_layout, register_layout
from brainsegfounder.data.regions import SCHEMES, RegionScheme, register_scheme
from brainsegfounder.data.synthetic import generate, writable_layouts


@pytest.fixture
def mylab():
    register_scheme(RegionScheme(names=("infarct",), labels=((5,),), paint=((0, 5),), name="mylab_infarct"))
    register_layout(pattern_layout(
        "mylab", {"pd": "{id}/anat/{id}_T1.nii.gz", "flair": "{id}/anat/{id}_FLAIR.nii.gz"}, scheme="mylab_infarct",
        case_id_format="P{number:03d}", label="{id}/masks/{id}_infarct.nii.gz"))
    yield LAYOUTS["mylab"]
    LAYOUTS.pop("mylab")
    SCHEMES.pop("mylab_infarct")


def test_generator_writes_a_layout_and_scheme_declared_outside_the_package(mylab, tmp_path):
    with pytest.raises(Exception, match="no synthetic contrast for modalities \\['pd'\\]"):
        generate("mylab", tmp_path, subjects=1)
    LAYOUTS.pop("mylab")
    layout = register_layout(pattern_layout(
        "mylab", {"t1": "{id}/anat/{id}_T1.nii.gz", "flair": "{id}/anat/{id}_FLAIR.nii.gz"}, scheme="mylab_infarct",
        case_id_format="P{number:03d}", label="{id}/masks/{id}_infarct.nii.gz"))
    assert "mylab" in writable_layouts()
    folders = generate("mylab", tmp_path, subjects=3, spacing=6.0)
    assert folders == [tmp_path / f"P00{i}" for i in (1, 2, 3)]
    cases = find_cases("mylab", tmp_path)
    assert [c.subject_id for c in cases] == ["P001", "P002", "P003"]
    for case in cases:
        assert case.images == layout.case_files(tmp_path, case.subject_id).images
        label = np.asarray(nib.load(case.label).dataobj)
        assert set(np.unique(label)) == {0, 5}  # the scheme's value, not the generator's
    dm = SegmentationDataModule(root=str(tmp_path), layout="mylab", n_folds=3, patch_size=64, validate="header")
    dm.setup("fit")
    assert dm.scheme.name == "mylab_infarct" and dm.in_channels == 2
    assert dm.preprocessing_record.scheme == "mylab_infarct" and dm.preprocessing_record.layout == "mylab"
