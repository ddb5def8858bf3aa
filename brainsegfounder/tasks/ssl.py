"""Self-supervised pretraining: Stage 1 (healthy anatomy) and Stage 2 (the target disease's images).

Both stages train :class:`~brainsegfounder.models.ssl_heads.SSLHeads` on two rotated and masked
views of every crop (:func:`~brainsegfounder.models.ssl_augment.ssl_views`, on the batch's device)
with rotation + contrastive + reconstruction losses. Stage 2 starts from a Stage-1 checkpoint
(``backbone.init_from``), adapting the input channels by a modality map when their number changes.
The picture of input / masked input / reconstruction logged at each validation is drawn by
:class:`ReconstructionImages`.

Example (the configs in ``experiments/`` do the same from YAML):
    >>> from brainsegfounder.models.backbone import Backbone
    >>> from brainsegfounder.tasks.ssl import SSLPretrainModule
    >>> model = SSLPretrainModule(backbone=Backbone(preset="tiny", feature_size=12), modalities=["t1", "flair"])
    >>> sorted(n for n, _ in model.net.named_children())
    ['contrastive_head', 'contrastive_norm', 'conv', 'rotation_head', 'swinViT']
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from brainsegfounder.data.datamodule import images_to_tensor
from brainsegfounder.models.backbone import DEFAULT_BACKBONE, Backbone
from brainsegfounder.models.ssl_augment import ssl_views
from brainsegfounder.models.ssl_heads import SSLLoss, contrastive_accuracy
from brainsegfounder.tasks.base import BackboneTask
from brainsegfounder.tasks.optim import adamw_warmup_cosine
from brainsegfounder.utils.errors import WeightsError

__all__ = ["SSLPretrainModule", "DiseaseAwarePretrainModule"]


class ReconstructionImages(pl.Callback):
    """At each validation of an SSL task: input / masked input / reconstruction (mid slices), one picture.

    Saved as ``<log_dir>/images/reconstruction_step<N>.png`` and sent to TensorBoard and W&B
    loggers. Drawn on a bare matplotlib ``Figure`` (no pyplot), so no backend is chosen at import.
    """

    titles = {"rotated": "input", "masked": "masked input", "reconstruction": "reconstruction"}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.is_global_zero or trainer.sanity_checking or not outputs or "images" not in outputs:
            return
        from matplotlib.figure import Figure

        images = outputs["images"]
        figure = Figure(figsize=(9, 3.2), layout="tight")
        volume = images["rotated"][0, 0]
        lo, hi = float(volume.quantile(0.01)), float(volume.quantile(0.99))
        for ax, (key, title) in zip(figure.subplots(1, 3), self.titles.items(), strict=True):
            v = images[key][0, 0]
            ax.imshow(v[:, :, v.shape[2] // 2].T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
            ax.set_title(title)
            ax.axis("off")
        figure.suptitle(f"step {trainer.global_step}")
        path = Path(trainer.log_dir or trainer.default_root_dir) / "images" / f"reconstruction_step{trainer.global_step}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=80)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_figure"):  # TensorBoard
                experiment.add_figure("val/reconstruction", figure, trainer.global_step)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/reconstruction", [str(path)], step=trainer.global_step)


class SSLPretrainModule(BackboneTask):
    """Stage 1: rotation, contrastive and inpainting pretraining of the Swin encoder.

    Args:
        backbone: the encoder's size and initial weights (:class:`~brainsegfounder.models.backbone.Backbone`).
        in_channels: input modalities (default: the number of ``modalities``, else 2).
        modalities: modality names in channel order; default: the data module's (``fit`` links
            them). Saved in the checkpoint, so later stages know which channel is which.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: warm-up as a fraction of all steps (< 1) or a step count; then cosine decay.
        rotation_weight: weight of the rotation loss in the total.
        contrastive_weight: weight of the contrastive loss in the total.
        reconstruction_weight: weight of the reconstruction loss in the total.
        temperature: NT-Xent temperature.
        projection_dim: contrastive projection size.
        contrastive_pooling, contrastive_norm: the contrastive head's input (``mean`` of the
            bottleneck tokens, or ``token`` 1 as in the paper) and its batch standardisation
            (see :class:`~brainsegfounder.models.ssl_heads.SSLHeads`).
        rotation_pooling: the rotation head's input, ``token`` 0 (the paper) or the ``mean`` of
            the bottleneck tokens.
        max_mask_fraction: largest fraction of voxels hidden per view.
        n_cuboids: cuboids drawn per view (noise first, then another sample's content).
    """

    def __init__(
        self,
        backbone: Backbone = DEFAULT_BACKBONE,
        in_channels: int | None = None,
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
        rotation_pooling: str = "token",
    ):
        super().__init__()
        self.save_hyperparameters()
        channels = self.init_backbone(backbone, in_channels, modalities, default_channels=2)
        self.net = self.backbone.ssl_network(channels, projection_dim, contrastive_pooling, contrastive_norm,
                                            rotation_pooling)
        self.loss_fn = SSLLoss(rotation_weight, contrastive_weight, reconstruction_weight, temperature)
        self.mask_kwargs = {"max_fraction": max_mask_fraction, "n_cuboids": n_cuboids}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

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
        self.log("val/contrastive_accuracy", contrastive_accuracy(views["contrastive"]), batch_size=b, sync_dist=True)
        if batch_idx == 0:
            return {"images": {k: views[k][:1].detach().float().cpu() for k in ("rotated", "masked", "reconstruction")}}
        return {}

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup)

    def configure_callbacks(self) -> list[pl.Callback]:
        return [ReconstructionImages()]


class DiseaseAwarePretrainModule(SSLPretrainModule):
    """Stage 2: the same objectives on the target data set's images, starting from Stage 1.

    ``backbone.init_from`` (a Stage-1 checkpoint) is required. When the channel count changes (UK
    Biobank T1, FLAIR -> BraTS flair, t1ce, t1, t2), the patch embedding is adapted by
    ``backbone.modality_map`` (e.g. :data:`~brainsegfounder.models.weights.UKB_TO_BRATS`) and
    rescaled so its response to equal mapped channels is the source's, instead of being re-initialised.

    Example:
        >>> from brainsegfounder.models.backbone import Backbone
        >>> from brainsegfounder.tasks.ssl import DiseaseAwarePretrainModule
        >>> DiseaseAwarePretrainModule(backbone=Backbone(preset="tiny"))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        brainsegfounder.utils.errors.WeightsError: Stage 2 (disease-aware pretraining) starts from a Stage-1 checkpoint...
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.backbone.init_from:
            raise WeightsError("Stage 2 (disease-aware pretraining) starts from a Stage-1 checkpoint: set "
                               "model.backbone.init_from to it (e.g. runs/ukb/stage1/version_0/checkpoints/last.ckpt).")
