"""Export a segmentation checkpoint: ONNX, TorchScript or a MONAI Bundle folder, checked on the way.

::

    python -m brainsegfounder.export --ckpt runs/brats/last.ckpt --format onnx --out exported/
    python -m brainsegfounder.export --ckpt runs/brats/last.ckpt --format bundle --out bundle/

Every export is compared with PyTorch on random windows of the checkpoint's ``roi_size`` (ONNX
on a batch of two: its batch axis is dynamic, its spatial size fixed, see
:func:`brainsegfounder.inference.engines.export_onnx`); a difference above the tolerance is an error. Beside ``model.onnx``
and ``model.ts`` a ``model_card.json`` records the preprocessing and the region scheme; a bundle
keeps them in ``configs/metadata.json``. Details: ``docs/export.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from brainsegfounder.utils.cli import command
from brainsegfounder.utils.errors import ConfigError

__all__ = ["export", "main"]


def export(ckpt: str, format: Literal["onnx", "torchscript", "bundle"], out: str,
           tolerance: float = 1e-3) -> dict:
    """Export a segmentation checkpoint and check it against PyTorch.

    Args:
        ckpt: a segmentation checkpoint written by ``python -m brainsegfounder.fit``.
        format: ``onnx`` (at the checkpoint's window size, dynamic batch), ``torchscript`` (traced at the
            checkpoint's window size) or ``bundle`` (a MONAI Bundle folder).
        out: output folder (created).
        tolerance: largest accepted absolute logit difference against PyTorch.

    Returns:
        What was written and the measured differences.
    """
    import torch

    from brainsegfounder.inference import engines as ex

    module = ex.load_segmentation_module(ckpt)
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    roi = module.roi_size
    x = torch.randn(1, int(module.hparams.in_channels), *roi, generator=torch.Generator().manual_seed(0))
    report: dict = {"format": format, "checkpoint": str(ckpt)}
    if format == "onnx":
        path = ex.export_onnx(module, folder / "model.onnx")
        report["max_abs_logit_difference"] = ex.verify(module, path, torch.cat([x, -x]))  # batch of 2
    elif format == "torchscript":
        path = ex.export_torchscript(module, folder / "model.ts")
        report["max_abs_logit_difference"] = ex.verify(module, torch.jit.load(str(path)), x)
    elif format == "bundle":
        path = ex.export_bundle(module, folder)
    else:
        raise ConfigError(f"--format {format!r}: choose onnx, torchscript or bundle.")
    if format != "bundle":
        (folder / "model_card.json").write_text(json.dumps(ex.model_card(module), indent=2) + "\n")
    difference = report.get("max_abs_logit_difference", 0.0)
    if difference > tolerance:
        raise ConfigError(f"the {format} export of {ckpt} differs from PyTorch by {difference:.2e} in the "
                          f"logits (tolerance {tolerance:g}); do not use {path}. Try --format torchscript.")
    report["path"] = str(path)
    print(json.dumps(report))  # noqa: T201
    return report


def main(argv: list[str] | None = None) -> None:
    command(export, argv, prog="python -m brainsegfounder.export")


if __name__ == "__main__":
    main(sys.argv[1:])
