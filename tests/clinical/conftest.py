"""A small synthetic raw study (2 mm source case, coarse clinical grids), made once per session.

``raw_study`` is the generator's output root (``cases/`` the prepared-the-BraTS-way case,
``raw/dicom``, ``raw/nifti``, ``raw/truth``); ``prepared`` is that DICOM study prepared at 2 mm with
the fallback brain extraction. Both are read-only: copy before breaking.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

CASE = "BraTS2021_00000"
MODALITIES = ("flair", "t1ce", "t1", "t2")


@pytest.fixture(scope="session")
def raw_study(tmp_path_factory) -> Path:
    from brainsegfounder.data.synthetic import generate

    root = tmp_path_factory.mktemp("clinical")
    generate("brats2021", root / "cases", subjects=1, seed=3, spacing=2.0, raw=root / "raw", raw_grids="small")
    return root


@pytest.fixture(scope="session")
def prepared(raw_study, tmp_path_factory):
    from brainsegfounder.clinical.prepare import prepare_study

    return prepare_study(raw_study / "raw" / "dicom" / CASE, tmp_path_factory.mktemp("prepared"), MODALITIES,
                         spacing=2.0, brain_method="fallback")


@pytest.fixture
def study_copy(raw_study, tmp_path) -> Path:
    """A private copy of the DICOM study that a test may break."""
    dest = tmp_path / CASE
    shutil.copytree(raw_study / "raw" / "dicom" / CASE, dest)
    return dest
