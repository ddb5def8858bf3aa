"""THE naming authority: data set layouts on disk, both ways (find cases, name a case's files).

One module per family registers its layouts in :data:`LAYOUTS`: :mod:`.brats` (brats2021,
brats2023 with the MET/MEN/PED/SSA cohorts, brats2024), :mod:`.atlas` (ATLAS v2.0 BIDS),
:mod:`.ukb` (UK Biobank and any ``{id}`` path patterns), :mod:`.manifest` (a lab's own CSV/TSV/
JSON list). :mod:`.base` holds the records and the one NIfTI name pattern; :mod:`.names` the
cross-layout names (a case folder's files, a reference's case id, its background image, time
points). Adding a layout is one :func:`register_layout` call (e.g. one
:func:`~.brats.brats_layout` or :func:`~.ukb.pattern_layout` line).

:func:`load_subjects` turns cases into subjects, one :class:`torchio.ScalarImage` per modality
(each normalised on its own) plus an optional ``label`` :class:`torchio.LabelMap`.

Example:
    >>> from brainsegfounder.data.layouts import LAYOUTS, load_subjects
    >>> LAYOUTS["brats2021"].case_files("/data", "BraTS2021_00000").images["t1ce"].name
    'BraTS2021_00000_t1ce.nii.gz'
    >>> subjects = load_subjects("brats2021", "data/BraTS2021_Training_Data")  # doctest: +SKIP
    >>> subjects[0].subject_id, list(subjects[0].get_images_dict(intensity_only=True))  # doctest: +SKIP
    ('BraTS2021_00000', ['flair', 't1ce', 't1', 't2'])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from brainsegfounder.data.layouts.atlas import ATLAS, ATLAS_LESION_SUFFIX
from brainsegfounder.data.layouts.base import (
    LAYOUTS,
    NIFTI,
    NIFTI_PATTERN,
    CaseFiles,
    DatasetLayout,
    cases_to_subjects,
    find_cases,
    find_nifti,
    get_layout,
    is_nifti,
    modality_of,
    read_fold_json,
    register_layout,
    strip_nifti,
)
from brainsegfounder.data.layouts.brats import BRATS2021, BRATS2023, BRATS2024, BRATS_COHORTS, brats_layout
from brainsegfounder.data.layouts.manifest import (
    MANIFEST,
    MANIFEST_NAMES,
    manifest_in,
    manifest_modalities,
    read_manifest,
)
from brainsegfounder.data.layouts.names import (
    background_image,
    case_from_folder,
    find_references,
    is_reference,
    reference_case_id,
    subject_and_timepoint,
)
from brainsegfounder.data.layouts.ukb import UKB, UKB_PATTERNS, pattern_layout

if TYPE_CHECKING:
    import torchio as tio

__all__ = [
    "ATLAS", "ATLAS_LESION_SUFFIX", "BRATS2021", "BRATS2023", "BRATS2024", "BRATS_COHORTS", "CaseFiles",
    "DatasetLayout", "LAYOUTS", "MANIFEST", "MANIFEST_NAMES", "NIFTI", "NIFTI_PATTERN", "UKB", "UKB_PATTERNS",
    "background_image", "brats_layout", "case_from_folder", "cases_to_subjects", "find_cases", "find_nifti",
    "find_references", "get_layout", "is_nifti", "is_reference", "load_subjects", "manifest_in",
    "manifest_modalities", "modality_of", "pattern_layout", "read_cases", "read_fold_json", "read_manifest",
    "reference_case_id", "register_layout", "strip_nifti", "subject_and_timepoint",
]


def read_cases(layout: str | DatasetLayout, root: str | Path, fold_file: str | Path | None = None,
               manifest: str | Path | None = None, modalities: Sequence[str] | None = None) -> list[CaseFiles]:
    """The cases of a data set, from a manifest, a MONAI fold file, or by scanning ``root`` in ``layout``.

    Each case keeps only ``modalities`` (default: all it has), in that order: what both data
    modules train on.
    """
    if manifest:
        cases = read_manifest(manifest, modalities)
    elif fold_file:
        cases = read_fold_json(fold_file, root, layout)
    else:
        cases = find_cases(layout, root)
    if modalities:
        for case in cases:
            case.images = {m: case.images[m] for m in modalities}
    return cases


def load_subjects(layout: str | DatasetLayout, root: str | Path, fold_file: str | Path | None = None) -> list[tio.Subject]:
    """Subjects of a data set: from ``root`` in ``layout``, or from a MONAI ``fold_file``."""
    return cases_to_subjects(read_cases(layout, root, fold_file))
