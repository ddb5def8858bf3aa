"""Names across layouts: a case folder's files, a reference's case id, its background, time points.

These read what the registered layouts declare (:attr:`~.DatasetLayout.reference_suffix`,
:attr:`~.DatasetLayout.background`), so a new layout is paired and pictured without code here.

Example:
    >>> reference_case_id("BraTS2021_00000/BraTS2021_00000_seg.nii.gz")
    'BraTS2021_00000'
    >>> reference_case_id("sub-r001s001/ses-1/anat/sub-r001s001_ses-1_label-L_desc-T1lesion_mask.nii.gz")
    'sub-r001s001'
    >>> reference_case_id("predictions/BraTS-MET-00001-000.nii.gz")
    'BraTS-MET-00001-000'
    >>> subject_and_timepoint("BraTS-GLI-00001-001"), subject_and_timepoint("sub-X_ses-2")
    (('BraTS-GLI-00001', '001'), ('sub-X', 'ses-2'))
    >>> subject_and_timepoint("BraTS2021_00000")
    ('BraTS2021_00000', None)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.data.layouts.base import (
    LAYOUTS,
    CaseFiles,
    find_nifti,
    is_nifti,
    modality_of,
    strip_nifti,
)
from brainsegfounder.utils.errors import DataError
from brainsegfounder.utils.folders import files_below

__all__ = ["case_from_folder", "reference_case_id", "find_references", "background_image",
           "subject_and_timepoint", "is_reference"]

# BIDS derivatives name any lesion mask ``..._desc-<something>lesion_mask``.
_BIDS_LESION = re.compile(r"_desc-[^_]*lesion_mask$", re.IGNORECASE)
_BRATS_TIMEPOINT = re.compile(r"^(BraTS-[A-Za-z]+-\d+)-(\d+)$")
_BIDS_SESSION = re.compile(r"^(sub-[^_/]+)[_/](ses-[^_/]+)")
_MAX_LISTED = 10


def _reference_suffixes() -> list[str]:
    return sorted({lay.reference_suffix for lay in LAYOUTS.values() if lay.reference_suffix}, key=len, reverse=True)


def is_reference(path: str | Path) -> bool:
    """Whether a file is named as a data set's reference label (``_seg``, ``-seg``, a BIDS lesion mask)."""
    stem = strip_nifti(Path(path).name)
    return is_nifti(path) and (any(stem.lower().endswith(s.lower()) for s in _reference_suffixes())
                               or _BIDS_LESION.search(stem) is not None)


def reference_case_id(path: str | Path) -> str:
    """The case id a label file stands for: its layout's case id, or a flat file's stem.

    The same rule names predictions, so a prediction may also keep its reference's file name.
    """
    stem = strip_nifti(Path(path).name)
    if stem.startswith("sub-"):
        return stem.split("_", 1)[0]
    for suffix in _reference_suffixes():
        if stem.lower().endswith(suffix.lower()):
            return stem[: -len(suffix)]
    return stem


def find_references(root: str | Path) -> dict[str, Path]:
    """Reference label files under ``root`` by case id.

    If any NIfTI file below ``root`` is named as a reference (:func:`is_reference`), those are the
    references (a data set root); otherwise every NIfTI file directly in ``root`` is (a flat folder
    of ``<case_id>.nii.gz``). Two files for one case id are an error naming both.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"the reference folder {root} does not exist or is not a folder; pass a data set root "
                        "or a folder of <case_id>.nii.gz.")
    files = sorted(p for p in files_below(root) if is_reference(p) and p.is_file())
    files = files or sorted(p for p in root.iterdir() if is_nifti(p) and p.is_file())
    if not files:
        raise DataError(
            f"no reference segmentations found under {root}: expected a data set root "
            "(BraTS2021_*/..._seg.nii.gz, BraTS-*/...-seg.nii.gz, sub-*/ses-*/anat/..._desc-T1lesion_mask.nii.gz) "
            "or a flat folder of <case_id>.nii.gz files.")
    by_case: dict[str, list[Path]] = {}
    for path in files:
        by_case.setdefault(reference_case_id(path), []).append(path)
    twice = [f"{case}: {', '.join(map(str, paths))}" for case, paths in sorted(by_case.items()) if len(paths) > 1]
    if twice:
        raise DataError(f"{len(twice)} case id(s) name more than one reference file under {root}:\n  "
                        + "\n  ".join(twice[:_MAX_LISTED]) + "\nKeep one file per case (for ATLAS, one session "
                        "per subject).")
    return {case: paths[0] for case, paths in by_case.items()}


def background_image(reference_path: str | Path) -> Path | None:
    """The image a layout keeps beside a reference for pictures (BraTS FLAIR/t2f, ATLAS T1w), if any."""
    path = Path(reference_path)
    stem = strip_nifti(path.name)
    for layout in LAYOUTS.values():
        suffix, background = layout.reference_suffix, layout.background
        if suffix and background and stem.lower().endswith(suffix.lower()):
            found = find_nifti(path.parent, f"{stem[: -len(suffix)]}{suffix[0]}{background}")
            if found is not None:
                return found
    return None


def subject_and_timepoint(case_id: str) -> tuple[str, str | None]:
    """``(subject, time point)`` of a case id: BraTS 2023+ ``-NNN`` suffix, BIDS ``ses-`` entity.

    A case id without a time point is its own subject (time point ``None``).
    """
    for pattern in (_BRATS_TIMEPOINT, _BIDS_SESSION):
        found = pattern.match(case_id)
        if found:
            return found[1], found[2]
    return case_id, None


def case_from_folder(folder: str | Path, modalities: Sequence[str]) -> CaseFiles | None:
    """One case from a folder holding a file per modality (names ending in ``_<modality>`` or ``-<modality>``).

    Returns ``None`` when the folder is not one case folder (no file names a modality, or the
    names belong to several cases, as in a data set root). Raises :class:`DataError` naming the
    expected file when some modalities are there and another is missing, and naming the files
    when two end in the same modality. The case id is the folder's name.
    """
    folder = Path(folder)
    found: dict[str, list[Path]] = {m: [] for m in modalities}
    prefixes: dict[str, str] = {}
    for path in sorted(p for p in files_below(folder) if is_nifti(p) and p.is_file()):
        modality = modality_of(path, modalities)
        if modality is None:
            continue
        found[modality].append(path)
        stem = strip_nifti(path.name)
        prefix = stem[: len(stem) - len(modality)]  # keeps the separator: "BraTS2021_00007_"
        prefixes.setdefault(prefix.lower(), prefix)
    if not any(found.values()) or len(prefixes) > 1:
        return None
    twice = {m: paths for m, paths in found.items() if len(paths) > 1}
    if twice:
        modality, paths = next(iter(twice.items()))
        raise DataError(f"case folder {folder}: {len(paths)} files end in '{modality}' "
                        f"({', '.join(p.name for p in paths)}); keep one, or pass the files explicitly.")
    missing = [m for m, paths in found.items() if not paths]
    if missing:
        prefix = next(iter(prefixes.values()))
        expected = ", ".join(str(folder / f"{prefix}{m}.nii.gz") for m in missing)
        raise DataError(f"case folder {folder}: no image for modality {', '.join(missing)}: expected {expected}. "
                        f"Add the file(s) (the checkpoint takes {', '.join(modalities)}), or pass the files "
                        "explicitly.")
    return CaseFiles(folder.name, {m: found[m][0] for m in modalities}, folder=folder)
