"""Data set layouts on disk -> lists of :class:`torchio.Subject`.

Each supported layout is a :class:`DatasetLayout` that finds the cases under a root folder and
names their modality files; :func:`load_subjects` turns them into subjects, one
:class:`torchio.ScalarImage` per modality (so that each is normalised on its own) plus an
optional ``label`` :class:`torchio.LabelMap`.

Channel order: modalities are stacked in the layout's order. For BraTS it is the order of the
MONAI fold file the released BrainSegFounder weights were trained with: FLAIR, T1ce, T1, T2
(2023 names: t2f, t1c, t1n, t2w).

Example:
    >>> from brainsegfounder.data.layouts import load_subjects  # doctest: +SKIP
    >>> subjects = load_subjects("brats2021", "data/BraTS2021_Training_Data")  # doctest: +SKIP
    >>> subjects[0].subject_id, list(subjects[0].get_images_dict(intensity_only=True))  # doctest: +SKIP
    ('BraTS2021_00000', ['flair', 't1ce', 't1', 't2'])
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torchio as tio

from brainsegfounder.errors import DataError

__all__ = ["CaseFiles", "DatasetLayout", "LAYOUTS", "register_layout", "find_cases", "load_subjects",
           "cases_to_subjects", "read_fold_json", "pattern_layout", "UKB_PATTERNS"]

NIFTI = (".nii.gz", ".nii")


@dataclass
class CaseFiles:
    """The files of one case: ``images`` maps modality name -> path; ``label`` may be None."""

    subject_id: str
    images: dict[str, Path]
    label: Path | None = None
    fold: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetLayout:
    """A folder convention: modality names (in channel order), label scheme, and a case finder."""

    name: str
    modalities: tuple[str, ...]
    scheme: str | None
    finder: Callable[[Path, DatasetLayout], list[CaseFiles]]
    description: str = ""


LAYOUTS: dict[str, DatasetLayout] = {}


def register_layout(layout: DatasetLayout) -> DatasetLayout:
    """Add a layout to :data:`LAYOUTS` (used by the readers of other data sets)."""
    LAYOUTS[layout.name] = layout
    return layout


def _strip_nifti(name: str) -> str:
    for ext in NIFTI:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _find_file(folder: Path, stem: str) -> Path | None:
    for ext in NIFTI:
        candidate = folder / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return None


def _brats_finder(pattern: str, sep: str) -> Callable[[Path, DatasetLayout], list[CaseFiles]]:
    """Cases are folders matching ``pattern``; files are ``<folder><sep><modality>.nii.gz``."""

    def find(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
        cases = []
        for folder in sorted(p for p in root.glob(pattern) if p.is_dir()):
            case_id = folder.name
            images = {}
            for modality in layout.modalities:
                path = _find_file(folder, f"{case_id}{sep}{modality}")
                if path is None:
                    raise DataError(
                        f"subject {case_id}: modality '{modality}' is missing: expected "
                        f"{folder / f'{case_id}{sep}{modality}.nii.gz'}. Add the file, or remove the "
                        f"folder {folder} from the data root."
                    )
                images[modality] = path
            cases.append(CaseFiles(case_id, images, _find_file(folder, f"{case_id}{sep}seg")))
        return cases

    return find


BRATS2021 = register_layout(DatasetLayout(
    "brats2021", ("flair", "t1ce", "t1", "t2"), "brats2021",
    _brats_finder("BraTS2021_*", "_"),
    "BraTS 2021: BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz; labels 1, 2, 4",
))
BRATS2023 = register_layout(DatasetLayout(
    "brats2023", ("t2f", "t1c", "t1n", "t2w"), "brats2023",
    _brats_finder("BraTS-*-*", "-"),
    "BraTS 2023: BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz; labels 1, 2, 3",
))


def _pattern_finder(patterns: dict[str, str]) -> Callable[[Path, DatasetLayout], list[CaseFiles]]:
    """Cases from per-modality path patterns with an ``{id}`` placeholder (relative to the root).

    The first modality's pattern finds the participants; a participant missing another modality
    is left out with a warning (in UK Biobank many participants have a T1 but no FLAIR).
    """

    def find(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
        first = patterns[layout.modalities[0]]
        regex = re.compile("^" + re.escape(first).replace(re.escape("{id}"), "(?P<id>[^/]+)") + "$")
        cases, incomplete = [], []
        for path in sorted(root.glob(first.replace("{id}", "*"))):
            found = regex.match(path.relative_to(root).as_posix())
            if not found:
                continue
            case_id = found["id"]
            images = {m: root / patterns[m].replace("{id}", case_id) for m in layout.modalities}
            if all(p.exists() for p in images.values()):
                cases.append(CaseFiles(case_id, images))
            else:
                incomplete.append(case_id)
        if incomplete:
            logging.getLogger(__name__).warning(
                "%s: %d participant(s) lack a modality and are left out, e.g. %s", layout.name, len(incomplete),
                incomplete[:3])
        return cases

    return find


def pattern_layout(name: str, patterns: dict[str, str], description: str = "") -> DatasetLayout:
    """A layout whose files are found by per-modality patterns with an ``{id}`` placeholder.

    Example (a lab that unpacked UK Biobank differently):
        >>> lay = pattern_layout("my_ukb", {"t1": "{id}/T1_brain_to_MNI.nii.gz",
        ...                                 "flair": "{id}/T2_FLAIR_brain_to_MNI.nii.gz"})
        >>> lay.modalities
        ('t1', 'flair')
    """
    if not patterns or any("{id}" not in p for p in patterns.values()):
        raise DataError(f"layout {name}: every file pattern needs an {{id}} placeholder, got {patterns}.")
    return DatasetLayout(name, tuple(patterns), None, _pattern_finder(dict(patterns)),
                         description or "; ".join(f"{m}: {p}" for m, p in patterns.items()))


#: UK Biobank data fields 20252 (T1) and 20253 (T2-FLAIR), first imaging visit, as unpacked from
#: the bulk zips; other unpackings: ``UnlabelledDataModule(patterns=...)`` or :func:`pattern_layout`.
UKB_PATTERNS = {"t1": "{id}_20252_2_0/T1/T1_brain_to_MNI.nii.gz",
                "flair": "{id}_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz"}
UKB = register_layout(pattern_layout(
    "ukb", UKB_PATTERNS,
    "UK Biobank: <eid>_20252_2_0/T1/T1_brain_to_MNI.nii.gz and <eid>_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz",
))

def _modality_of(path: Path, modalities: tuple[str, ...]) -> str | None:
    """The modality a BraTS-style file name ends with (``..._t1ce.nii.gz`` -> ``t1ce``)."""
    stem = _strip_nifti(path.name)
    for modality in sorted(modalities, key=len, reverse=True):
        if re.search(rf"[_-]{re.escape(modality)}$", stem):
            return modality
    return None


def read_fold_json(path: str | Path, root: str | Path | None = None, layout: str = "brats2021") -> list[CaseFiles]:
    """Read a MONAI-style fold file ``{"training": [{"fold", "image": [...], "label"}, ...]}``.

    Paths are relative to ``root`` (default: the JSON's folder). The order of the ``image`` list
    is not trusted: each file's modality is read from its name and stacked in the layout's order.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    spec = LAYOUTS[layout]
    try:
        entries = json.loads(path.read_text())["training"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"fold file {path}: cannot read it as a MONAI fold file with a 'training' list "
                        f"({err}). Check the path and the JSON.") from None
    cases = []
    for n, entry in enumerate(entries):
        files = [root / p for p in entry.get("image", [])]
        images = {}
        for file in files:
            modality = _modality_of(file, spec.modalities)
            if modality is None:
                raise DataError(f"fold file {path}, entry {n}: cannot tell the modality of {file} "
                                f"(expected a name ending in one of {spec.modalities}).")
            images[modality] = file
        missing = [m for m in spec.modalities if m not in images]
        if missing:
            raise DataError(f"fold file {path}, entry {n}: modalities {missing} are not listed in 'image'.")
        subject_id = files[0].parent.name if files else f"case{n}"
        label = root / entry["label"] if entry.get("label") else None
        cases.append(CaseFiles(subject_id, {m: images[m] for m in spec.modalities}, label, entry.get("fold")))
    return cases


def find_cases(layout: str, root: str | Path) -> list[CaseFiles]:
    """The cases of a data set root in a named layout (see :data:`LAYOUTS`)."""
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder. Set data.root to the folder "
                        f"holding the {layout} cases (or generate a synthetic set: python -m "
                        f"brainsegfounder.data.synthetic --layout {layout} --out {root}).")
    cases = LAYOUTS[layout].finder(root, LAYOUTS[layout])
    if not cases:
        raise DataError(f"no {layout} cases found under {root}. Expected: {LAYOUTS[layout].description}.")
    return cases


def cases_to_subjects(cases: list[CaseFiles]) -> list[tio.Subject]:
    """One :class:`torchio.Subject` per case; images are read lazily by TorchIO."""
    subjects = []
    for case in cases:
        fields = {m: tio.ScalarImage(p) for m, p in case.images.items()}
        if case.label is not None:
            fields["label"] = tio.LabelMap(case.label)
        # No None attributes: PyTorch's collate cannot batch them.
        attributes = {"subject_id": case.subject_id, **case.extra}
        if case.fold is not None:
            attributes["fold"] = int(case.fold)
        subjects.append(tio.Subject(fields, **attributes))
    return subjects


def load_subjects(layout: str, root: str | Path, fold_file: str | Path | None = None) -> list[tio.Subject]:
    """Subjects of a data set: from ``root`` in ``layout``, or from a MONAI ``fold_file``."""
    cases = read_fold_json(fold_file, root, layout) if fold_file else find_cases(layout, root)
    return cases_to_subjects(cases)


# -- ATLAS v2.0 (BIDS) -------------------------------------------------------------------------------

_ATLAS_T1 = re.compile(r"_T1w\.nii(\.gz)?$")
ATLAS_LESION_SUFFIX = "_label-L_desc-T1lesion_mask"


def _atlas_finder(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
    """ATLAS v2.0 in BIDS: ``**/sub-*/ses-*/anat/<prefix>_T1w.nii.gz`` + ``<prefix>_label-L_desc-T1lesion_mask``.

    The case id is the subject (``sub-r001s001``), as :func:`brainsegfounder.evaluate.case_id_from_reference`
    names ATLAS references. ATLAS v2.0 has one session per subject; a subject with several T1w
    files is refused rather than silently picking one. Subjects without a mask (the test release)
    get ``label=None``.
    """
    by_subject: dict[str, list[Path]] = {}
    for path in sorted(root.glob("**/sub-*/ses-*/anat/*_T1w.nii*")):
        if _ATLAS_T1.search(path.name) and path.is_file():
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
        prefix = _ATLAS_T1.sub("", t1.name)
        label = _find_file(t1.parent, f"{prefix}{ATLAS_LESION_SUFFIX}")
        cases.append(CaseFiles(subject, {"t1w": t1}, label))
    return cases


ATLAS = register_layout(DatasetLayout(
    "atlas", ("t1w",), "lesion", _atlas_finder,
    "ATLAS v2.0 (BIDS): .../sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz "
    "and ..._label-L_desc-T1lesion_mask.nii.gz; binary lesion mask",
))


# -- a lab's own data: a manifest file ---------------------------------------------------------------

MANIFEST_NAMES = ("manifest.csv", "manifest.tsv", "manifest.json")


def manifest_in(root: str | Path) -> Path:
    """The one ``manifest.csv`` / ``manifest.tsv`` / ``manifest.json`` in a data folder."""
    root = Path(root).expanduser()
    found = [root / name for name in MANIFEST_NAMES if (root / name).is_file()]
    if len(found) != 1:
        raise DataError(f"layout 'manifest': expected exactly one of {MANIFEST_NAMES} in {root}, found "
                        f"{[p.name for p in found] or 'none'}. Point data.manifest at your manifest file.")
    return found[0]


def _manifest_finder(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
    """A folder holding ``manifest.csv`` (or ``.tsv``, ``.json``): see :mod:`brainsegfounder.data.manifest`."""
    from brainsegfounder.data.manifest import read_manifest

    return read_manifest(manifest_in(root))


# Modalities come from the manifest's columns (or data.modalities), so the layout fixes none.
MANIFEST = register_layout(DatasetLayout(
    "manifest", (), None, _manifest_finder,
    "a manifest (CSV/TSV/JSON) with columns subject_id, one per modality, optional label and fold",
))
