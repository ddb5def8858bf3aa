"""Guards that stop a run before a wrong number is saved: finite losses, finite weights.

A NaN loss (an all-zero modality normalised to 0/0, a learning rate far too high) poisons every
weight in one optimiser step; Lightning would then save that model as ``best`` or ``last`` and exit
0. :class:`FiniteGuard` checks each step's loss and, after the optimiser step, that the weights are
still finite; it raises :class:`NonFiniteError` naming the step and the batch's subjects. It runs
before any :class:`~pytorch_lightning.callbacks.ModelCheckpoint` (Lightning runs checkpoint
callbacks last), so nothing non-finite reaches disk: on an exception no checkpoint is written.

Example:
    >>> import torch
    >>> FiniteGuard.describe_batch({"subject_id": ["BraTS2021_00001", "BraTS2021_00004"]})
    'subjects BraTS2021_00001, BraTS2021_00004'
"""

from __future__ import annotations

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from brainsegfounder.utils.errors import BrainSegFounderError
from brainsegfounder.utils.safe_load import non_finite_tensors

__all__ = ["FiniteGuard", "NonFiniteError"]


class NonFiniteError(BrainSegFounderError):
    """Training produced NaN or Inf: the run is stopped and nothing non-finite is saved."""


class FiniteGuard(Callback):
    """Stop at the first non-finite loss or weight, naming the step and the batch's subjects.

    Args:
        check_weights_every: also check every parameter after this many optimiser steps (1 =
            every step; the check costs one pass over the parameters).
    """

    def __init__(self, check_weights_every: int = 1):
        self.check_weights_every = max(1, int(check_weights_every))

    @staticmethod
    def describe_batch(batch) -> str:
        ids = batch.get("subject_id") if isinstance(batch, dict) else None
        if ids is None:
            return "subjects unknown"
        ids = [ids] if isinstance(ids, str) else list(ids)
        return "subjects " + ", ".join(str(i) for i in dict.fromkeys(ids))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        step = trainer.global_step
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
            raise NonFiniteError(
                f"training loss is {loss.detach().float().item():g} at step {step} ({self.describe_batch(batch)}); "
                "the run is stopped and no checkpoint of this state is saved. Common causes: a constant "
                "(e.g. all-zero) image in these subjects, NaN voxels, or a learning rate far too high.")
        if step % self.check_weights_every == 0:
            bad = non_finite_tensors(dict(pl_module.named_parameters()))
            if bad:
                name, count = next(iter(bad.items()))
                raise NonFiniteError(
                    f"after step {step} ({self.describe_batch(batch)}) {len(bad)} weight tensor(s) hold NaN/Inf "
                    f"(e.g. {name}: {count} values); the run is stopped and nothing of this state is saved. "
                    "Lower model.lr or check these subjects' images.")
