"""A rich progress bar that counts optimiser steps in step-based runs.

The configs train for ``trainer.max_steps`` with ``max_epochs`` unset, over a patch queue whose
"epoch" is an artefact of the queue length. Lightning's :class:`RichProgressBar` counts batches per
epoch and titles the bar ``Epoch 4/-2`` (``max_epochs - 1`` with ``max_epochs = -1``), and adds the
logger's version as ``v_num: 0.000``. :class:`StepProgressBar` shows ``step 40/100`` across epochs
instead, without ``v_num``; epoch-based runs keep Lightning's display (minus ``v_num``).

Example:
    >>> from types import SimpleNamespace
    >>> bar = StepProgressBar()
    >>> step_budget(SimpleNamespace(max_steps=100, max_epochs=-1)), step_budget(SimpleNamespace(max_steps=-1, max_epochs=5))
    (100, None)
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import RichProgressBar

__all__ = ["StepProgressBar", "step_budget"]


def step_budget(trainer: Any) -> int | None:
    """``trainer.max_steps`` when the run is bounded by steps only, else ``None`` (epoch-based)."""
    max_steps = getattr(trainer, "max_steps", -1) or -1
    return int(max_steps) if max_steps > 0 and getattr(trainer, "max_epochs", None) in (None, -1) else None


class StepProgressBar(RichProgressBar):
    """:class:`RichProgressBar` titled ``step`` with ``global_step/max_steps`` in step-based runs, no ``v_num``."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave, **kwargs)

    @property
    def total_train_batches(self) -> int | float:
        budget = step_budget(self.trainer)
        return budget if budget is not None else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if step_budget(self.trainer) is None:
            return super()._get_train_description(current_epoch)
        return f"{'step':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if step_budget(trainer) is None or self.is_disabled:
            return super().on_train_epoch_start(trainer, pl_module)
        # A new queue "epoch" is not a new start: Lightning would reset the bar (its clock, its rate
        # samples and its count) at every one. One bar for the run, created once, starting at the
        # step reached (a resume starts at its step, with its own clock and rate from there).
        if self.progress is not None and self.train_progress_bar_id is None:
            self._start_step_bar(trainer)
        self.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if step_budget(trainer) is None or self.is_disabled:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is not None and self.train_progress_bar_id is None:  # a mid-epoch resume
            self._start_step_bar(trainer)
        # Only the optimiser step count: never the batch index within the queue "epoch", whose jumps
        # back and forth rich would count as progress (the rate read 30 it/s for 2 s steps).
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)

    def _start_step_bar(self, trainer) -> None:
        self.train_progress_bar_id = self._add_task(self.total_train_batches,
                                                    self._get_train_description(trainer.current_epoch))
        # reset, not update: the steps done before this process started are no progress of its own.
        self.progress.reset(self.train_progress_bar_id, total=self.total_train_batches,
                            completed=trainer.global_step, visible=True)

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the run folder's version number is no metric
        return items
