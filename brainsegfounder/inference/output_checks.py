"""Where predict may write: never inside an input folder, nor in the data set root of an input case folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.data.layouts import CaseFiles
from brainsegfounder.data.layouts.base import is_nifti
from brainsegfounder.utils.errors import BrainSegFounderError

__all__ = ["check_output"]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _holds_cases(folder: Path, besides: set[Path]) -> bool:
    """Whether ``folder`` has sub-folders with NIfTI files other than ``besides`` (it is a data set root)."""
    try:
        return any(p.is_dir() and p.resolve() not in besides and any(is_nifti(f) for f in p.iterdir())
                   for p in folder.iterdir())
    except OSError:
        return False


def check_output(output: Path, inputs: Sequence[Path], cases: list[CaseFiles]) -> None:
    """Refuse an output folder inside an input folder or an input data set root, or one that is a file.

    A case folder's parent counts as its data set root: predicting one case folder of a data set
    into the data set's root (or into a new folder beside the other cases) would mix predictions
    with the data, and later readers of the root would take them for cases.
    """
    output = output.expanduser().resolve()
    case_folders = {Path(p).expanduser().resolve().parent for case in cases for p in case.images.values()}
    folders = case_folders | {Path(p).expanduser().resolve() for p in inputs if Path(p).is_dir()}
    for folder in sorted(folders):
        if _inside(output, folder):
            raise BrainSegFounderError(f"--output {output} lies inside the input folder {folder}; predictions "
                                       "are never written among the input data. Choose a folder elsewhere.")
    roots = {f.parent for f in case_folders if f.parent != f} - folders
    for root in sorted(roots):
        if output == root or (_inside(output, root) and _holds_cases(root, folders | {output})):
            raise BrainSegFounderError(f"--output {output} lies in {root}, the data set root of the input case "
                                       "folder(s); predictions are never written among the input data. Choose a "
                                       "folder outside it.")
    if output.exists() and not output.is_dir():
        raise BrainSegFounderError(f"--output {output} exists and is not a folder; choose a folder.")


