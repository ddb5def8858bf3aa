"""LightningDataModules: TorchIO patch queues for training, whole volumes for validation.

Example (Python; the YAML configs in ``experiments/`` set the same arguments under ``data:``):
    >>> from brainsegfounder.data.datamodule import SegmentationDataModule  # doctest: +SKIP
    >>> dm = SegmentationDataModule(root="data/synthetic_brats2021", layout="brats2021",
    ...                             patch_size=64, batch_size=2, fold=0)  # doctest: +SKIP
    >>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> dm.images_to_tensor(batch).shape  # doctest: +SKIP
    torch.Size([2, 4, 64, 64, 64])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
import torchio as tio
from torch.utils.data import DataLoader, DistributedSampler

from brainsegfounder.data.layouts import (
    CaseFiles,
    DatasetLayout,
    cases_to_subjects,
    get_layout,
    manifest_in,
    manifest_modalities,
    read_cases,
)
from brainsegfounder.data.modality_dropout import RandomModalityDropout
from brainsegfounder.data.regions import RegionScheme, get_scheme
from brainsegfounder.data.reproducible import QueueLoader, WholeVolumeLoader, shard_for_ranks
from brainsegfounder.data.splits import case_folds, held_out_ids, label_subset, save_split, train_val_ids
from brainsegfounder.data.transforms import Augmentation, PreprocessingRecord, augmentation, preprocessing
from brainsegfounder.data.validation import validate_cases
from brainsegfounder.utils.errors import DataError

__all__ = ["CasesDataModule", "SegmentationDataModule", "as_triple", "collate_subjects", "images_to_tensor", "in_place"]

log = logging.getLogger(__name__)


def as_triple(size: int | Sequence[int]) -> tuple[int, int, int]:
    """``96`` -> ``(96, 96, 96)``; a 3-sequence is kept."""
    if isinstance(size, int):
        return (size, size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 3:
        raise ValueError(f"expected one size or three, got {size}")
    return size  # type: ignore[return-value]


def collate_subjects(subjects: list[tio.Subject]) -> dict:
    """Batch subjects (or patches) as plain tensors: ``{image name: (B, C, X, Y, Z), "subject_id": [...]}``.

    Plain tensors move to devices and across processes without TorchIO's image objects, which
    Lightning's device transfer cannot rebuild.
    """
    names = subjects[0].get_images_names()
    batch: dict = {name: torch.stack([s[name].data for s in subjects]) for name in names}
    batch["subject_id"] = [s.get("subject_id", "") for s in subjects]
    return batch


def images_to_tensor(batch: dict, modalities: Sequence[str]) -> torch.Tensor:
    """Stack a batch's modality images into ``(B, C, X, Y, Z)`` in ``modalities`` order."""
    return torch.cat([batch[m] for m in modalities], dim=1).float()


def in_place(steps: Sequence[tio.Transform]) -> tio.Compose:
    """Compose ``steps`` so that they change the subject in place instead of deep-copying it.

    Only for transforms of a ``tio.SubjectsDataset``, which already hands each transform a fresh
    copy of its subject. TorchIO's default copy per step copied every loaded volume once per
    transform: about 30% of the time to load and augment a case (profiled with
    ``benchmarks/data_pipeline.py``).
    """
    for step in steps:
        step.copy = False
    return tio.Compose(list(steps), copy=False)


def patch_loader(subjects: tio.SubjectsDataset, sampler: tio.data.PatchSampler, trainer, seed: int,
                 queue_length: int, samples_per_volume: int, num_workers: int, batch_size: int) -> DataLoader:
    """A TorchIO patch queue over ``subjects`` in a loader that every task's training uses.

    Under DDP each rank loads its own disjoint share of the subjects (a ``DistributedSampler`` as
    the queue's subject sampler; Lightning's own sampler injection is off because it would wrap
    the queue). Each epoch starts from ``(seed, step, rank)`` so resumed runs see the same
    patches (:mod:`brainsegfounder.data.reproducible`).
    """
    subject_sampler = None
    if trainer is not None and trainer.world_size > 1:
        subject_sampler = DistributedSampler(subjects, num_replicas=trainer.world_size,
                                             rank=trainer.global_rank, shuffle=True, seed=seed)
        subject_sampler.set_epoch(trainer.current_epoch)
    queue = tio.Queue(subjects, max_length=max(queue_length, samples_per_volume),
                      samples_per_volume=samples_per_volume, sampler=sampler,
                      subject_sampler=subject_sampler, num_workers=num_workers,
                      shuffle_subjects=subject_sampler is None, shuffle_patches=True)
    # The queue's own workers load volumes; the loader adds no processes and no shuffling.
    position = (lambda: (trainer.global_step, trainer.global_rank)) if trainer is not None else None
    return QueueLoader(queue, position=position, batch_size=batch_size, collate_fn=collate_subjects)


class CasesDataModule(pl.LightningDataModule):
    """What both data modules share: cases from a layout, fold file or manifest; one split; the record.

    Subclasses set the attributes below in ``__init__`` through :meth:`_init_cases` and call
    :meth:`_read_cases` / :meth:`_folds` in ``setup``. The plain attributes ``modalities``,
    ``in_channels``, ``scheme``, ``patch_size`` and :attr:`preprocessing_record` are what a task
    reads (LightningCLI ``link_arguments(..., apply_on="instantiate")``).
    """

    scheme: RegionScheme | None = None
    #: Probability of training on a random subset of the modalities (SegmentationDataModule sets it).
    modality_dropout: float = 0.0

    def _init_cases(self, root: str, spec: DatasetLayout, fold_file: str | None, manifest: str | None,
                    modalities: Sequence[str] | None, n_folds: int, split_seed: int, split_file: str | None,
                    patch_size: int | Sequence[int], spacing: float | None, crop_to_brain: bool) -> None:
        # No save_hyperparameters(): LightningCLI saves the whole config beside the run, and data
        # and model share names (regions) that Lightning refuses to merge when they differ.
        self.root, self.spec, self.layout, self.fold_file = root, spec, spec.name, fold_file
        known = spec.modalities
        if not known:
            # The manifest layout fixes no modalities: the manifest's image columns name them.
            manifest = manifest or str(manifest_in(root))
            known = manifest_modalities(manifest)
        self.manifest = manifest
        self.modalities = list(modalities or known)
        unknown = set(self.modalities) - set(known)
        if unknown:
            where = (f"columns of manifest {manifest}, whose image columns are" if not spec.modalities
                     else f"part of layout {spec.name!r}, whose modalities are")
            raise DataError(f"modalities {sorted(unknown)} are not {where} {tuple(known)}; fix data.modalities.")
        self.n_folds, self.split_seed, self.split_file = n_folds, split_seed, split_file
        self.patch_size = as_triple(patch_size)
        self.spacing, self.crop_to_brain = spacing, crop_to_brain
        self.folds: dict[int, list[str]] = {}
        self.train_cases: list[CaseFiles] = []
        self.val_cases: list[CaseFiles] = []

    @property
    def in_channels(self) -> int:
        return len(self.modalities)

    @property
    def preprocessing_record(self) -> PreprocessingRecord:
        """What prediction must repeat of this data handling (stored in checkpoints by the tasks)."""
        return PreprocessingRecord(modalities=tuple(self.modalities), layout=self.layout, spacing=self.spacing,
                                   crop_to_brain=self.crop_to_brain,
                                   scheme=self.scheme.name if self.scheme is not None else None,
                                   roi_size=self.patch_size, accepts_missing=self.accepts_missing)

    @property
    def accepts_missing(self) -> tuple[str, ...]:
        """The modalities a model trained on this data can do without (all of them with modality dropout)."""
        return tuple(self.modalities) if self.modality_dropout > 0 and len(self.modalities) > 1 else ()

    def images_to_tensor(self, batch: dict) -> torch.Tensor:
        """The batch's images as ``(B, C, X, Y, Z)`` in this data module's modality order."""
        return images_to_tensor(batch, self.modalities)

    def _read_cases(self) -> list[CaseFiles]:
        return read_cases(self.spec, self.root, self.fold_file, self.manifest, self.modalities)

    def _folds(self, cases: list[CaseFiles]) -> dict[int, list[str]]:
        self.folds = case_folds(cases, self.n_folds, self.split_seed, self.split_file)
        return self.folds


class SegmentationDataModule(CasesDataModule):
    """Labelled subjects of one data set, split into folds, served as patches and whole volumes.

    Args:
        root: data set folder.
        layout: folder convention (``brats2021``, ``brats2023``, ... see ``layouts.LAYOUTS``).
        fold_file: a MONAI fold JSON to read cases (and folds) from instead of scanning ``root``.
        manifest: a CSV/TSV/JSON manifest to read cases (and folds) from instead of scanning
            ``root`` (``layout: manifest``; see :mod:`brainsegfounder.data.layouts.manifest`).
        modalities: modality names to use, in channel order; default: all of the layout's (for a
            manifest: its image columns).
        regions: region scheme (``brats2021``, ``brats2023``, ``lesion``, or ``{name: [labels]}``);
            default: the layout's.
        fold: the validation fold (chooses the best checkpoint); the others train.
        test_fold: a fold held out for the final test: neither trained on nor used to choose a
            checkpoint (``trainer.test`` scores the best checkpoint on it; ``None``: no test set).
        n_folds: folds of the seeded split (ignored when the fold file gives folds).
        split_seed: seed of the fold split and the low-label subset.
        split_file: reuse the split saved by an earlier run (JSON); default: make one.
        train_fraction: fraction of the training fold to train on (low-label fine-tuning; nested).
        train_count: number of training subjects instead of a fraction.
        patch_size: training patch side(s) in voxels (a multiple of 32, at least 64).
        batch_size: patches per batch.
        samples_per_volume: patches drawn from each loaded volume.
        queue_length: patches held by the TorchIO queue.
        num_workers: processes loading volumes.
        label_probabilities: patch-centre probability per label value; default: equal for
            background and every label, so tumour patches are seen.
        augmentation: training augmentation settings.
        spacing: resample to this voxel size in mm (``None``: keep the data's grid).
        crop_to_brain: crop volumes to the brain's bounding box.
        validate: check every file before training: ``full`` reads all voxels, ``header`` only
            headers, ``off`` skips.
        modality_dropout: probability per training volume of keeping only a random non-empty
            subset of the modalities, the others set to the value a missing file gets at
            prediction (:class:`~brainsegfounder.data.modality_dropout.RandomModalityDropout`);
            0 (default) turns it off. Validation never drops. Checkpoints then record that the
            model accepts missing modalities (``PreprocessingRecord.accepts_missing``).
    """

    def __init__(
        self,
        root: str = "data/synthetic_brats2021",
        layout: str = "brats2021",
        fold_file: str | None = None,
        manifest: str | None = None,
        modalities: list[str] | None = None,
        regions: str | dict[str, list[int]] | None = None,
        fold: int = 0,
        test_fold: int | None = None,
        n_folds: int = 5,
        split_seed: int = 0,
        split_file: str | None = None,
        train_fraction: float = 1.0,
        train_count: int | None = None,
        patch_size: int | list[int] = 96,
        batch_size: int = 2,
        samples_per_volume: int = 2,
        queue_length: int = 24,
        num_workers: int = 2,
        label_probabilities: dict[int, float] | None = None,
        augmentation: Augmentation | None = None,
        spacing: float | None = None,
        crop_to_brain: bool = False,
        validate: Literal["full", "header", "off"] = "full",
        modality_dropout: float = 0.0,
    ):
        super().__init__()
        spec = get_layout(layout)
        self._init_cases(root, spec, fold_file, manifest, modalities, n_folds, split_seed, split_file,
                         patch_size, spacing, crop_to_brain)
        self.scheme = get_scheme(regions or spec.scheme or "lesion")
        self.fold, self.train_fraction, self.train_count = fold, train_fraction, train_count
        if test_fold is not None and test_fold == fold:
            raise DataError(f"data.test_fold and data.fold are both {fold}: the test subjects must not choose "
                            "the checkpoint. Give test_fold another fold (or none).")
        self.test_fold = test_fold
        self.test_cases: list[CaseFiles] = []
        self.batch_size, self.samples_per_volume = batch_size, samples_per_volume
        self.queue_length, self.num_workers = queue_length, num_workers
        self.label_probabilities = label_probabilities or self.scheme.default_sampling_probabilities()
        self.augmentation = augmentation or Augmentation()
        self.validate = validate
        # Validated now (ConfigError for a value outside 0..1), not at the first training batch.
        self.modality_dropout = RandomModalityDropout(modality_dropout).dropout_probability

    @property
    def region_names(self) -> tuple[str, ...]:
        return self.scheme.names

    # -- cases, split, validation --------------------------------------------------------------
    def _read_cases(self) -> list[CaseFiles]:
        cases = super()._read_cases()
        unlabelled = [c.subject_id for c in cases if c.label is None]
        if unlabelled:
            raise DataError(f"{len(unlabelled)} subject(s) have no label file, e.g. {unlabelled[:3]}; "
                            "segmentation fine-tuning needs a label for every training and validation "
                            "subject. Remove them from the data root, or use them for SSL pretraining.")
        return cases

    def setup(self, stage: str | None = None) -> None:
        if self.train_cases or self.val_cases:
            return
        cases = self._read_cases()
        self._folds(cases)
        train_ids, val_ids = train_val_ids(self.folds, self.fold)
        test_ids = held_out_ids(self.folds, self.test_fold)
        train_ids = [s for s in train_ids if s not in set(test_ids)]
        self._check_split_sizes(train_ids, val_ids, len(cases))
        if self.train_fraction < 1 or self.train_count is not None:
            train_ids = label_subset(train_ids, self.train_fraction, self.split_seed, self.train_count)
        by_id = {c.subject_id: c for c in cases}
        missing = sorted(set(train_ids + val_ids + test_ids) - set(by_id))
        if missing:
            raise DataError(f"the split names subjects that are not in {self.root}: {missing[:5]}. "
                            "Use the split file that belongs to this data set, or none.")
        self.train_cases = [by_id[s] for s in train_ids]
        self.val_cases = [by_id[s] for s in val_ids]
        self.test_cases = [by_id[s] for s in test_ids]
        if self.validate != "off":
            validate_cases(self.train_cases + self.val_cases + self.test_cases, self.scheme.label_values,
                           read_data=self.validate == "full")
        self._save_split(train_ids, val_ids, test_ids)

    def _check_split_sizes(self, train_ids: list[str], val_ids: list[str], n_cases: int) -> None:
        """One line when the folds leave no training or no validation subject (TorchIO would stop at
        the first batch with "Subjects list is empty")."""
        held = f"fold {self.fold} validates" + (f" and fold {self.test_fold} is the test set"
                                                 if self.test_fold is not None else "")
        if not train_ids:
            need = 3 if self.test_fold is not None else 2
            raise DataError(f"no training subject is left: {n_cases} subject(s) in {len(self.folds)} fold(s), "
                            f"{held}. Use data.n_folds {need} or more" + (", or no data.test_fold"
                                                                           if self.test_fold is not None else "")
                            + ".")
        if not val_ids:
            raise DataError(f"fold {self.fold} holds no subject ({n_cases} subject(s) in {len(self.folds)} folds): "
                            "use fewer data.n_folds, or another data.fold.")

    def _save_split(self, train_ids: list[str], val_ids: list[str], test_ids: list[str]) -> None:
        trainer = getattr(self, "trainer", None)
        log_dir = getattr(trainer, "log_dir", None) if trainer is not None else None
        if log_dir is None or (trainer is not None and not trainer.is_global_zero):
            return
        path = Path(log_dir) / "split.json"
        if not path.exists():
            save_split(path, self.folds, fold=self.fold, seed=self.split_seed, train=train_ids, val=val_ids,
                       test_fold=self.test_fold, test=test_ids, root=str(self.root), layout=self.layout)

    # -- datasets and loaders --------------------------------------------------------------------
    def preprocessing(self) -> tio.Compose:
        return in_place(preprocessing(self.patch_size, self.spacing, self.crop_to_brain))

    def train_transform(self) -> tio.Compose:
        # Dropout comes last, after the z-score and intensity augmentation, so a dropped channel is
        # exactly the constant a missing file becomes at prediction (modality_dropout.MISSING_VALUE).
        dropout = [RandomModalityDropout(self.modality_dropout, self.modalities)] if self.modality_dropout > 0 else []
        return in_place([*preprocessing(self.patch_size, self.spacing, self.crop_to_brain),
                         *augmentation(self.augmentation, self.modalities), *dropout])

    def train_dataloader(self) -> DataLoader:
        subjects = tio.SubjectsDataset(cases_to_subjects(self.train_cases), transform=self.train_transform())
        sampler = tio.LabelSampler(self.patch_size, label_name="label",
                                   label_probabilities=self.label_probabilities)
        return patch_loader(subjects, sampler, getattr(self, "trainer", None), seed=self.split_seed,
                            queue_length=self.queue_length, samples_per_volume=self.samples_per_volume,
                            num_workers=self.num_workers, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._whole_volumes(self.val_cases)

    def test_dataloader(self) -> DataLoader:
        if not self.test_cases:
            raise DataError("there is no test set: set data.test_fold to a fold other than data.fold.")
        return self._whole_volumes(self.test_cases)

    def _whole_volumes(self, cases: list[CaseFiles]) -> DataLoader:
        subjects = tio.SubjectsDataset(cases_to_subjects(cases), transform=self.preprocessing())
        trainer = getattr(self, "trainer", None)
        # Lightning's automatic sampler injection is off (it would wrap the patch queue), so each
        # rank takes its own share of the validation subjects here; metrics use sync_dist.
        sampler = shard_for_ranks(subjects, trainer.world_size, trainer.global_rank) if trainer else None
        return WholeVolumeLoader(subjects, batch_size=1, num_workers=min(self.num_workers, 2), sampler=sampler,
                          collate_fn=collate_subjects)
