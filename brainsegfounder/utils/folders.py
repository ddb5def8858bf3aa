"""Folders a command made, so that a refusal leaves none of them behind empty.

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
from pathlib import Path

__all__ = ["make_folder", "remove_empty_made"]

_MADE: list[Path] = []


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
