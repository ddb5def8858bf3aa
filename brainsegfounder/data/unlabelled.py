"""Images without labels for self-supervised pretraining: random crops from a TorchIO queue.

Any registered layout works (``ukb`` for Stage 1; ``brats2021``, ``brats2023`` or ``atlas`` for
Stage 2, whose labels are ignored), or per-modality file ``patterns`` with an ``{id}`` placeholder.
Preprocessing is the segmentation pipeline's (``data/transforms.py``), so pretraining and
fine-tuning see the same intensities and orientation.

Example:
    >>> from brainsegfounder.data.unlabelled import UnlabelledDataModule  # doctest: +SKIP
    >>> dm = UnlabelledDataModule(root="data/synthetic_ukb", layout="ukb", patch_size=64)  # doctest: +SKIP
    >>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> dm.images_to_tensor(batch).shape  # doctest: +SKIP
    torch.Size([2, 2, 64, 64, 64])
"""

from __future__ import annotations

from typing import Literal

import torchio as tio
from torch.utils.data import DataLoader

from brainsegfounder.data.datamodule import CasesDataModule, collate_subjects, patch_loader
from brainsegfounder.data.layouts import LAYOUTS, cases_to_subjects, pattern_layout
from brainsegfounder.data.reproducible import shard_for_ranks
from brainsegfounder.data.splits import train_val_ids
from brainsegfounder.data.transforms import Augmentation, augmentation, preprocessing
from brainsegfounder.data.validation import validate_cases
from brainsegfounder.utils.errors import DataError

__all__ = ["UnlabelledDataModule"]


class UnlabelledDataModule(CasesDataModule):
    """Unlabelled volumes served as random crops (training) and centre crops (validation).

    Args:
        root: data set folder.
        layout: a registered layout name (``ukb``, ``brats2021``, ``atlas``, ...).
        patterns: ``{modality: "path/with/{id}/placeholder.nii.gz"}`` relative to ``root``,
            instead of the layout's own file names (e.g. another UK Biobank unpacking).
        modalities: modalities to use, in channel order; default: all of the layout's.
        val_count: subjects held out for the validation loss and the logged images.
        fold_file: a MONAI fold JSON to read cases (and folds) from instead of scanning ``root``.
        manifest: a CSV/TSV/JSON manifest to read cases (and folds) from (``layout: manifest``).
        exclude_fold: leave out this fold (or these folds: the validation and the test fold) of
            the segmentation split, so that Stage 2 never sees the fine-tuning's held-out subjects. The split is
            :class:`~brainsegfounder.data.datamodule.SegmentationDataModule`'s, by the same code:
            ``split_file`` if given, else the fold file's (or manifest's) folds, else the seeded
            k-fold of ``n_folds`` and ``split_seed``. Give both modules the same settings.
        n_folds, split_seed, split_file: that split.
        patch_size: crop side(s) in voxels (multiples of 32, at least 64).
        batch_size: crops per batch (each gives two augmented views).
        samples_per_volume: crops drawn per loaded volume (2 in the paper).
        queue_length: crops held by the TorchIO queue.
        num_workers: processes loading volumes.
        augmentation: TorchIO augmentation before cropping (default: flips and intensity jitter off;
            the SSL views are made on the batch by the model).
        spacing: resample to this voxel size in mm (``None``: keep the data's grid).
        crop_to_brain: crop volumes to the brain's bounding box.
        validate: ``full``, ``header`` or ``off`` (see the segmentation data module).
    """

    def __init__(
        self,
        root: str = "data/synthetic_ukb",
        layout: str = "ukb",
        patterns: dict[str, str] | None = None,
        fold_file: str | None = None,
        manifest: str | None = None,
        modalities: list[str] | None = None,
        val_count: int = 1,
        exclude_fold: int | list[int] | None = None,
        n_folds: int = 5,
        split_seed: int = 0,
        split_file: str | None = None,
        patch_size: int | list[int] = 96,
        batch_size: int = 2,
        samples_per_volume: int = 2,
        queue_length: int = 16,
        num_workers: int = 2,
        augmentation: Augmentation | None = None,
        spacing: float | None = None,
        crop_to_brain: bool = False,
        validate: Literal["full", "header", "off"] = "header",
    ):
        super().__init__()
        if patterns:
            spec = pattern_layout(layout, patterns)
        elif layout in LAYOUTS:
            spec = LAYOUTS[layout]
        else:
            raise DataError(f"unknown data layout {layout!r}; choose one of {sorted(LAYOUTS)}, or give "
                            "data.patterns {modality: 'path/{id}/file.nii.gz'}.")
        self._init_cases(root, spec, fold_file, manifest, modalities, n_folds, split_seed, split_file,
                         patch_size, spacing, crop_to_brain)
        self.val_count, self.exclude_fold = val_count, exclude_fold
        self.batch_size, self.samples_per_volume = batch_size, samples_per_volume
        self.queue_length, self.num_workers = queue_length, num_workers
        self.augmentation = augmentation or Augmentation(flip_probability=0.0, intensity_probability=0.0)
        self.validate = validate

    def setup(self, stage: str | None = None) -> None:
        if self.train_cases:
            return
        cases = self._read_cases()
        for case in cases:
            case.label = None  # SSL never reads labels
        if self.exclude_fold is not None:
            # Subjects outside the split (another data set's) stay; the held-out fold's never do.
            folds = self._folds(cases)
            excluded = self.exclude_fold if isinstance(self.exclude_fold, list) else [self.exclude_fold]
            held_out = {s for fold in excluded for s in train_val_ids(folds, fold)[1]}
            cases = [c for c in cases if c.subject_id not in held_out]
        if len(cases) <= self.val_count:
            raise DataError(f"{len(cases)} subject(s) under {self.root} but data.val_count is {self.val_count}; "
                            "add subjects or lower val_count.")
        self.val_cases = cases[: self.val_count]
        self.train_cases = cases[self.val_count:]
        if self.validate != "off":
            validate_cases(self.train_cases + self.val_cases, None, read_data=self.validate == "full")

    def _steps(self) -> list[tio.Transform]:
        return preprocessing(self.patch_size, self.spacing, self.crop_to_brain)

    def train_dataloader(self) -> DataLoader:
        subjects = tio.SubjectsDataset(cases_to_subjects(self.train_cases),
                                       transform=tio.Compose([*self._steps(), *augmentation(self.augmentation)]))
        return patch_loader(subjects, tio.UniformSampler(self.patch_size), getattr(self, "trainer", None),
                            seed=self.split_seed, queue_length=self.queue_length,
                            samples_per_volume=self.samples_per_volume, num_workers=self.num_workers,
                            batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        # Centre crops of the patch size: the model's input must be a multiple of 32 in each side.
        transform = tio.Compose([*self._steps(), tio.CropOrPad(self.patch_size)])
        subjects = tio.SubjectsDataset(cases_to_subjects(self.val_cases), transform=transform)
        trainer = getattr(self, "trainer", None)
        sampler = shard_for_ranks(subjects, trainer.world_size, trainer.global_rank) if trainer else None
        return DataLoader(subjects, batch_size=self.batch_size, num_workers=0, sampler=sampler,
                          collate_fn=collate_subjects)
