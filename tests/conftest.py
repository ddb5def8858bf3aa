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

# What every command does (brainsegfounder.utils.allocator): about 2x faster CPU steps on glibc.
from brainsegfounder.utils.allocator import keep_freed_memory  # noqa: E402

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


def fit_checkpoint(config: Path, data_root: Path, run: Path, steps: int = 1) -> Path:
    """``last.ckpt`` of a real ``steps``-step fit of ``config`` on ``data_root`` (batch 1, no validation)."""
    from brainsegfounder.fit import main as fit_main

    fit_main(["--config", str(config), f"--data.init_args.root={data_root}",
              f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
              f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
              "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1",
              "--data.init_args.validate=off"])
    return next(run.rglob("last.ckpt"))


def crop_cases(source: Path, dest: Path, count: int = 2, size: tuple[int, int, int] = (48, 56, 40)) -> Path:
    """Write the first ``count`` BraTS 2021 cases of ``source`` into ``dest``, cropped around the
    tumour to ``size`` voxels (one sliding window each, so prediction tests stay fast)."""
    import nibabel as nib
    import numpy as np

    from brainsegfounder.data.layouts import find_cases

    for case in find_cases("brats2021", source)[:count]:
        label_image = nib.load(case.label)
        label = np.asanyarray(label_image.dataobj)
        centre = np.round(np.argwhere(label > 0).mean(0)).astype(int)
        start = [max(0, c - s // 2) for c, s in zip(centre, size, strict=True)]
        box = tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))
        affine = label_image.affine.copy()
        affine[:3, 3] = affine[:3, :3] @ np.array(start) + affine[:3, 3]
        folder = dest / case.subject_id
        folder.mkdir(parents=True)
        for name, path in [*case.images.items(), ("seg", case.label)]:
            data = np.asanyarray(nib.load(path).dataobj)[box]
            nib.save(nib.Nifti1Image(data, affine), folder / f"{case.subject_id}_{name}.nii.gz")
    return dest
