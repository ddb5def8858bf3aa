"""The versions in ``requirements-lock.txt`` (what ``make install`` installs) against those installed.

A test that compares bytes of library output (a stored SHA-256) holds only for the versions it
was recorded with; it runs under the lock and is skipped, naming the differences, elsewhere::

    @requires_lock("numpy", "scipy")
    def test_bytes(): ...
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = Path(__file__).resolve().parent.parent / "requirements-lock.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def locked_versions(path: Path = LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of the lock."""
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _same(installed: str, locked: str) -> bool:
    # torch==2.13.0 in the lock stands for 2.13.0+cpu and 2.13.0+cu126 alike.
    return Version(installed).public == Version(locked).public


def differs_from_lock(*packages: str) -> tuple[bool, str]:
    """``(True, reason)`` when any of ``packages`` is installed at another version than the lock's.

    The pair is what ``pytest.mark.skipif`` takes.
    """
    pins = locked_versions()
    differences = []
    for name in packages:
        locked = pins.get(canonicalize_name(name))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if locked is None or installed is None or not _same(installed, locked):
            differences.append(f"{name} {installed} (lock: {locked})")
    return bool(differences), "recorded under requirements-lock.txt; installed: " + ", ".join(differences)


def requires_lock(*packages: str) -> pytest.MarkDecorator:
    """Skip the test, naming the differing versions, unless ``packages`` are installed as locked."""
    differs, reason = differs_from_lock(*packages)
    return pytest.mark.skipif(differs, reason=reason)
