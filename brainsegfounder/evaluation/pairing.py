"""Pairing predictions with references by case id: evaluate's naming rules, kept in one place.

SWAP POINT: these rules (how a reference file names its case, which files are segmentations,
which image lies beside a reference) belong to the layout authority (``data/layouts``). They are
moved here unchanged from ``evaluate.py`` so that the rewiring is one import in
:mod:`brainsegfounder.evaluate`: replace :func:`pair_with_unscored` and :func:`background_image`
with the layouts' readers and delete this module.

>>> case_id_from_reference("BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz")
'BraTS-GLI-00000-000'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainsegfounder.errors import DataError

__all__ = ["background_image", "case_id_from_reference", "find_predictions", "find_references",
           "pair_cases", "pair_with_unscored"]

_NIFTI = re.compile(r"\.nii(\.gz)?$")
# Names that mark a file as a segmentation inside a data set's own layout.
_SEGMENTATION = re.compile(r"(_seg|-seg|_desc-[^_]*lesion_mask)\.nii(\.gz)?$")
# Background images for --png, found beside a reference in the data sets' own layouts.
_BACKGROUNDS = (("_seg", "_flair"), ("-seg", "-t2f"), ("_label-L_desc-T1lesion_mask", "_T1w"))
_MAX_LISTED = 20


def case_id_from_reference(path: str | Path) -> str:
    """The case id a segmentation file stands for, in any of the supported layouts.

    The same rule names predictions, so a prediction may also keep its reference's file name.

    >>> case_id_from_reference("BraTS2021_00000/BraTS2021_00000_seg.nii.gz")
    'BraTS2021_00000'
    >>> case_id_from_reference("BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz")
    'BraTS-GLI-00000-000'
    >>> case_id_from_reference(
    ...     "sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz")
    'sub-r001s001'
    >>> case_id_from_reference("predictions/BraTS2021_00000.nii.gz")
    'BraTS2021_00000'
    """
    name = _NIFTI.sub("", Path(path).name)
    if name.startswith("sub-"):
        return name.split("_", 1)[0]
    for suffix in ("_seg", "-seg"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _listing(paths: Sequence[object]) -> str:
    shown = "\n".join(f"  {p}" for p in paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _by_case(files: list[Path], what: str, folder: Path) -> dict[str, Path]:
    cases: dict[str, list[Path]] = {}
    for path in files:
        cases.setdefault(case_id_from_reference(path), []).append(path)
    duplicates = {case: paths for case, paths in cases.items() if len(paths) > 1}
    if duplicates:
        lines = [f"{case}: {', '.join(str(p) for p in paths)}" for case, paths in sorted(duplicates.items())]
        raise DataError(
            f"{len(duplicates)} case id(s) name more than one {what} file under {folder}:\n"
            f"{_listing(lines)}\nKeep one file per case (for ATLAS, one session per subject)."
        )
    return {case: paths[0] for case, paths in cases.items()}


def _existing_dir(folder: str | Path, what: str, hint: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"the {what} folder {folder} does not exist or is not a folder; {hint}")
    return folder


def find_references(ref_dir: str | Path) -> dict[str, Path]:
    """Reference segmentations under ``ref_dir`` by case id.

    If any NIfTI file below ``ref_dir`` is named like a segmentation (``*_seg``, ``*-seg``,
    ``*_desc-*lesion_mask``), those are the references (a data set root); otherwise every NIfTI file
    directly in ``ref_dir`` is (a flat folder).
    """
    ref_dir = _existing_dir(ref_dir, "reference", "pass a data set root or a folder of <case_id>.nii.gz")
    segmentations = sorted(p for p in ref_dir.rglob("*") if _SEGMENTATION.search(p.name) and p.is_file())
    files = segmentations or sorted(p for p in ref_dir.iterdir() if _NIFTI.search(p.name) and p.is_file())
    if not files:
        raise DataError(
            f"no reference segmentations found under {ref_dir}: expected a data set root "
            "(BraTS2021_*/..._seg.nii.gz, BraTS-*/...-seg.nii.gz, sub-*/ses-*/anat/..._desc-T1lesion_mask.nii.gz) "
            "or a flat folder of <case_id>.nii.gz files."
        )
    return _by_case(files, "reference", ref_dir)


def find_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """Prediction files (``<case_id>.nii.gz`` or ``.nii``) directly in ``pred_dir``, by case id."""
    pred_dir = _existing_dir(pred_dir, "prediction", "pass the folder the predict command wrote")
    files = sorted(p for p in pred_dir.iterdir() if _NIFTI.search(p.name) and p.is_file())
    if not files:
        raise DataError(f"no prediction files (<case_id>.nii.gz) found in {pred_dir}.")
    return _by_case(files, "prediction", pred_dir)


def pair_with_unscored(pred_dir: str | Path, ref_dir: str | Path, strict: bool) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    predictions = find_predictions(pred_dir)
    references = find_references(ref_dir)
    orphans = sorted(set(predictions) - set(references))
    if orphans:
        raise DataError(
            f"{len(orphans)} prediction(s) in {pred_dir} have no reference under {ref_dir}:\n"
            f"{_listing([predictions[c].name for c in orphans])}\n"
            "Name each prediction <case_id>.nii.gz after its reference case (e.g. BraTS2021_00000.nii.gz, "
            "BraTS-GLI-00000-000.nii.gz, sub-r001s001.nii.gz), or point --ref at the right data set."
        )
    unscored = sorted(set(references) - set(predictions))
    if strict and unscored:
        raise DataError(
            f"{len(unscored)} reference(s) under {ref_dir} have no prediction in {pred_dir}:\n"
            f"{_listing([str(references[c]) for c in unscored])}\n"
            "Predict them, or drop --strict to score only the cases that have predictions."
        )
    pairs = [(case, predictions[case], references[case]) for case in sorted(predictions)]
    return pairs, unscored


def pair_cases(pred_dir: str | Path, ref_dir: str | Path, strict: bool = False) -> list[tuple[str, Path, Path]]:
    """Pair each prediction with its reference: ``[(case_id, prediction, reference), ...]`` by case id.

    Every prediction must have a reference (a :class:`DataError` lists those that do not).
    References without a prediction are left out (a data set root usually holds more cases than the
    fold that was predicted), unless ``strict``, which refuses them too.
    """
    return pair_with_unscored(pred_dir, ref_dir, strict)[0]


def background_image(ref_path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    # Keep it simple: only the data sets' own layouts put an image beside the segmentation.
    import nibabel as nib

    name = ref_path.name
    for seg, image in _BACKGROUNDS:
        if seg in name:
            candidate = ref_path.with_name(name.replace(seg, image))
            if candidate.is_file():
                data = np.asanyarray(nib.load(str(candidate)).dataobj)
                return data if data.shape == shape else None
    return None
