"""Lightning callbacks for the operations side of a run; they work with every task.

- :class:`RunIdentity` writes the W&B run id into every checkpoint, so ``--ckpt_path`` continues
  the same W&B run (``brainsegfounder.fit`` adds it to every run).
- :class:`ConfigToLoggers` saves the resolved config beside the run (refusing to overwrite, as
  LightningCLI does) and also logs the full config to W&B (``fit`` uses it as its config saver).
- :class:`PredictionOverlays` draws a few validation cases (prediction coloured, reference
  outlined) at each validation, writes the PNGs into the run folder and logs them to W&B.
- :class:`SeenSubjects` records which subjects each process trained and validated on, one JSON
  file per rank (to audit a DDP split).

Example (YAML, under ``trainer.callbacks``):

.. code-block:: yaml

    - class_path: brainsegfounder.training.callbacks.PredictionOverlays
      init_args: {max_cases: 2}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from brainsegfounder.checkpoints import WANDB_RUN_ID_KEY
from brainsegfounder.data.datamodule import images_to_tensor
from brainsegfounder.report.overlays import save_overlay
from brainsegfounder.tasks.segmentation import SegmentationModule

__all__ = ["ConfigToLoggers", "PredictionOverlays", "RunIdentity", "SeenSubjects", "wandb_loggers"]

log = logging.getLogger(__name__)


def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (usually zero or one)."""
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


class RunIdentity(Callback):
    """Store the W&B run id in each checkpoint (key ``wandb_run_id``) so a resume continues that run."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        for logger in wandb_loggers(trainer):
            if logger.version:
                checkpoint[WANDB_RUN_ID_KEY] = str(logger.version)
                return


class ConfigToLoggers(SaveConfigCallback):
    """LightningCLI's config saver that also puts the full resolved config into W&B's run config.

    The file beside the run stays the reference (``config.yaml``, never overwritten); W&B gets the
    same content as nested keys (``model.init_args.lr``...), so runs can be filtered and compared by
    any setting, including those a sweep did not vary.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        config = json.loads(self.parser.dump(self.config, format="json", skip_none=False))
        for logger in loggers:
            # allow_val_change: a sweep agent has already set the values it sampled.
            logger.experiment.config.update(config, allow_val_change=True)


class PredictionOverlays(Callback):
    """At each validation, draw the first ``max_cases`` cases of rank 0 and log them.

    Draws for the segmentation task (its ``predict_volume``, the one sliding window of validation
    and ``predict``); other tasks are skipped. The pictures (three orthogonal slices
    through the largest reference lesion, prediction coloured, reference outlined in white) go to
    ``<run folder>/overlays/step_<N>/<case>.png`` and, with a W&B logger, to the W&B key
    ``val/overlays``.

    Args:
        max_cases: cases drawn per validation (each costs one extra sliding-window prediction).
        modality: the image drawn underneath (default: the module's first modality).
    """

    def __init__(self, max_cases: int = 2, modality: str | None = None):
        self.max_cases = max_cases
        self.modality = modality
        self._paths: list[Path] = []
        self._captions: list[str] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._paths, self._captions = [], []
        # Read on every rank: trainer.log_dir is a collective call (a broadcast) under DDP.
        self._folder = Path(trainer.log_dir or trainer.default_root_dir) / "overlays"

    @rank_zero_only
    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or len(self._paths) >= self.max_cases:
            return
        if not isinstance(pl_module, SegmentationModule) or "label" not in batch or not pl_module.modalities:
            return
        modalities = list(pl_module.modalities)
        with torch.no_grad():
            probabilities = pl_module.predict_volume(images_to_tensor(batch, modalities))
        threshold = float(pl_module.hparams.threshold)
        scheme = pl_module.scheme
        predicted = scheme.to_label(probabilities > threshold)[0, 0].cpu().numpy()
        reference = batch["label"][0, 0].cpu().numpy()
        shown = self.modality if self.modality in modalities else modalities[0]
        image = batch[shown][0, 0].float().cpu().numpy()
        case = str(batch.get("subject_id", [f"case{batch_idx}"])[0]) or f"case{batch_idx}"
        dice = outputs.get("val/dice_mean") if isinstance(outputs, dict) else None
        caption = f"{case} step {trainer.global_step}" + (f" Dice {float(dice):.3f}" if dice is not None else "")
        path = self._folder / f"step_{trainer.global_step}" / f"{case}.png"
        save_overlay(image, predicted, path, title=caption, scheme=scheme, reference=reference)
        self._paths.append(path)
        self._captions.append(caption)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._paths:
            return
        for logger in wandb_loggers(trainer):
            logger.log_image(key="val/overlays", images=[str(p) for p in self._paths],
                             caption=self._captions, step=trainer.global_step)


class SeenSubjects(Callback):
    """Write ``<run folder>/seen_subjects/rank<R>.json``: the subject ids this rank trained and validated on.

    Needs batches with a ``subject_id`` list (the package's data modules provide it). Rank files
    are written at the end of fit by each process, so no collective call is involved.
    """

    def __init__(self) -> None:
        self.train: list[str] = []
        self.val: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train += [str(s) for s in batch.get("subject_id", [])]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self.val += [str(s) for s in batch.get("subject_id", [])]

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "seen_subjects"
        folder.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                  "train": sorted(set(self.train)), "val": sorted(set(self.val)),
                  "train_patches": len(self.train)}
        (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record, indent=1))
