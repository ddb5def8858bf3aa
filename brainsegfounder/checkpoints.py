"""What a ``.ckpt`` of brainsegfounder holds, and the one way to read it.

A checkpoint is Lightning's dictionary (``state_dict``, ``hyper_parameters``, optimizer and loop
state) with these entries of ours beside it; every writer and reader takes the names from here:

===============================  ===================================================  =====================
key                              what it holds                                         written by
===============================  ===================================================  =====================
``hyper_parameters``             the task's arguments: ``regions`` (the region         ``fit`` (Lightning)
                                 scheme's name or mapping), ``modalities`` (channel
                                 order), ``in_channels``, ``backbone``, ``roi_size``
:data:`PREPROCESSING_KEY`        the :class:`~brainsegfounder.data.transforms.          the task
                                 PreprocessingRecord` (modalities, spacing,
                                 orientation, crop, which modalities may be missing)
:data:`TEMPERATURE_KEY`          fitted temperature per region channel                  ``calibrate``
:data:`FLAG_THRESHOLD_KEY`       1 - the expected Dice below which ``predict`` flags   ``calibrate``
                                 a case (the quality score above which it does)
:data:`FLAG_CASES_KEY`           how many validation cases that threshold was fitted   ``calibrate``
                                 on
:data:`SUBSET_DICE_KEY`          validation Dice per region for each subset of the     ``calibrate``
                                 modalities (``"flair+t1" -> [...]``)
:data:`WANDB_RUN_ID_KEY`         the W&B run the checkpoint belongs to                  ``fit`` (callback)
:data:`POSTPROCESS_KEY`          the post-processing rule its validation chose, with   ``fit`` (tumour
                                 both mean Dice figures (``predict --postprocess       schemes)
                                 auto`` applies it)
===============================  ===================================================  =====================

The modality list is read back one way, :func:`modalities_of` (the preprocessing record's, else
the hyper-parameters'). Every reader of a checkpoint or weights file (predict, export, calibrate,
report, resume, weight import) goes through :func:`read_checkpoint`: ``torch.load`` with
``weights_only=True`` (:func:`~brainsegfounder.utils.safe_load.safe_load`, a file carrying code is
refused as such, never run), and, where the weights are used, :func:`refuse_non_finite`.

>>> import tempfile, pathlib, torch
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.ckpt"
>>> torch.save({"state_dict": {"w": torch.ones(2)}, PREPROCESSING_KEY: {"modalities": ["t1"]}}, path)
>>> read_checkpoint(path, finite=True)[PREPROCESSING_KEY]
{'modalities': ['t1']}
>>> torch.save({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, path)
>>> read_checkpoint(path, finite=True)
Traceback (most recent call last):
...
brainsegfounder.utils.errors.WeightsError: checkpoint ... holds NaN/Inf in 1 weight tensor(s) (e.g. w: 1 values), ...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brainsegfounder.utils.errors import WeightsError
from brainsegfounder.utils.safe_load import non_finite_tensors, safe_load

__all__ = ["FLAG_CASES_KEY", "FLAG_THRESHOLD_KEY", "POSTPROCESS_KEY", "PREPROCESSING_KEY", "SUBSET_DICE_KEY",
           "TEMPERATURE_KEY", "WANDB_RUN_ID_KEY", "modalities_of", "preprocessing_of", "read_checkpoint", "refuse_non_finite"]

#: Key of the :class:`~brainsegfounder.data.transforms.PreprocessingRecord` of training (a dict).
PREPROCESSING_KEY = "brainsegfounder_preprocessing"
#: Key of the fitted temperatures (list of floats, one per region channel).
TEMPERATURE_KEY = "brainsegfounder_temperature"
#: Key of the flag threshold (a float): ``predict`` flags a case whose expected Dice is below
#: ``1 -`` this (stored as the quality score ``1 - expected Dice`` above which a case is flagged,
#: the form calibrated checkpoints have always carried).
FLAG_THRESHOLD_KEY = "brainsegfounder_flag_threshold"
#: Key of the number of validation cases the flag threshold was fitted on (an int; absent in
#: checkpoints calibrated before it was recorded).
FLAG_CASES_KEY = "brainsegfounder_flag_cases"
#: Key of the validation Dice per region for each subset of the modalities (a dict
#: ``"flair+t1" -> [Dice per region]``, the full set included), measured by ``calibrate`` for a
#: model trained with modality dropout; ``predict`` scales the quality score of a case that lacks
#: modalities by the ratio to the full set.
SUBSET_DICE_KEY = "brainsegfounder_subset_dice"
#: Key of the W&B run a checkpoint belongs to (see ``training.callbacks.RunIdentity``).
WANDB_RUN_ID_KEY = "wandb_run_id"
#: Key of the post-processing choice of a multi-region (tumour) checkpoint's validation, a dict
#: ``{"rule": "largest" | "none", "val_dice_mean": ..., "val_dice_mean_largest": ...}``
#: (:func:`brainsegfounder.evaluation.postprocessing.choose_rule`).
POSTPROCESS_KEY = "brainsegfounder_postprocess"


def refuse_non_finite(state: Mapping[str, Any], source: str) -> None:
    """Raise :class:`WeightsError` naming a tensor of ``state`` that holds NaN/Inf (``source``: what to call it).

    Weights holding NaN/Inf would segment nothing (or train on NaN from step 0).
    """
    bad = non_finite_tensors(state)
    if bad:
        name, count = next(iter(bad.items()))
        raise WeightsError(f"{source} holds NaN/Inf in {len(bad)} weight tensor(s) (e.g. {name}: {count} "
                           "values), so it cannot segment anything; pick a checkpoint from before the run diverged.")


def read_checkpoint(path: str | Path, what: str = "checkpoint", map_location: Any = "cpu", mmap: bool = False,
                    finite: bool = False) -> Any:
    """The one loader of checkpoints and weights files: ``weights_only`` (numpy scalars allowed).

    With ``finite``, a ``state_dict`` (or a bare state dict) holding NaN/Inf is refused by name.
    Missing, corrupt and code-carrying files are one :class:`WeightsError` line each.
    """
    checkpoint = safe_load(path, what=what, map_location=map_location, mmap=mmap)
    if finite and isinstance(checkpoint, Mapping):
        state = checkpoint.get("state_dict", checkpoint)
        if isinstance(state, Mapping):
            refuse_non_finite(state, f"{what} {path}")
    return checkpoint


def preprocessing_of(checkpoint: Mapping[str, Any]) -> dict | None:
    """The preprocessing record stored in a loaded checkpoint (a dict), or ``None``."""
    record = checkpoint.get(PREPROCESSING_KEY) if isinstance(checkpoint, Mapping) else None
    return record if isinstance(record, dict) else None


def modalities_of(module) -> tuple[str, ...] | None:
    """The modalities a loaded task module takes, in channel order: its preprocessing record's,
    else its hyper-parameters' (checkpoints written before the record carried them); ``None`` if unknown."""
    record = getattr(module, "preprocessing_record", None)
    names = (record.modalities if record is not None else None) or module.hparams.get("modalities")
    return tuple(names) if names else None
