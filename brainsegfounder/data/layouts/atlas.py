"""ATLAS v2.0 (BIDS): ``.../sub-r001s001/ses-1/anat/<prefix>_T1w.nii.gz`` and its lesion mask.

The case id is the subject (``sub-r001s001``), as evaluate's pairing names ATLAS references.
ATLAS v2.0 has one session per subject; a subject with several T1w files is refused rather than
silently picking one. Subjects without a mask (the test release) get ``label=None``.

Example:
    >>> case = ATLAS.case_files("/data", "sub-r001s001")
    >>> case.images["t1w"].as_posix()
    '/data/Training/R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz'
"""

from __future__ import annotations

import re
from pathlib import Path

from brainsegfounder.data.layouts.base import CaseFiles, DatasetLayout, find_nifti, register_layout
from brainsegfounder.utils.errors import DataError
from brainsegfounder.utils.folders import files_below

__all__ = ["ATLAS", "ATLAS_LESION_SUFFIX"]

_T1W = re.compile(r"_T1w\.nii(\.gz)?$", re.IGNORECASE)
ATLAS_LESION_SUFFIX = "_label-L_desc-T1lesion_mask"
_SPACE = "space-MNI152NLin2009aSym"


def _atlas_files(root: Path, case_id: str, layout: DatasetLayout) -> CaseFiles:
    """Where ATLAS puts a subject: ``Training/<site>/<subject>/ses-1/anat`` (site from ``sub-r001...``).

    A case id ``sub-r001s001_ses-2`` (a later session, as the synthetic generator writes) goes to ``ses-2``.
    """
    subject, _, session = case_id.partition("_ses-")
    folder = root / "Training" / subject[4:8].upper() / subject
    stem = folder / f"ses-{session or 1}" / "anat" / f"{subject}_ses-{session or 1}_{_SPACE}"
    return CaseFiles(case_id, {"t1w": Path(f"{stem}_T1w.nii.gz")}, Path(f"{stem}{ATLAS_LESION_SUFFIX}.nii.gz"),
                     folder=folder)


def _in_bids_anat(relative: Path) -> bool:
    parts = relative.parts
    return (len(parts) >= 4 and parts[-2] == "anat" and parts[-3].startswith("ses-")
            and parts[-4].startswith("sub-"))


def _atlas_finder(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
    by_subject: dict[str, list[Path]] = {}
    for path in sorted(files_below(root)):  # <root>/.../sub-*/ses-*/anat/*_T1w.nii*, through linked folders
        if _in_bids_anat(path.relative_to(root)) and _T1W.search(path.name) and path.is_file():
            by_subject.setdefault(path.parts[-4], []).append(path)
    duplicates = {s: p for s, p in by_subject.items() if len(p) > 1}
    if duplicates:
        subject, paths = sorted(duplicates.items())[0]
        raise DataError(
            f"subject {subject} has {len(paths)} T1w files ({', '.join(str(p) for p in paths)}); the atlas "
            f"layout reads one session per subject ({len(duplicates)} subject(s) affected). Keep one, or list "
            "the sessions you want as separate subjects in a manifest (data.layout: manifest)."
        )
    cases = []
    for subject, (t1,) in sorted(by_subject.items()):
        prefix = _T1W.sub("", t1.name)
        label = find_nifti(t1.parent, f"{prefix}{ATLAS_LESION_SUFFIX}")
        cases.append(CaseFiles(subject, {"t1w": t1}, label, folder=t1.parents[2]))
    return cases


ATLAS = register_layout(DatasetLayout(
    "atlas", ("t1w",), "lesion", _atlas_finder,
    "ATLAS v2.0 (BIDS): .../sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz "
    "and ..._label-L_desc-T1lesion_mask.nii.gz; binary lesion mask",
    namer=_atlas_files, case_id_format="sub-r001s{number:03d}", reference_suffix=ATLAS_LESION_SUFFIX,
    background="t1w",
))
