"""A callback for fault tests that run fit in another process: each optimizer step's number, one a line."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning import Callback


class StepLog(Callback):
    """Appends ``trainer.global_step`` to ``path`` after every training batch (flushed at once)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        with self.path.open("a") as handle:
            handle.write(f"{trainer.global_step}\n")
