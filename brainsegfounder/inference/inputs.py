"""Which cases to predict: a data set root in any registered layout, one case folder, or one case's files.

:func:`find_inputs` turns what a user passes to ``predict --input`` into one
:class:`~brainsegfounder.data.layouts.CaseFiles` per case, images in the checkpoint's channel order.
File names are read by the layout authority (:mod:`brainsegfounder.data.layouts`): which modality
a file is, which files make one case folder, what a missing one should have been called.
With ``allow_missing`` a case folder lacking some modality files is returned with the files it
has (``CaseFiles.extra["expected"]`` names the missing ones), for checkpoints trained with
modality dropout; the predictor decides whether it may do without them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.data.layouts import LAYOUTS, CaseFiles, case_from_folder, find_cases
from brainsegfounder.data.layouts.base import is_nifti, modality_of, strip_nifti
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["find_inputs", "partial_cases"]


def _partial_case(folder: Path, modalities: Sequence[str]) -> CaseFiles | None:
    found: dict[str, Path] = {}
    prefix = None
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p)):
        modality = modality_of(path, modalities)
        if modality is None or modality in found:
            continue
        found[modality] = path
        stem = strip_nifti(path.name)
        prefix = prefix or stem[: len(stem) - len(modality)]  # keeps the separator: "BraTS2021_00007_"
    if not found:
        return None
    expected = {m: str(folder / f"{prefix}{m}.nii.gz") for m in modalities if m not in found}
    return CaseFiles(folder.name, {m: found[m] for m in modalities if m in found}, folder=folder,
                     extra={"expected": expected} if expected else {})


def partial_cases(folder: str | Path, modalities: Sequence[str]) -> list[CaseFiles]:
    """Cases in ``folder`` (one case folder, or a root of case folders) with the modality files they have.

    A file's modality is read from its name ending (``..._flair.nii.gz``, :func:`modality_of`);
    a missing modality is absent from ``images`` and its expected path is in
    ``extra["expected"]``. Folders without any modality file are not cases.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "BraTS2021_00007"; folder.mkdir()
    >>> _ = (folder / "BraTS2021_00007_flair.nii.gz").write_bytes(b"")
    >>> case = partial_cases(folder, ("flair", "t1ce", "t1", "t2"))[0]
    >>> list(case.images), pathlib.Path(case.extra["expected"]["t1ce"]).name
    (['flair'], 'BraTS2021_00007_t1ce.nii.gz')
    """
    folder = Path(folder)
    own = _partial_case(folder, modalities)
    if own is not None:
        return [own]
    return [case for sub in sorted(p for p in folder.iterdir() if p.is_dir())
            if (case := _partial_case(sub, modalities)) is not None]


def _case_from_files(paths: list[Path], modalities: Sequence[str] | None, in_channels: int) -> CaseFiles:
    if len(paths) != in_channels:
        order = f" in the order {', '.join(modalities)}" if modalities else ""
        raise DataError(f"{len(paths)} image file(s) given but the checkpoint takes {in_channels} "
                        f"modalities{order}: pass one file per modality, or a case folder.")
    not_nifti = [p for p in paths if not is_nifti(p)]
    if not_nifti:
        raise DataError(f"not NIfTI files (.nii or .nii.gz): {', '.join(map(str, not_nifti))}.")
    names = list(modalities) if modalities else [f"channel{i}" for i in range(in_channels)]
    if modalities:
        # A file named after another modality than its position says is the commonest slip.
        for position, path in enumerate(paths):
            named = modality_of(path, modalities)
            if named is not None and named != names[position]:
                raise DataError(f"{path} looks like modality {named!r} but stands at position "
                                f"{position + 1}, where the checkpoint expects {names[position]!r}. "
                                f"Give the files in the order {', '.join(modalities)}.")
    stem = strip_nifti(paths[0].name)
    case_id = re.sub(rf"[_-]{re.escape(names[0])}$", "", stem, flags=re.IGNORECASE) or stem
    return CaseFiles(case_id, dict(zip(names, paths, strict=True)))


def find_inputs(inputs: Sequence[str | Path], modalities: Sequence[str] | None, in_channels: int | None = None,
                layout: str | None = None, allow_missing: bool = False) -> list[CaseFiles]:
    """The cases to predict, from a data set root, one case folder, or one case's files.

    Args:
        inputs: one folder (a data set root in a registered layout, or one case folder), several
            folders (each a case folder or a data set root), or the image files of one case in
            ``modalities`` order.
        modalities: the checkpoint's modality names in channel order (None if it does not record
            them: a data set root's layout then names them, files are taken in the order given).
        in_channels: the number of modalities the network takes (default: ``len(modalities)``).
        layout: force a layout by name instead of trying each registered one.
        allow_missing: return case folders that lack some of ``modalities`` with the files they
            have (:func:`partial_cases`) instead of raising; the predictor then checks that its
            checkpoints accept them missing, and otherwise refuses with what to do.

    Returns:
        One :class:`CaseFiles` per case, ``images`` in channel order.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "BraTS2021_00007"; folder.mkdir()
    >>> for m in ("flair", "t1", "t1ce", "t2"): _ = (folder / f"BraTS2021_00007_{m}.nii.gz").write_bytes(b"")
    >>> case = find_inputs([folder], ("flair", "t1ce", "t1", "t2"))[0]
    >>> case.subject_id, [p.name for p in case.images.values()][:2]
    ('BraTS2021_00007', ['BraTS2021_00007_flair.nii.gz', 'BraTS2021_00007_t1ce.nii.gz'])
    """
    if in_channels is None:
        if modalities is None:
            raise ConfigError("find_inputs: give the modalities or the number of input channels.")
        in_channels = len(modalities)
    paths = [Path(p).expanduser() for p in inputs]
    if not paths:
        raise DataError("no --input given: pass a data set root, a case folder, or one case's files.")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(f"input(s) not found: {', '.join(map(str, missing))}. Check the path(s).")
    if all(p.is_dir() for p in paths) and len(paths) > 1:
        cases = [c for p in paths for c in find_inputs([p], modalities, in_channels, layout, allow_missing)]
        twice = sorted({c.subject_id for c in cases if sum(d.subject_id == c.subject_id for d in cases) > 1})
        if twice:
            raise DataError(f"case id(s) {', '.join(twice)} come from more than one --input folder; each case "
                            "is written as <case_id>.nii.gz, so they would overwrite each other. Predict them "
                            "into separate --output folders.")
        return cases
    if len(paths) > 1 or paths[0].is_file():
        if any(p.is_dir() for p in paths):
            raise DataError("pass folders (data set roots or case folders) or one case's image files to "
                            "--input, not a mix of both.")
        return [_case_from_files(paths, modalities, in_channels)]

    folder = paths[0]
    if allow_missing and modalities:
        try:
            return find_inputs(paths, modalities, in_channels, layout)
        except DataError:
            # A case lacks a modality file (or the folder is no known layout): read what is there.
            cases = partial_cases(folder, modalities)
            if not cases:
                raise
            return cases
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
    problems = []
    for name in [layout] if layout else list(LAYOUTS):
        spec = LAYOUTS[name]
        fits = set(modalities) <= set(spec.modalities) if modalities else len(spec.modalities) == in_channels
        if not fits:
            continue
        try:
            cases = find_cases(name, folder)
        except DataError as err:
            problems.append(f"{name}: {err}")
            continue
        names = list(modalities or spec.modalities)
        return [CaseFiles(c.subject_id, {m: c.images[m] for m in names}, fold=c.fold) for c in cases]
    if modalities:
        case = case_from_folder(folder, modalities)
        if case is not None:
            return [case]
    tried = "\n  ".join(problems) if problems else "no registered layout takes these modalities"
    wanted = f"files ending in {', '.join(modalities)}" if modalities else f"{in_channels} modality files"
    raise DataError(f"no cases found under {folder}. It is neither a data set root in a known layout "
                    f"({', '.join(sorted(LAYOUTS))}) nor one case folder with {wanted}.\n  {tried}\n"
                    "Pass --layout, or the case's files one per modality.")
