"""Fault-suite fixtures: tiny real NIfTI cases, hostile files, checksums (the checkpoint: tests/conftest.py)."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

MODALITIES = ("flair", "t1ce", "t1", "t2")
SHAPE = (40, 40, 32)


def write_case(root: Path, case_id: str, seed: int, label: bool = True) -> Path:
    """One BraTS 2021 case folder (2 mm voxels): a bright blob in a noisy head, labels 1, 2, 4."""
    rng = np.random.default_rng(seed)
    folder = root / case_id
    folder.mkdir(parents=True)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    grid = np.indices(SHAPE).astype(np.float32)
    centre = np.array(SHAPE)[:, None, None, None] / 2
    distance = np.sqrt(((grid - centre) ** 2).sum(0))
    for i, name in enumerate(MODALITIES):
        data = (100 + 10 * i + 40 * (distance < 6) + rng.normal(0, 5, SHAPE)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, affine), folder / f"{case_id}_{name}.nii.gz")
    if label:
        # Tumour size differs between cases (scale 0.5 to 1.5 over seeds 0-5), so per-case metrics differ.
        r = distance / (0.5 + 0.2 * (seed % 6))
        seg = np.where(r < 3, 4, np.where(r < 5, 1, np.where(r < 7, 2, 0))).astype(np.uint8)
        nib.save(nib.Nifti1Image(seg, affine), folder / f"{case_id}_seg.nii.gz")
    return folder


def write_cases(root: Path, count: int) -> Path:
    """A BraTS 2021 data set root of ``count`` small cases (``write_case`` with seeds 0, 1, ...)."""
    for i in range(count):
        write_case(root, f"BraTS2021_{i:05d}", seed=i)
    return root


@pytest.fixture
def cases(tmp_path) -> Path:
    """A BraTS 2021 data set root with two small cases, private to the test."""
    return write_cases(tmp_path / "data", 2)


@pytest.fixture
def fit_root(tmp_path) -> Path:
    """Four small cases to fit on (two folds of two), private to the test."""
    return write_cases(tmp_path / "data", 4)


class _Payload:
    """Unpickling this would run ``os.system``: the loaders must refuse it without running it."""

    def __reduce__(self):
        return os.system, ("touch /tmp/brainsegfounder-fault-suite-pwned",)


def code_carrying_checkpoint(path: Path) -> Path:
    with open(path, "wb") as handle:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Payload()}, handle, pickle_module=pickle)
    return path


def checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (inputs must not change by a single byte)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}


def temp_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if ".partial" in p.parts or p.name.endswith(".tmp")
            or p.name.startswith(".probe")]


def assert_one_clear_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert "weights_only=False" not in err, err
    # One message: "error: ..." (a data check may list several problems, one per indented line).
    message = err[err.index("error:"):]
    for needle in needles:
        assert needle in message, (needle, err)


@pytest.fixture
def mounted_tmpfs(tmp_path):
    """A tiny tmpfs (root only); yields a mount helper and unmounts in teardown."""
    mounted: list[Path] = []

    def mount(folder: Path, options: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)
