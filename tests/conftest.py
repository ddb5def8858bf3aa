"""Shared fixtures, written once per test session where they are read-only.

- data sets: ``synthetic_set(layout, subjects, seed, spacing)`` (each generated once), and by name
  ``brats2021_root`` (10 subjects, 2 mm), ``brats2023_root``, ``atlas_root``;
  ``brats2021_copy`` (a private copy to break); ``cropped_cases`` (two BraTS 2021 cases cropped to
  one sliding window, read-only) and ``two_cases`` (a private copy of them, function-scoped).
- checkpoints: ``checkpoint`` (a real one-step fit of experiments/demo.yaml) and
  ``random_checkpoint`` (random weights in the format fit writes: faults and exports, not accuracy).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "experiments" / "demo.yaml"
BRATS_MODALITIES = ("flair", "t1ce", "t1", "t2")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# What every command does (brainsegfounder.utils.allocator): about 2x faster CPU steps on glibc.
from brainsegfounder.utils.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory):
    """``synthetic_set(layout, subjects, seed, spacing)``: a synthetic data set root, generated once
    per session for each set of arguments (read-only: copy before corrupting)."""
    from brainsegfounder.data.synthetic import generate

    made: dict[tuple, Path] = {}

    def make(layout: str, subjects: int, seed: int = 0, spacing: float = 3.0) -> Path:
        key = (layout, subjects, seed, spacing)
        if key not in made:
            root = tmp_path_factory.mktemp(layout)
            generate(layout, root, subjects=subjects, seed=seed, spacing=spacing)
            made[key] = root
        return made[key]

    return make


@pytest.fixture(scope="session")
def brats2021_root(synthetic_set) -> Path:
    """Ten synthetic BraTS 2021 subjects at 2 mm (read-only: copy before corrupting)."""
    return synthetic_set("brats2021", subjects=10, seed=0, spacing=2.0)


@pytest.fixture(scope="session")
def brats2023_root(synthetic_set) -> Path:
    return synthetic_set("brats2023", subjects=5, seed=1, spacing=3.0)


@pytest.fixture
def brats2021_copy(brats2021_root, tmp_path) -> Path:
    """A private copy of the BraTS 2021 set that a test may break."""
    dest = tmp_path / "data"
    shutil.copytree(brats2021_root, dest)
    return dest


@pytest.fixture(scope="session")
def atlas_root(synthetic_set) -> Path:
    """Five synthetic ATLAS v2.0 subjects (BIDS, T1w + lesion mask) at 3 mm (read-only)."""
    return synthetic_set("atlas", subjects=5, seed=2, spacing=3.0)


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


@pytest.fixture(scope="session")
def checkpoint(brats2021_root, tmp_path_factory) -> Path:
    """A tiny segmentation checkpoint written by a real one-step fit of the demo config."""
    return fit_checkpoint(DEMO, brats2021_root, tmp_path_factory.mktemp("predict_run"))


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A tiny segmentation checkpoint in the format fit writes (random weights: faults, not accuracy)."""
    import torch

    from brainsegfounder.checkpoints import PREPROCESSING_KEY
    from brainsegfounder.data.transforms import PreprocessingRecord
    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    torch.manual_seed(0)
    module = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), modalities=list(BRATS_MODALITIES),
                                regions="brats2021", roi_size=64, sw_batch_size=1)
    record = PreprocessingRecord(modalities=BRATS_MODALITIES, layout="brats2021", scheme="brats2021", roi_size=(64, 64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                PREPROCESSING_KEY: record.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def cropped_cases(brats2021_root, tmp_path_factory) -> Path:
    """Two BraTS 2021 cases cropped around the tumour to 48 x 56 x 40 voxels at 2 mm (one sliding
    window each, so prediction tests stay fast); read-only."""
    return crop_cases(brats2021_root, tmp_path_factory.mktemp("cropped_cases"))


@pytest.fixture
def two_cases(cropped_cases, tmp_path) -> Path:
    """A private copy of :func:`cropped_cases` that a test may change (remove a modality, ...)."""
    dest = tmp_path / "data"
    shutil.copytree(cropped_cases, dest)
    return dest
