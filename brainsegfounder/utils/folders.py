"""Folders: the files under one (through linked folders), and those a command made.

:func:`files_below` lists every file under a folder, following symbolic links to folders, which
``Path.rglob`` does not do before Python 3.13: a data set whose case folders are links (a subset
picked with ``ln -s``) must not look empty to one command when another reads it.


A command creates its output folder early (to refuse an unwritable one before minutes of work),
then may refuse later (a corrupt input, a bad option). :func:`make_folder` remembers which folders
it created; :func:`remove_empty_made` (called by :func:`brainsegfounder.utils.cli.command` on a
refusal) removes those that are still empty, deepest first. A folder that existed before, or that
holds any file, is never touched.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> make_folder(root / "a" / "b")
    >>> remove_empty_made()
    >>> sorted(p.name for p in root.iterdir())
    []
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["files_below", "make_folder", "remove_empty_made"]

_MADE: list[Path] = []


def files_below(root: str | Path) -> Iterator[Path]:
    """Every file under ``root``, through symbolic links to folders (each real folder visited once).

    Files are listed in walk order; sort them where the order matters.

    Example:
        >>> import tempfile, pathlib
        >>> store, subset = pathlib.Path(tempfile.mkdtemp()), pathlib.Path(tempfile.mkdtemp())
        >>> (store / "case_1").mkdir(); (store / "case_1" / "case_1_seg.nii.gz").write_bytes(b"")
        0
        >>> (subset / "case_1").symlink_to(store / "case_1")  # a subset of a data set, by links
        >>> [p.relative_to(subset).as_posix() for p in files_below(subset)]
        ['case_1/case_1_seg.nii.gz']
    """
    seen: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or two links to one folder
            subfolders[:] = []
            continue
        seen.add(real)
        yield from (Path(folder) / name for name in names)


def make_folder(path: str | Path) -> None:
    """``mkdir -p path``, remembering each folder this call created (OSError as from mkdir)."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(parents=True, exist_ok=True)
    _MADE.extend(reversed(missing))


def remove_empty_made() -> None:
    """Remove the folders :func:`make_folder` created that are empty now, deepest first."""
    for folder in sorted(set(_MADE), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    _MADE.clear()
