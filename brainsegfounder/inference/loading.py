"""Checkpoints as eval-mode modules for prediction: loading, the device, what ensemble members must share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from brainsegfounder.checkpoints import modalities_of, refuse_non_finite
from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.data.transforms import PreprocessingRecord
from brainsegfounder.utils.errors import ConfigError, WeightsError

__all__ = ["accepted_missing", "check_ensemble", "load_segmentation", "resolve_device"]


def load_segmentation(path: str | Path, device: torch.device):
    """A segmentation checkpoint as an eval-mode module on ``device`` (``weights_only``; old formats too).

    Read by :func:`~brainsegfounder.utils.safe_load.safe_load` (a file carrying code is refused as such,
    never run); weights holding NaN/Inf are refused by name, since they would segment nothing.
    """
    # Imported here: Lightning and the network are only needed once checkpoints are read.
    from brainsegfounder.tasks.segmentation import SegmentationModule

    module = SegmentationModule.from_checkpoint(path, map_location=device).eval()
    refuse_non_finite(module.state_dict(), f"--ckpt {path}")
    return module


def _record(module) -> PreprocessingRecord | None:
    return module.preprocessing_record


def _describe(module) -> dict:
    """What ensemble members must agree on."""
    record = _record(module)
    scheme: RegionScheme = module.scheme
    return {"input channels": int(module.hparams.in_channels), "modalities": modalities_of(module),
            "regions": (scheme.names, scheme.labels, scheme.paint),
            "spacing": record.spacing if record else None,
            "crop_to_brain": bool(record.crop_to_brain) if record else False}


def check_ensemble(modules: Sequence, paths: Sequence[str | Path]) -> None:
    """Refuse members that do not share input channels, modalities, regions and preprocessing.

    A :class:`WeightsError` names the first checkpoint that differs from the first one; a member
    that does not record its modalities (an older checkpoint) is not compared on them.
    """
    reference = _describe(modules[0])
    for module, path in zip(modules[1:], paths[1:], strict=True):
        for key, value in _describe(module).items():
            if key == "modalities" and (value is None or reference[key] is None):
                continue  # an older checkpoint that did not record them
            if value != reference[key]:
                raise WeightsError(f"checkpoints {paths[0]} and {path} differ in {key} "
                                   f"({reference[key]} vs {value}); an ensemble needs members "
                                   "trained on the same inputs and regions.")


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu "
                          "or install a CUDA build of torch.")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: choose auto, cpu or cuda.")
    return torch.device(name)


def accepted_missing(module) -> tuple[str, ...]:
    """The modalities a segmentation module was trained to do without (its record's ``accepts_missing``)."""
    record = _record(module)
    return tuple(record.accepts_missing) if record is not None else ()


