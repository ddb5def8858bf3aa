"""Pairing predictions with references by case id, through the layout authority.

How a reference file names its case, which files are references, and which image lies beside a
reference are the layouts' knowledge (:mod:`brainsegfounder.data.layouts.names`); this module only
pairs the two folders and says clearly what does not pair.

>>> case_id_from_reference("BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz")
'BraTS-GLI-00000-000'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainsegfounder.data.layouts.base import is_nifti
from brainsegfounder.data.layouts.names import background_image as _background_path
from brainsegfounder.data.layouts.names import find_references
from brainsegfounder.data.layouts.names import reference_case_id as case_id_from_reference
from brainsegfounder.utils.errors import DataError

__all__ = ["background_image", "case_id_from_reference", "find_predictions", "find_references",
           "match_cases", "pair_cases", "pair_with_unscored"]

_MAX_LISTED = 20


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


def find_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """Prediction files (``<case_id>.nii.gz`` or ``.nii``) directly in ``pred_dir``, by case id."""
    pred_dir = _existing_dir(pred_dir, "prediction", "pass the folder the predict command wrote")
    files = sorted(p for p in pred_dir.iterdir() if is_nifti(p) and p.is_file())
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


def match_cases(pred_dir: str | Path, ref_dir: str | Path, subjects: Sequence[str] | None = None
                ) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Every reference case, paired or not: ``(pairs, missing, orphans)``, each sorted by case id.

    ``pairs`` are ``(case_id, prediction, reference)``; ``missing`` are ``(case_id, reference)``
    with no prediction (``evaluate`` scores them as the rule set says, or refuses); ``orphans`` are
    ``(case_id, prediction)`` with no reference (named, not scored). ``subjects`` limits the
    references to these case ids (the held-out fold of a data set root), each of which must exist.
    When no prediction has a reference at all (the wrong ``--ref``), a :class:`DataError` says so.
    """
    predictions = find_predictions(pred_dir)
    references = find_references(ref_dir)
    if subjects is not None:
        unknown = sorted(set(subjects) - set(references))
        if unknown:
            raise DataError(f"--subjects names {len(unknown)} case(s) with no reference under {ref_dir}: "
                            f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}. Give case ids of "
                            "that data set (the folder names, e.g. BraTS2021_00000).")
        references = {case: references[case] for case in subjects}
    orphans = sorted(set(predictions) - set(references))
    if orphans and len(orphans) == len(predictions):
        raise DataError(
            f"none of the {len(predictions)} prediction(s) in {pred_dir} has a reference under {ref_dir}:\n"
            f"{_listing([predictions[c].name for c in orphans])}\n"
            "Name each prediction <case_id>.nii.gz after its reference case (e.g. BraTS2021_00000.nii.gz, "
            "BraTS-GLI-00000-000.nii.gz, sub-r001s001.nii.gz), or point --ref at the right data set."
        )
    pairs = [(case, predictions[case], references[case]) for case in sorted(set(predictions) & set(references))]
    missing = [(case, references[case]) for case in sorted(set(references) - set(predictions))]
    return pairs, missing, [(case, predictions[case]) for case in orphans]


def pair_cases(pred_dir: str | Path, ref_dir: str | Path, strict: bool = False) -> list[tuple[str, Path, Path]]:
    """Pair each prediction with its reference: ``[(case_id, prediction, reference), ...]`` by case id.

    Every prediction must have a reference (a :class:`DataError` lists those that do not).
    References without a prediction are left out (a data set root usually holds more cases than the
    fold that was predicted), unless ``strict``, which refuses them too.
    """
    return pair_with_unscored(pred_dir, ref_dir, strict)[0]


def background_image(ref_path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The layout's picture background beside a reference (BraTS FLAIR, ATLAS T1w) if on the same grid."""
    import nibabel as nib

    candidate = _background_path(ref_path)
    if candidate is None:
        return None
    data = np.asanyarray(nib.load(str(candidate)).dataobj)
    return data if data.shape == shape else None
