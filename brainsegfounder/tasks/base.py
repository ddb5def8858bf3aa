"""What every task shares: the injected backbone, its input channels, its weights and its record.

:class:`BackboneTask` is the base of segmentation fine-tuning and both SSL stages. It receives a
:class:`~brainsegfounder.models.backbone.Backbone`, the modalities (names in channel order, usually
linked from the data module by ``fit``), loads ``backbone.init_from`` once before training, freezes
the encoder for ``backbone.freeze_encoder_epochs`` (or the whole run, ``backbone.freeze_encoder``), and stores the data layer's
:class:`~brainsegfounder.data.transforms.PreprocessingRecord` in every checkpoint, so predictors
repeat training's preprocessing.

Example:
    >>> from brainsegfounder.models.backbone import Backbone
    >>> from brainsegfounder.tasks.segmentation import SegmentationModule
    >>> from brainsegfounder.tasks.ssl import SSLPretrainModule
    >>> backbone = Backbone(preset="tiny", feature_size=12)
    >>> seg = SegmentationModule(backbone=backbone, modalities=["t1", "flair"], regions="lesion")
    >>> ssl = SSLPretrainModule(backbone=backbone, modalities=["t1", "flair"])
    >>> seg.backbone is ssl.backbone, seg.hparams.in_channels, seg.hparams.backbone["preset"]
    (True, 2, 'tiny')
"""

from __future__ import annotations

import inspect
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch

from brainsegfounder.checkpoints import PREPROCESSING_KEY, read_checkpoint
from brainsegfounder.data.transforms import PreprocessingRecord
from brainsegfounder.models.backbone import Backbone, upgrade_hparams
from brainsegfounder.utils.errors import DataError, WeightsError

__all__ = ["BackboneTask"]


class BackboneTask(pl.LightningModule):
    """Base of every task: backbone, modalities, weight import, encoder freezing, preprocessing record.

    Subclasses call :meth:`init_backbone` first in ``__init__``, after ``save_hyperparameters()``,
    then build ``self.net`` (whose encoder is ``self.net.swinViT``) with ``self.backbone``.
    """

    #: What a subclass's network is: set by :meth:`init_backbone`.
    backbone: Backbone
    net: torch.nn.Module

    def init_backbone(self, backbone: Backbone | Mapping | None, in_channels: int | None,
                      modalities: Sequence[str] | None, default_channels: int) -> int:
        """Record the backbone and channels; returns the number of input channels to build for."""
        self.backbone = Backbone.from_value(backbone)
        # A plain dict in the hyper-parameters: checkpoints must load with weights_only=True.
        self.set_hparam("backbone", self.backbone.to_dict())
        self.modalities = list(modalities) if modalities else None
        if in_channels is None:
            in_channels = len(self.modalities) if self.modalities else default_channels
        if self.modalities is not None and len(self.modalities) != in_channels:
            raise DataError(f"model.in_channels is {in_channels} but {len(self.modalities)} modalities "
                            f"{self.modalities} were given; give one of them (fit takes both from the data).")
        self.set_hparam("in_channels", int(in_channels))
        self.import_report = None
        self.preprocessing_record: PreprocessingRecord | None = None
        return int(in_channels)

    def set_hparam(self, key: str, value) -> None:
        """Replace a saved hyper-parameter (also the copy loggers write) by its plain, checkpoint-safe form."""
        self.hparams[key] = value
        if key in getattr(self, "_hparams_initial", {}):
            self._hparams_initial[key] = value

    # -- before training ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None:
            if self.modalities is None:
                self.modalities = list(dm.modalities)
                self.hparams["modalities"] = self.modalities  # recorded, so later stages map channels by name
            if list(dm.modalities) != list(self.modalities):
                raise DataError(f"the model takes modalities {self.modalities} but the data gives "
                                f"{list(dm.modalities)}; set data.modalities (fit links the model to it).")
        if self.modalities is not None and len(self.modalities) != self.hparams.in_channels:
            raise DataError(f"model.in_channels is {self.hparams.in_channels} but the data gives "
                            f"{len(self.modalities)} modalities {self.modalities}; set model.in_channels "
                            f"to {len(self.modalities)}.")
        if stage == "fit":
            self.load_init_weights(verbose=self.trainer.is_global_zero)

    def load_init_weights(self, verbose: bool = True):
        """Load ``backbone.init_from`` once (a resumed checkpoint, loaded later, then takes precedence)."""
        if self.import_report is None:
            self.import_report = self.backbone.load_weights(self.net, self.modalities, verbose=verbose)
        return self.import_report

    def on_train_epoch_start(self) -> None:
        # Toggled after the optimiser was built (it holds every parameter); AdamW skips
        # parameters without gradients, so frozen ones stay exactly as loaded.
        frozen = self.backbone.freeze_encoder or self.current_epoch < self.backbone.freeze_encoder_epochs
        for p in self.net.swinViT.parameters():
            p.requires_grad_(not frozen)

    # -- what prediction needs to know ---------------------------------------------------------------
    def record_fields(self) -> dict:
        """Fields of the :class:`PreprocessingRecord` this task knows itself (a subclass adds its own)."""
        return {"modalities": tuple(self.modalities or ())}

    def current_preprocessing_record(self) -> PreprocessingRecord | None:
        """The data module's record when it has one, else one built from what this task knows."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        record = getattr(dm, "preprocessing_record", None)  # the data layer's typed record
        if record is not None:
            return record
        fields = self.record_fields()
        return PreprocessingRecord(**fields) if fields.get("modalities") else self.preprocessing_record

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record = self.current_preprocessing_record()
        checkpoint[PREPROCESSING_KEY] = record.to_dict() if record is not None else None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Old checkpoints stored a plain dict (modalities, layout, spacing, crop_to_brain): from_dict reads both.
        self.preprocessing_record = PreprocessingRecord.from_dict(checkpoint.get(PREPROCESSING_KEY))

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu", **overrides):
        """Load a checkpoint with ``weights_only=True``, also one written before :class:`Backbone` existed.

        Hyper-parameters are upgraded (:func:`~brainsegfounder.models.backbone.upgrade_hparams`), the
        weights loaded strictly, and the preprocessing record read back.
        """
        path = Path(path).expanduser()
        checkpoint = _load(path, map_location)
        # LightningCLI records how it built the module (`_class_path`, `_instantiator`): not arguments.
        hparams = upgrade_hparams({k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
                                   if not k.startswith("_")})
        hparams["backbone"] = {**hparams.get("backbone", {}), "init_from": None}  # the weights are here
        # fit links every data-given argument (regions, roi_size) to the model and the saved
        # hyper-parameters keep them, also for a task that takes none (SSL): pass only what it takes.
        accepted = _init_arguments(cls)
        hparams = {k: v for k, v in hparams.items() if accepted is None or k in accepted}
        try:
            module = cls(**{**hparams, **overrides})
            module.load_state_dict(checkpoint["state_dict"], strict=True)
        except (TypeError, RuntimeError) as err:
            raise WeightsError(f"checkpoint {path} does not fit {cls.__name__} ({type(err).__name__}: {err}). "
                               f"Pass a checkpoint that `python -m brainsegfounder.fit` wrote for this task.") from None
        module.on_load_checkpoint(checkpoint)
        return module.to(map_location)


def _init_arguments(cls) -> set[str] | None:
    """The keyword arguments ``cls(...)`` takes (through ``*args, **kwargs`` pass-throughs); ``None``: any."""
    for klass in cls.__mro__:
        parameters = inspect.signature(klass.__init__).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return None


def _load(path: Path, map_location) -> dict:
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist. Pass the .ckpt file a fit run wrote "
                           "(runs/<name>/finetune/version_N/checkpoints/best-*.ckpt or last.ckpt).")
    # Mapped, not read: a training checkpoint also holds the optimiser's state (2x the weights for
    # AdamW), which loading a module never touches; read in, it would stay in the process's memory.
    checkpoint = read_checkpoint(path, what="checkpoint", map_location=map_location,
                                 mmap=zipfile.is_zipfile(path))  # the one loader
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise WeightsError(f"checkpoint {path} is not a task checkpoint (no 'state_dict'); pass a .ckpt file "
                           "written by `python -m brainsegfounder.fit`.")
    return checkpoint
