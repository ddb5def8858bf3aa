"""requirements-lock.txt satisfies pyproject.toml: every requirement pinned, inside its range.

When this fails, run ``make lock`` (it re-resolves the newest releases the ranges admit) and
``make install``, then the tests.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.lock_versions import LOCK, differs_from_lock, locked_versions

PYPROJECT = LOCK.parent / "pyproject.toml"


def project_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "export", "clinical"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in requirements if canonicalize_name(r.name) != "brainsegfounder"]


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_lock_pins_every_requirement_inside_its_range(requirement):
    pins = locked_versions()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is required by pyproject.toml but not in {LOCK.name}: run make lock"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"{LOCK.name} pins {requirement.name}=={pins[name]}, outside pyproject.toml's {requirement}: run make lock")


def test_lock_pins_torch_without_a_build_tag():
    """``torch==2.13.0`` (no ``+cpu``): a GPU user's CUDA build of the same release is kept."""
    assert "+" not in locked_versions()["torch"]


def test_differs_from_lock_names_what_differs():
    assert differs_from_lock("no-such-package-xyz") == (
        True, "recorded under requirements-lock.txt; installed: no-such-package-xyz None (lock: None)")
