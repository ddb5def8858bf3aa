"""Which cases to predict: a data set root in any registered layout, one case folder, or one case's files.

:func:`find_inputs` turns what a user passes to ``predict --input`` into one
:class:`~brainsegfounder.data.layouts.CaseFiles` per case, images in the checkpoint's channel order.
(The folder matching by file-name endings stays here until the layouts package owns it.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.data.layouts import LAYOUTS, CaseFiles, find_cases
from brainsegfounder.errors import ConfigError, DataError

__all__ = ["find_inputs"]

_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)



def _stem(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def _ends_with_modality(stem: str, modality: str) -> bool:
    return re.search(rf"(^|[_-]){re.escape(modality)}$", stem, re.IGNORECASE) is not None


def _case_from_files(paths: list[Path], modalities: Sequence[str] | None, in_channels: int) -> CaseFiles:
    if len(paths) != in_channels:
        order = f" in the order {', '.join(modalities)}" if modalities else ""
        raise DataError(f"{len(paths)} image file(s) given but the checkpoint takes {in_channels} "
                        f"modalities{order}: pass one file per modality, or a case folder.")
    not_nifti = [p for p in paths if not _NIFTI.search(p.name)]
    if not_nifti:
        raise DataError(f"not NIfTI files (.nii or .nii.gz): {', '.join(map(str, not_nifti))}.")
    names = list(modalities) if modalities else [f"channel{i}" for i in range(in_channels)]
    if modalities:
        # A file named after another modality than its position says is the commonest slip.
        for position, path in enumerate(paths):
            named = [m for m in modalities if _ends_with_modality(_stem(path), m)]
            if named and names[position] not in named:
                raise DataError(f"{path} looks like modality {named[0]!r} but stands at position "
                                f"{position + 1}, where the checkpoint expects {names[position]!r}. "
                                f"Give the files in the order {', '.join(modalities)}.")
    stem = _stem(paths[0])
    case_id = re.sub(rf"[_-]{re.escape(names[0])}$", "", stem, flags=re.IGNORECASE) or stem
    return CaseFiles(case_id, dict(zip(names, paths, strict=True)))


def _case_from_folder(folder: Path, modalities: Sequence[str]) -> CaseFiles | None:
    files = sorted(p for p in folder.rglob("*") if _NIFTI.search(p.name) and p.is_file())
    images = {}
    for modality in modalities:
        found = [p for p in files if _ends_with_modality(_stem(p), modality)]
        if len(found) > 1:
            raise DataError(f"case folder {folder}: {len(found)} files end in '{modality}' "
                            f"({', '.join(p.name for p in found)}); keep one, or pass the files explicitly.")
        if not found:
            return None
        images[modality] = found[0]
    return CaseFiles(folder.name, images)


def find_inputs(inputs: Sequence[str | Path], modalities: Sequence[str] | None, in_channels: int | None = None,
                layout: str | None = None) -> list[CaseFiles]:
    """The cases to predict, from a data set root, one case folder, or one case's files.

    Args:
        inputs: one folder (a data set root in a registered layout, or one case folder), or the
            image files of one case in ``modalities`` order.
        modalities: the checkpoint's modality names in channel order (None if it does not record
            them: a data set root's layout then names them, files are taken in the order given).
        in_channels: the number of modalities the network takes (default: ``len(modalities)``).
        layout: force a layout by name instead of trying each registered one.

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
    if len(paths) > 1 or paths[0].is_file():
        if any(p.is_dir() for p in paths):
            raise DataError("pass either one folder or a list of image files to --input, not a mix.")
        return [_case_from_files(paths, modalities, in_channels)]

    folder = paths[0]
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
        case = _case_from_folder(folder, modalities)
        if case is not None:
            return [case]
    tried = "\n  ".join(problems) if problems else "no registered layout takes these modalities"
    wanted = f"files ending in {', '.join(modalities)}" if modalities else f"{in_channels} modality files"
    raise DataError(f"no cases found under {folder}. It is neither a data set root in a known layout "
                    f"({', '.join(sorted(LAYOUTS))}) nor one case folder with {wanted}.\n  {tried}\n"
                    "Pass --layout, or the case's files one per modality.")
