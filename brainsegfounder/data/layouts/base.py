"""What every layout shares: the case record, the layout record, the registry and NIfTI names.

A :class:`DatasetLayout` works both ways: its finder lists the cases under a data set root, and
:meth:`DatasetLayout.case_files` names the files one case has there (what a writer such as the
synthetic generator fills in). Nothing here imports a layout family; the families
(:mod:`.brats`, :mod:`.atlas`, :mod:`.ukb`, :mod:`.manifest`) import this module and register
themselves.

Example:
    >>> strip_nifti("BraTS2021_00000_FLAIR.NII.GZ"), is_nifti("a.nii"), is_nifti("a.mgz")
    ('BraTS2021_00000_FLAIR', True, False)
    >>> modality_of("BraTS-GLI-00001-000-t1c.nii.gz", ("t1n", "t1c", "t2w", "t2f"))
    't1c'
    >>> modality_of("sub-01_ses-1_T1w.nii.gz", ("t1w",)), modality_of("x_seg.nii.gz", ("t1",))
    ('t1w', None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from brainsegfounder.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torchio as tio

__all__ = ["NIFTI", "NIFTI_PATTERN", "CaseFiles", "DatasetLayout", "LAYOUTS", "register_layout", "get_layout",
           "strip_nifti", "is_nifti", "find_nifti", "modality_of", "find_cases", "cases_to_subjects",
           "read_fold_json"]

#: File extensions a writer uses, preferred first.
NIFTI = (".nii.gz", ".nii")
#: THE NIfTI name pattern of the package: ``.nii`` or ``.nii.gz``, any case.
NIFTI_PATTERN = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


def strip_nifti(name: str) -> str:
    """A file name without its ``.nii``/``.nii.gz`` extension (any case)."""
    return NIFTI_PATTERN.sub("", name)


def is_nifti(path: str | Path) -> bool:
    return NIFTI_PATTERN.search(Path(path).name) is not None


def find_nifti(folder: Path, stem: str) -> Path | None:
    """``folder/<stem>.nii.gz`` or ``.nii``; names differing only in case are found too."""
    for ext in NIFTI:
        candidate = folder / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    if folder.is_dir():
        # Case-insensitive fallback, only on a miss (exports from some PACS upper-case names).
        matches = sorted(p for p in folder.iterdir() if is_nifti(p) and strip_nifti(p.name).lower() == stem.lower())
        if matches:
            return matches[0]
    return None


def modality_of(path: str | Path, modalities: Sequence[str]) -> str | None:
    """The modality a file name ends with (``..._t1ce``, ``...-t1c``, BIDS ``..._T1w``), any case.

    The longest matching name wins, so ``t1ce`` is never read as ``t1``; ``None`` if none matches.
    """
    stem = strip_nifti(Path(path).name)
    for modality in sorted(modalities, key=len, reverse=True):
        if re.search(rf"(^|[_-]){re.escape(modality)}$", stem, re.IGNORECASE):
            return modality
    return None


@dataclass
class CaseFiles:
    """The files of one case: ``images`` maps modality name -> path; ``label`` may be None.

    ``folder`` is the case's own folder where the layout has one (what the synthetic generator
    returns per case); ``extra`` holds attributes copied onto the :class:`torchio.Subject`.
    """

    subject_id: str
    images: dict[str, Path]
    label: Path | None = None
    fold: int | None = None
    extra: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every file of the case: images in channel order, then the label if any."""
        return [*self.images.values(), *([self.label] if self.label is not None else [])]


Finder = Callable[[Path, "DatasetLayout"], list[CaseFiles]]
Namer = Callable[[Path, str, "DatasetLayout"], CaseFiles]


@dataclass(frozen=True)
class DatasetLayout:
    """A folder convention: modalities (in channel order), label scheme, how to find and name cases.

    Args:
        name: the layout's name (``data.layout``, ``--layout``).
        modalities: modality names in channel order.
        scheme: the label scheme of its references (a :mod:`~brainsegfounder.data.regions` name).
        finder: ``(root, layout) -> [CaseFiles]``: every case under a data set root.
        description: the expected names, for error messages.
        namer: ``(root, case_id, layout) -> CaseFiles``: where one case's files go (None: the layout
            cannot be written, e.g. a manifest).
        case_id_format: how the data set numbers its cases, for writers: a :meth:`str.format`
            pattern over ``index`` (0-based), ``number`` (1-based), ``cohort`` and ``timepoint``.
        reference_suffix: the end of a reference label file's stem (``_seg``), for pairing.
        background: the modality drawn behind a reference in pictures.
    """

    name: str
    modalities: tuple[str, ...]
    scheme: str | None
    finder: Finder
    description: str = ""
    namer: Namer | None = None
    case_id_format: str | None = None
    reference_suffix: str | None = None
    background: str | None = None

    def case_files(self, root: str | Path, case_id: str) -> CaseFiles:
        """The paths of ``case_id``'s images and label under ``root`` (nothing is checked or made)."""
        if self.namer is None:
            raise ConfigError(f"layout {self.name} does not say where a case's files go; write the files "
                              "yourself and list them in a manifest.")
        return self.namer(Path(root), case_id, self)

    @property
    def cohorts(self) -> bool:
        """Whether case ids carry a cohort (BraTS 2023+: ``BraTS-MET-...``)."""
        return "{cohort" in (self.case_id_format or "")

    def case_id(self, index: int, cohort: str | None = None, timepoint: int = 0) -> str:
        """The id the data set would give case ``index`` (0-based).

        >>> LAYOUTS["brats2023"].case_id(7, cohort="MET")
        'BraTS-MET-00007-000'
        """
        if self.case_id_format is None:
            raise ConfigError(f"layout {self.name} does not number its cases; it cannot be generated.")
        if cohort is not None and not self.cohorts:
            raise ConfigError(f"layout {self.name} has no cohorts (got {cohort!r}); cohorts are part of the "
                              "BraTS 2023+ names (brats2023, brats2024).")
        return self.case_id_format.format(index=index, number=index + 1, cohort=cohort or "GLI",
                                          timepoint=timepoint)


LAYOUTS: dict[str, DatasetLayout] = {}


def register_layout(layout: DatasetLayout) -> DatasetLayout:
    """Make a layout known by its name (readers, predict, evaluate, the synthetic generator)."""
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(layout: str | DatasetLayout) -> DatasetLayout:
    """A registered layout by name (a :class:`DatasetLayout` is returned as is)."""
    if isinstance(layout, DatasetLayout):
        return layout
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
    return LAYOUTS[layout]


def find_cases(layout: str | DatasetLayout, root: str | Path) -> list[CaseFiles]:
    """The cases of a data set root in a layout (a name in :data:`LAYOUTS`, or a layout)."""
    spec = get_layout(layout)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder. Set data.root to the folder "
                        f"holding the {spec.name} cases (or generate a synthetic set: python -m "
                        f"brainsegfounder.data.synthetic --layout {spec.name} --out {root}).")
    cases = spec.finder(root, spec)
    if not cases:
        raise DataError(f"no {spec.name} cases found under {root}. Expected: {spec.description}.")
    return cases


def cases_to_subjects(cases: list[CaseFiles]) -> list[tio.Subject]:
    """One :class:`torchio.Subject` per case; images are read lazily by TorchIO."""
    import torchio as tio  # here, so that naming files (the generator, --help) does not load torch

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


def read_fold_json(path: str | Path, root: str | Path | None = None,
                   layout: str | DatasetLayout = "brats2021") -> list[CaseFiles]:
    """Read a MONAI-style fold file ``{"training": [{"fold", "image": [...], "label"}, ...]}``.

    Paths are relative to ``root`` (default: the JSON's folder). The order of the ``image`` list
    is not trusted: each file's modality is read from its name and stacked in the layout's order.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    spec = get_layout(layout)
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
            modality = modality_of(file, spec.modalities)
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
