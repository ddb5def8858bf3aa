"""Self-supervised pretraining: Stage 1 (healthy anatomy) and Stage 2 (the target disease's images).

Both stages train :class:`~brainsegfounder.models.ssl_heads.SSLHeads` on two rotated and masked
views of every crop (:func:`~brainsegfounder.models.ssl_augment.ssl_views`, on the batch's device)
with rotation + contrastive + reconstruction losses. Stage 2 starts from a Stage-1 checkpoint
(``init_from``), adapting the input channels by a modality map when their number changes.

Example (the configs in ``experiments/`` do the same from YAML):
    >>> from brainsegfounder.tasks.ssl import SSLPretrainModule
    >>> model = SSLPretrainModule(preset="tiny", feature_size=12, in_channels=2, modalities=["t1", "flair"])
    >>> sorted(n for n, _ in model.net.named_children())
    ['contrastive_head', 'conv', 'rotation_head', 'swinViT']
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from brainsegfounder.data.datamodule import images_to_tensor  # noqa: E402
from brainsegfounder.errors import DataError, WeightsError  # noqa: E402
from brainsegfounder.models.ssl_augment import ssl_views  # noqa: E402
from brainsegfounder.models.ssl_heads import SSLHeads, SSLLoss  # noqa: E402
from brainsegfounder.models.weights import load_pretrained  # noqa: E402
from brainsegfounder.tasks.optim import adamw_warmup_cosine  # noqa: E402

__all__ = ["SSLPretrainModule", "DiseaseAwarePretrainModule", "ReconstructionImages"]


class SSLPretrainModule(pl.LightningModule):
    """Stage 1: rotation, contrastive and inpainting pretraining of the Swin encoder.

    Args:
        preset: backbone size (``tiny``, ``small``, ``base``).
        feature_size: override the preset's 48 (12 for CPU-sized runs).
        in_channels: input modalities (must match the data).
        modalities: modality names in channel order; default: the data module's. Saved in the
            checkpoint, so later stages know which channel is which.
        lr, weight_decay, warmup: AdamW with warm-up (fraction < 1 or steps) and cosine decay.
        rotation_weight, contrastive_weight, reconstruction_weight: weights of the total loss.
        temperature: NT-Xent temperature.
        projection_dim: contrastive projection size.
        contrastive_pooling, contrastive_norm: the contrastive head's input (``mean`` of the
            bottleneck tokens, or ``token`` 1 as in the paper) and its batch standardisation
            (see :class:`~brainsegfounder.models.ssl_heads.SSLHeads`).
        max_mask_fraction: largest fraction of voxels hidden per view.
        n_cuboids: cuboids drawn per view (noise first, then another sample's content).
        gradient_checkpointing: recompute Swin blocks in backward to save memory.
        dropout_path_rate: stochastic depth.
        init_from: a checkpoint to start from (this project's, or a released ``.pt``).
        modality_map: target modality -> checkpoint modality, when the channels differ.
        source_modalities: the checkpoint's modalities, when it does not record them.
        allow_partial_init: accept a checkpoint that fills only part of the encoder.
    """

    def __init__(
        self,
        preset: str = "small",
        feature_size: int | None = None,
        in_channels: int = 2,
        modalities: list[str] | None = None,
        lr: float = 5e-4,
        weight_decay: float = 0.1,
        warmup: float = 0.05,
        rotation_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        temperature: float = 0.5,
        projection_dim: int = 512,
        contrastive_pooling: str = "mean",
        contrastive_norm: bool = True,
        max_mask_fraction: float = 0.3,
        n_cuboids: int = 32,
        gradient_checkpointing: bool = False,
        dropout_path_rate: float = 0.0,
        init_from: str | None = None,
        modality_map: dict[str, str] | None = None,
        source_modalities: list[str] | None = None,
        allow_partial_init: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.modalities = modalities
        self.net = SSLHeads(preset, in_channels, feature_size, projection_dim, gradient_checkpointing,
                            dropout_path_rate, contrastive_pooling, contrastive_norm)
        self.loss_fn = SSLLoss(rotation_weight, contrastive_weight, reconstruction_weight, temperature)
        self.mask_kwargs = {"max_fraction": max_mask_fraction, "n_cuboids": n_cuboids}
        self.import_report = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and self.modalities is None:
            self.modalities = list(dm.modalities)
            self.hparams["modalities"] = self.modalities  # recorded in the checkpoint for the next stage
        if self.modalities is not None and len(self.modalities) != self.hparams.in_channels:
            raise DataError(f"model.in_channels is {self.hparams.in_channels} but the data gives "
                            f"{len(self.modalities)} modalities {self.modalities}; set model.in_channels "
                            f"to {len(self.modalities)}.")
        if stage == "fit" and self.hparams.init_from and self.import_report is None:
            self.import_report = load_pretrained(
                self.net, self.hparams.init_from, modality_map=self.hparams.modality_map,
                source_modalities=self.hparams.source_modalities, target_modalities=self.modalities,
                allow_partial=self.hparams.allow_partial_init, verbose=self.trainer.is_global_zero)

    def ssl_step(self, batch: dict, generator: torch.Generator | None = None) -> tuple[dict, dict]:
        """Losses of one batch, and the views and outputs they came from."""
        x = images_to_tensor(batch, self.modalities)
        views = ssl_views(x, generator=generator, **self.mask_kwargs)
        out = self(views["masked"])
        return self.loss_fn(out, views["labels"], views["rotated"]), {**views, **out}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses, views = self.ssl_step(batch)
        b = views["labels"].shape[0]
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=b)
        self.log_dict({f"train/loss_{k}": v for k, v in losses.items() if k != "total"}, batch_size=b)
        return losses["total"]

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        # The same views at every validation, so that the validation loss is comparable over time.
        generator = torch.Generator(device=self.device).manual_seed(1000 + batch_idx)
        losses, views = self.ssl_step(batch, generator)
        b = views["labels"].shape[0]
        accuracy = (views["rotation"].argmax(1) == views["labels"]).float().mean()
        self.log("val/loss", losses["total"], prog_bar=True, batch_size=b, sync_dist=True)
        self.log_dict({f"val/loss_{k}": v for k, v in losses.items() if k != "total"}, batch_size=b, sync_dist=True)
        self.log("val/rotation_accuracy", accuracy, batch_size=b, sync_dist=True)
        if batch_idx == 0:
            return {"images": {k: views[k][:1].detach().float().cpu() for k in ("rotated", "masked", "reconstruction")}}
        return {}

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup)

    def configure_callbacks(self) -> list[pl.Callback]:
        return [ReconstructionImages()]


class DiseaseAwarePretrainModule(SSLPretrainModule):
    """Stage 2: the same objectives on the target data set's images, starting from Stage 1.

    ``init_from`` (a Stage-1 checkpoint) is required. When the channel count changes (UK Biobank
    T1, FLAIR -> BraTS flair, t1ce, t1, t2), the patch embedding is adapted by ``modality_map``
    (e.g. :data:`~brainsegfounder.models.weights.UKB_TO_BRATS`) and rescaled so its response to
    equal mapped channels is the source's, instead of being re-initialised.

    Example:
        >>> from brainsegfounder.tasks.ssl import DiseaseAwarePretrainModule
        >>> DiseaseAwarePretrainModule(preset="tiny", feature_size=12)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        brainsegfounder.errors.WeightsError: Stage 2 (disease-aware pretraining) starts from a Stage-1 checkpoint...
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.hparams.init_from:
            raise WeightsError("Stage 2 (disease-aware pretraining) starts from a Stage-1 checkpoint: set "
                               "model.init_from to it (e.g. runs/ukb/stage1/version_0/checkpoints/last.ckpt).")


class ReconstructionImages(pl.Callback):
    """At each validation: one picture of input / masked input / reconstruction (mid slices).

    Saved as ``<log_dir>/images/reconstruction_step<N>.png``, and sent to the logger when it takes
    images (W&B, TensorBoard).
    """

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.is_global_zero or trainer.sanity_checking or not outputs or "images" not in outputs:
            return
        images = outputs["images"]
        titles = {"rotated": "input", "masked": "masked input", "reconstruction": "reconstruction"}
        figure, axes = plt.subplots(1, 3, figsize=(9, 3.2))
        volume = images["rotated"][0, 0]
        lo, hi = float(volume.quantile(0.01)), float(volume.quantile(0.99))
        for ax, (key, title) in zip(axes, titles.items(), strict=True):
            v = images[key][0, 0]
            ax.imshow(v[:, :, v.shape[2] // 2].T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
            ax.set_title(title)
            ax.axis("off")
        figure.suptitle(f"step {trainer.global_step}")
        figure.tight_layout()
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        (log_dir / "images").mkdir(parents=True, exist_ok=True)
        figure.savefig(log_dir / "images" / f"reconstruction_step{trainer.global_step}.png", dpi=80)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_figure"):  # TensorBoard
                experiment.add_figure("val/reconstruction", figure, trainer.global_step)
            elif type(logger).__name__ == "WandbLogger":
                logger.log_image("val/reconstruction", [figure], step=trainer.global_step)
        plt.close(figure)
