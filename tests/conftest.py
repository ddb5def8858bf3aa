"""Shared fixtures: real synthetic data sets written once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "experiments" / "demo.yaml"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# What every command does (brainsegfounder.allocator): about 2x faster CPU steps on glibc.
from brainsegfounder.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()


@pytest.fixture(scope="session")
def brats2021_root(tmp_path_factory) -> Path:
    """Ten synthetic BraTS 2021 subjects at 2 mm (read-only: copy before corrupting)."""
    from brainsegfounder.data.synthetic import generate

    root = tmp_path_factory.mktemp("brats2021")
    generate("brats2021", root, subjects=10, seed=0, spacing=2.0)
    return root


@pytest.fixture(scope="session")
def brats2023_root(tmp_path_factory) -> Path:
    from brainsegfounder.data.synthetic import generate

    root = tmp_path_factory.mktemp("brats2023")
    generate("brats2023", root, subjects=5, seed=1, spacing=3.0)
    return root


@pytest.fixture
def brats2021_copy(brats2021_root, tmp_path) -> Path:
    """A private copy of the BraTS 2021 set that a test may break."""
    dest = tmp_path / "data"
    shutil.copytree(brats2021_root, dest)
    return dest


@pytest.fixture(scope="session")
def atlas_root(tmp_path_factory) -> Path:
    """Five synthetic ATLAS v2.0 subjects (BIDS, T1w + lesion mask) at 3 mm (read-only)."""
    from brainsegfounder.data.synthetic import generate

    root = tmp_path_factory.mktemp("atlas")
    generate("atlas", root, subjects=5, seed=2, spacing=3.0)
    return root
