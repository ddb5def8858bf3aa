"""Bring your own data: a manifest file lists each subject's images, label and fold.

Any folder structure works: a CSV (or TSV) with one row per subject, or a JSON list of objects
with the same keys.

=============  ==========================================================================
column         meaning
=============  ==========================================================================
``subject_id`` unique id of the subject (required)
``label``      the label map (optional; an empty cell means unlabelled)
``fold``       cross-validation fold, an integer (optional; all rows or none)
anything else  one image per column; the column name is the modality name
=============  ==========================================================================

Relative paths are resolved against the manifest's own folder, so a data set and its manifest
can move together. When ``modalities`` is given only those columns are read, in that order
(other columns, such as ``age``, are ignored); otherwise every other column is an image, in the
file's column order.

Example (``/data/mylab/cases.csv``)::

    subject_id,pd,t2_star,label,fold
    P01,raw/P01/pd.nii.gz,raw/P01/t2s.nii.gz,masks/P01.nii.gz,0
    P02,raw/P02/pd.nii.gz,raw/P02/t2s.nii.gz,masks/P02.nii.gz,1

    >>> from brainsegfounder.data.layouts.manifest import read_manifest  # doctest: +SKIP
    >>> cases = read_manifest("/data/mylab/cases.csv")  # doctest: +SKIP
    >>> cases[0].subject_id, list(cases[0].images), cases[0].fold  # doctest: +SKIP
    ('P01', ['pd', 't2_star'], 0)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.data.layouts.base import CaseFiles, DatasetLayout, register_layout
from brainsegfounder.utils.errors import DataError

__all__ = ["MANIFEST", "MANIFEST_NAMES", "RESERVED_COLUMNS", "manifest_in", "manifest_modalities", "read_manifest"]

SUBJECT, LABEL, FOLD = "subject_id", "label", "fold"
RESERVED_COLUMNS = (SUBJECT, LABEL, FOLD)
_MAX_LISTED = 10


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(column names in file order, rows as ``{column: text}``) of a CSV, TSV or JSON manifest."""
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist. Set data.manifest to your CSV/TSV/JSON manifest "
                        "(see docs/own_data.md for the format).")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            entries = data.get("subjects") if isinstance(data, dict) else data
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError("expected a list of objects, or {\"subjects\": [objects]}")
            columns: list[str] = []
            for entry in entries:
                columns.extend(k for k in entry if k not in columns)
            rows = [{k: "" if v is None else str(v) for k, v in e.items()} for e in entries]
        else:
            with path.open(newline="") as handle:
                sample = handle.read(4096)
                handle.seek(0)
                delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
                reader = csv.DictReader(handle, delimiter=delimiter)
                columns = [c.strip() for c in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest {path} cannot be read ({type(err).__name__}: {err}). It must be a CSV/TSV "
                        "with a header row, or a JSON list of objects.") from None
    if SUBJECT not in columns:
        raise DataError(f"manifest {path} has no '{SUBJECT}' column (columns: {columns}). Add one with a unique "
                        "id per subject.")
    if not rows:
        raise DataError(f"manifest {path} lists no subjects.")
    return columns, rows


def manifest_modalities(path: str | Path) -> tuple[str, ...]:
    """The image columns of a manifest: every column except ``subject_id``, ``label`` and ``fold``."""
    columns, _ = _rows(Path(path).expanduser())
    modalities = tuple(c for c in columns if c not in RESERVED_COLUMNS)
    if not modalities:
        raise DataError(f"manifest {path} has no image columns (columns: {columns}); add one column per "
                        "modality holding the image paths.")
    return modalities


def _listing(items: list[str]) -> str:
    more = len(items) - _MAX_LISTED
    return "\n  " + "\n  ".join(items[:_MAX_LISTED]) + (f"\n  ... and {more} more" if more > 0 else "")


def read_manifest(path: str | Path, modalities: Sequence[str] | None = None) -> list[CaseFiles]:
    """The cases a manifest lists, images in ``modalities`` order (default: the file's image columns).

    Raises :class:`DataError`, listing every problem at once, when a column is missing, a subject
    id repeats or is empty, an image cell is empty, a fold is not an integer, or a listed file does
    not exist.
    """
    path = Path(path).expanduser()
    columns, rows = _rows(path)
    available = tuple(c for c in columns if c not in RESERVED_COLUMNS)
    modalities = tuple(modalities) if modalities else available
    unknown = [m for m in modalities if m not in available]
    if unknown:
        raise DataError(f"manifest {path} has no column(s) {unknown} for data.modalities; its image columns are "
                        f"{list(available)}. Rename the columns or fix data.modalities.")
    if not modalities:
        raise DataError(f"manifest {path} has no image columns (columns: {columns}).")
    base = path.parent

    def resolve(text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else base / p

    problems: list[str] = []
    seen: set[str] = set()
    cases = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header of a CSV
        sid = row.get(SUBJECT, "")
        where = f"manifest {path}, row {line - 1}" + (f" (subject {sid})" if sid else "")
        if not sid:
            problems.append(f"{where}: empty {SUBJECT}.")
            continue
        if sid in seen:
            problems.append(f"{where}: subject id {sid} appears more than once; ids must be unique.")
        seen.add(sid)
        images = {}
        for m in modalities:
            if not row.get(m):
                problems.append(f"{where}: no file in column '{m}'.")
                continue
            images[m] = resolve(row[m])
            if not images[m].exists():
                problems.append(f"{where}: {m} file {images[m]} does not exist.")
        label = resolve(row[LABEL]) if row.get(LABEL) else None
        if label is not None and not label.exists():
            problems.append(f"{where}: label file {label} does not exist.")
        fold = None
        if row.get(FOLD):
            try:
                fold = int(float(row[FOLD]))
            except ValueError:
                problems.append(f"{where}: fold {row[FOLD]!r} is not an integer.")
        cases.append(CaseFiles(sid, images, label, fold))
    with_fold = sum(c.fold is not None for c in cases)
    if 0 < with_fold < len(cases):
        problems.append(f"manifest {path}: {with_fold} of {len(cases)} subjects have a fold; give every subject "
                        "a fold, or none (a seeded k-fold split is then made).")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in manifest {path} (relative paths are resolved against "
                        f"{base}):" + _listing(problems))
    return cases


# -- the manifest as a layout: a folder holding manifest.csv (or .tsv, .json) ------------------------

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
    return read_manifest(manifest_in(root))


# Modalities come from the manifest's columns (or data.modalities), so the layout fixes none.
MANIFEST = register_layout(DatasetLayout(
    "manifest", (), None, _manifest_finder,
    "a manifest (CSV/TSV/JSON) with columns subject_id, one per modality, optional label and fold",
))
