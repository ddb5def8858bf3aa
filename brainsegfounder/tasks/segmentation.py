"""Supervised segmentation fine-tuning of the Swin UNETR (BraTS regions, lesions, a lab's own).

Example:
    >>> from brainsegfounder.tasks.segmentation import SegmentationModule
    >>> model = SegmentationModule(preset="tiny", feature_size=12, in_channels=4, regions="brats2021")
    >>> model.region_names
    ('TC', 'WT', 'ET')
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
from monai.inferers import sliding_window_inference

from brainsegfounder.data.datamodule import as_triple, images_to_tensor
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.errors import DataError
from brainsegfounder.metrics import dice_per_channel, lesion_f1
from brainsegfounder.models.presets import build_swin_unetr
from brainsegfounder.models.weights import load_pretrained
from brainsegfounder.tasks.losses import make_loss
from brainsegfounder.tasks.optim import adamw_warmup_cosine

__all__ = ["PREPROCESSING_KEY", "SegmentationModule", "make_loss"]

#: Checkpoint key under which the data preprocessing of training is saved (read by ``predict``).
PREPROCESSING_KEY = "brainsegfounder_preprocessing"


class SegmentationModule(pl.LightningModule):
    """Swin UNETR fine-tuning: one sigmoid channel per region, sliding-window validation.

    Args:
        preset: backbone size (``tiny``, ``small``, ``base``).
        feature_size: override the preset's 48 (12 for CPU-sized runs).
        in_channels: number of input modalities (must match the data).
        regions: region scheme (``brats2021``, ``brats2023``, ``lesion`` or ``{name: [labels]}``).
        modalities: modality names in channel order; default: the data module's.
        loss: ``dice``, ``dicebce`` or ``dicefocal`` (:mod:`brainsegfounder.tasks.losses`).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: warm-up as a fraction of all steps (< 1) or a step count.
        roi_size: sliding-window size at validation (voxels), usually the training patch size.
        sw_batch_size: windows per forward pass at validation.
        sw_overlap: sliding-window overlap.
        threshold: probability above which a voxel is in a region.
        gradient_checkpointing: recompute Swin blocks in backward to save memory.
        dropout_path_rate: stochastic depth of the Swin blocks.
        init_from: start from this checkpoint (Stage 1/2 SSL, a fine-tune, or a released ``.pt``),
            through :func:`~brainsegfounder.models.weights.load_pretrained`.
        modality_map: target modality -> checkpoint modality, when the input channels differ
            (e.g. ``{flair: flair, t1ce: t1, t1: t1, t2: flair}`` from a Stage-1 checkpoint).
        source_modalities: the checkpoint's modalities in channel order, if it does not record them.
        allow_partial_init: accept a checkpoint that fills only part of the encoder.
        freeze_encoder_epochs: keep the encoder (``net.swinViT``) fixed for this many first epochs.
    """

    def __init__(
        self,
        preset: str = "small",
        feature_size: int | None = None,
        in_channels: int = 4,
        regions: str | dict[str, list[int]] = "brats2021",
        modalities: list[str] | None = None,
        loss: Literal["dice", "dicebce", "dicefocal"] = "dicebce",
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        warmup: float = 0.05,
        roi_size: int | list[int] = 96,
        sw_batch_size: int = 2,
        sw_overlap: float = 0.5,
        threshold: float = 0.5,
        gradient_checkpointing: bool = False,
        dropout_path_rate: float = 0.0,
        init_from: str | None = None,
        modality_map: dict[str, str] | None = None,
        source_modalities: list[str] | None = None,
        allow_partial_init: bool = False,
        freeze_encoder_epochs: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scheme = get_scheme(regions)
        self.modalities = modalities
        self.net = build_swin_unetr(preset, in_channels, self.scheme.num_regions, feature_size,
                                    gradient_checkpointing, dropout_path_rate)
        self.loss_fn = make_loss(loss)
        self.roi_size = as_triple(roi_size)
        self.preprocessing_settings: dict = {}
        self.import_report = None

    @property
    def region_names(self) -> tuple[str, ...]:
        return self.scheme.names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- data plumbing ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        if self.modalities is None:
            self.modalities = list(dm.modalities)
            self.hparams["modalities"] = self.modalities  # recorded, so init_from can map channels by name
        if len(self.modalities) != self.hparams.in_channels:
            raise DataError(f"model.in_channels is {self.hparams.in_channels} but the data gives "
                            f"{len(self.modalities)} modalities {self.modalities}; set model.in_channels "
                            f"to {len(self.modalities)}.")
        if tuple(dm.scheme.names) != self.scheme.names:
            raise DataError(f"model.regions {self.scheme.names} and data.regions {dm.scheme.names} differ; "
                            "set both to the same scheme.")
        if stage == "fit":
            self.load_init_weights(verbose=self.trainer.is_global_zero)

    def load_init_weights(self, verbose: bool = True):
        """Load ``init_from`` once (before a resumed checkpoint, which then takes precedence)."""
        if self.hparams.init_from and self.import_report is None:
            self.import_report = load_pretrained(
                self.net, self.hparams.init_from, modality_map=self.hparams.modality_map,
                source_modalities=self.hparams.source_modalities, target_modalities=self.modalities,
                allow_partial=self.hparams.allow_partial_init, verbose=verbose)
        return self.import_report

    def on_train_epoch_start(self) -> None:
        # Toggled after the optimiser was built (it holds every parameter); AdamW skips
        # parameters without gradients, so frozen ones stay exactly as loaded.
        frozen = self.current_epoch < self.hparams.freeze_encoder_epochs
        for p in self.net.swinViT.parameters():
            p.requires_grad_(not frozen)

    # -- what prediction needs to know ------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The data module's preprocessing is not among the model's hyperparameters, but predicting
        # new scans must repeat it (same modality order, spacing and crop), so it rides along.
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        checkpoint[PREPROCESSING_KEY] = {
            "modalities": list(self.modalities) if self.modalities is not None else None,
            "layout": getattr(dm, "layout", None),
            "spacing": getattr(dm, "spacing", None),
            "crop_to_brain": bool(getattr(dm, "crop_to_brain", False)),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.preprocessing_settings = dict(checkpoint.get(PREPROCESSING_KEY) or {})

    def _inputs_targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = images_to_tensor(batch, self.modalities)
        y = self.scheme.to_regions(batch["label"])
        return x, y

    # -- training and validation -----------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x, y = self._inputs_targets(batch)
        loss = self.loss_fn(self(x), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def predict_volume(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities of a whole volume ``(B, C, X, Y, Z)`` by Gaussian sliding window."""
        logits = sliding_window_inference(x, self.roi_size, self.hparams.sw_batch_size, self,
                                          overlap=self.hparams.sw_overlap, mode="gaussian")
        return torch.sigmoid(logits)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y = self._inputs_targets(batch)
        probabilities = self.predict_volume(x)
        # The same function `evaluate` uses, so logged and evaluated Dice agree (empty-mask rules
        # included).
        dice = dice_per_channel(probabilities > self.hparams.threshold, y > 0)[0]
        metrics = {f"val/dice_{n.lower()}": d for n, d in zip(self.scheme.names, dice, strict=True)}
        metrics["val/dice_mean"] = dice.mean()
        if self.scheme.num_regions == 1:
            # Binary lesion tasks (ATLAS): the challenge's lesion-wise F1, per volume, as `evaluate` scores it.
            predicted, reference = (t[:, 0].cpu().numpy() for t in (probabilities > self.hparams.threshold, y > 0))
            metrics["val/lesion_f1"] = torch.tensor(
                [lesion_f1(p, r) for p, r in zip(predicted, reference, strict=True)], device=dice.device).mean()
        self.log_dict(metrics, on_epoch=True, batch_size=1, sync_dist=True)
        return metrics

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup)
