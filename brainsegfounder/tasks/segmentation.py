"""Supervised segmentation fine-tuning of the Swin UNETR (BraTS regions, lesions, a lab's own).

Example:
    >>> from brainsegfounder.models.backbone import Backbone
    >>> from brainsegfounder.tasks.segmentation import SegmentationModule
    >>> model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4,
    ...                            regions="brats2021")
    >>> model.region_names
    ('TC', 'WT', 'ET')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from brainsegfounder.checkpoints import (
    FLAG_CASES_KEY,
    FLAG_THRESHOLD_KEY,
    POSTPROCESS_KEY,
    SUBSET_DICE_KEY,
    TEMPERATURE_KEY,
)
from brainsegfounder.data.datamodule import as_triple, images_to_tensor
from brainsegfounder.data.regions import SCHEMES, RegionScheme, get_scheme
from brainsegfounder.evaluation.postprocessing import choose_rule, keep_largest_lesion
from brainsegfounder.metrics import dice_per_channel, lesion_f1
from brainsegfounder.models.backbone import DEFAULT_BACKBONE, Backbone
from brainsegfounder.models.sliding_window import sliding_window_probabilities
from brainsegfounder.tasks.base import BackboneTask
from brainsegfounder.tasks.losses import make_loss
from brainsegfounder.tasks.optim import adamw_warmup_cosine
from brainsegfounder.utils.errors import DataError

__all__ = ["SegmentationModule", "make_loss", "plain_regions"]


def plain_regions(regions: str | Mapping | RegionScheme) -> str | dict:
    """A scheme as configs and checkpoints hold it (plain types): its registered name, or its full description.

    >>> plain_regions("lesion"), sorted(plain_regions({"core": [1, 3]}))[:3]
    ('lesion', ['colours', 'description', 'evaluated'])
    """
    scheme = get_scheme(regions)
    return scheme.name if SCHEMES.get(scheme.name) == scheme else scheme.to_dict()


class SegmentationModule(BackboneTask):
    """Swin UNETR fine-tuning: one sigmoid channel per region, sliding-window validation.

    ``fit`` links ``modalities``, ``in_channels``, ``regions`` and ``roi_size`` to the data module
    (``data.modalities``, ``data.regions``, ``data.patch_size``), so a config states each once.

    Args:
        backbone: the network's size and initial weights (:class:`~brainsegfounder.models.backbone.Backbone`).
        in_channels: number of input modalities (default: the number of ``modalities``, else 4).
        regions: region scheme (``brats2021``, ``brats2023``, ``brats2024``, ``lesion``, a YAML/JSON
            file, or ``{name: [labels]}``).
        modalities: modality names in channel order; default: the data module's.
        loss: ``dice``, ``dicebce`` or ``dicefocal`` (:mod:`brainsegfounder.tasks.losses`).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: warm-up as a fraction of all steps (< 1) or a step count.
        roi_size: sliding-window size at validation (voxels), the training patch size.
        sw_batch_size: windows per forward pass at validation.
        sw_overlap: sliding-window overlap.
        threshold: probability above which a voxel is in a region.

    Validation and test log the Dice per region and its mean; with several regions also
    ``dice_mean_largest``: the mean once the label map keeps only its largest connected lesion
    (``predict --postprocess largest``), so a run shows on its own brains whether that rule helps;
    each checkpoint stores the choice of the validation it was saved after (``predict --postprocess
    auto`` applies it).
    """

    def __init__(
        self,
        backbone: Backbone = DEFAULT_BACKBONE,
        in_channels: int | None = None,
        regions: str | dict[str, Any] = "brats2021",
        modalities: list[str] | None = None,
        loss: Literal["dice", "dicebce", "dicefocal"] = "dicebce",
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        warmup: float = 0.05,
        roi_size: int | list[int] = 96,
        sw_batch_size: int = 2,
        sw_overlap: float = 0.5,
        threshold: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters()
        channels = self.init_backbone(backbone, in_channels, modalities, default_channels=4)
        self.scheme = get_scheme(regions)
        self.set_hparam("regions", plain_regions(self.scheme))
        self.net = self.backbone.segmentation_network(channels, self.scheme.num_regions)
        self.loss_fn = make_loss(loss)
        self.roi_size = as_triple(roi_size)
        # Validation means over subjects (sum and count synced across DDP ranks). No persistent
        # state: checkpoints hold the same keys as before.
        from torchmetrics import MeanMetric

        names = [f"dice_{n.lower()}" for n in self.scheme.names] + ["dice_mean"]
        names += ["lesion_f1"] if self.scheme.num_regions == 1 else []
        self.val_means = torch.nn.ModuleDict({f"val_{n}": MeanMetric() for n in names})
        #: The post-processing rule the latest validation chose (:func:`choose_rule`), saved with checkpoints.
        self.postprocess_choice: dict | None = None

    @property
    def region_names(self) -> tuple[str, ...]:
        return self.scheme.names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and tuple(dm.scheme.names) != self.scheme.names:
            raise DataError(f"model.regions {self.scheme.names} and data.regions {dm.scheme.names} differ; "
                            "set data.regions only (fit links the model to it).")

    def record_fields(self) -> dict:
        return {**super().record_fields(), "scheme": self.scheme.name, "roi_size": self.roi_size}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        metrics = self.trainer.callback_metrics if self._trainer is not None else {}
        if "val/dice_mean" in metrics and "val/dice_mean_largest" in metrics:  # the latest validation's
            self.postprocess_choice = choose_rule(float(metrics["val/dice_mean"]),
                                                  float(metrics["val/dice_mean_largest"]))
        if self.postprocess_choice is not None:
            checkpoint[POSTPROCESS_KEY] = self.postprocess_choice

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.postprocess_choice = checkpoint.get(POSTPROCESS_KEY)
        # Written by `brainsegfounder.calibrate` into a calibrated copy; the predictor applies them.
        self.temperature = checkpoint.get(TEMPERATURE_KEY)
        self.flag_threshold = checkpoint.get(FLAG_THRESHOLD_KEY)
        self.flag_cases = checkpoint.get(FLAG_CASES_KEY)
        self.subset_dice = checkpoint.get(SUBSET_DICE_KEY)

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
        """Sigmoid probabilities of whole volumes ``(B, C, X, Y, Z)`` by the one Gaussian sliding window."""
        return sliding_window_probabilities(x, [self], self.roi_size, self.hparams.sw_batch_size,
                                            self.hparams.sw_overlap)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._score(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """The same scores as validation, logged as ``test/...`` (the data module's held-out test fold)."""
        return self._score(batch, batch_idx, "test")

    def _score(self, batch: dict, batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        x, y = self._inputs_targets(batch)
        probabilities = self.predict_volume(x)
        # The same function `evaluate` uses, so logged and evaluated Dice agree (empty-mask rules
        # included).
        dice = dice_per_channel(probabilities > self.hparams.threshold, y > 0)[0]
        metrics = {f"{stage}/dice_{n.lower()}": d for n, d in zip(self.scheme.names, dice, strict=True)}
        metrics[f"{stage}/dice_mean"] = dice.mean()
        if self.scheme.num_regions > 1:
            # nnU-Net's post-processing check: the same Dice after keeping only the largest connected
            # lesion (predict --postprocess largest), so each run shows whether the rule helps here.
            metrics[f"{stage}/dice_mean_largest"] = self._largest_lesion_dice(probabilities, y)
        if self.scheme.num_regions == 1:
            # Binary lesion tasks (ATLAS): the challenge's lesion-wise F1, per volume, as `evaluate` scores it.
            predicted, reference = (t[:, 0].cpu().numpy() for t in (probabilities > self.hparams.threshold, y > 0))
            metrics[f"{stage}/lesion_f1"] = torch.tensor(
                [lesion_f1(p, r) for p, r in zip(predicted, reference, strict=True)], device=dice.device).mean()
        self._log_subject_means(metrics, batch_idx, x.shape[0], stage)
        return metrics

    def _largest_lesion_dice(self, probabilities: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean Dice over regions, per volume, of the label map as ``predict --postprocess largest`` writes it."""
        label = self.scheme.to_label(probabilities > self.hparams.threshold)[:, 0].cpu().numpy()
        kept = torch.from_numpy(np.stack([keep_largest_lesion(one) for one in label]))[:, None]
        regions = self.scheme.to_regions(kept.to(y.device)) > 0
        return dice_per_channel(regions, y > 0).mean(dim=1)

    def _log_subject_means(self, metrics: dict[str, torch.Tensor], batch_idx: int, batch_size: int,
                           stage: str = "val") -> None:
        """Log each metric as a mean over validation subjects, each counted once across DDP ranks.

        A ``MeanMetric`` per name accumulates (sum, count) and syncs both at epoch end, so ranks
        with different numbers of subjects are weighted by subject count (Lightning's ``sync_dist``
        would average the ranks' means); the padding items of a sharded loader get weight 0.
        """
        from torchmetrics import MeanMetric

        loaders = getattr(self.trainer, f"{stage}_dataloaders", None) if self._trainer else None
        sampler = getattr(loaders, "sampler", None)
        counted = getattr(sampler, "counted", None)
        weight = torch.tensor([1.0 if counted is None or batch_idx * batch_size + i < counted else 0.0
                               for i in range(batch_size)])
        for name, value in metrics.items():
            key = name.replace("/", "_")
            if key not in self.val_means:  # a metric a subclass adds
                self.val_means[key] = MeanMetric().to(value.device)
            per_subject = value.detach().float().reshape(-1).expand(batch_size) if value.numel() == 1 else value
            self.val_means[key].update(per_subject, weight.to(value.device))
            self.log(name, self.val_means[key], on_step=False, on_epoch=True, batch_size=batch_size,
                     metric_attribute=f"val_means.{key}")

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup)
