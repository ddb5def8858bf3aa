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

import contextlib
import json
import sys
from pathlib import Path
from typing import Literal

from brainsegfounder.utils.cli import command
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["export", "main"]


#: What each format writes into ``--out`` (an existing one is refused unless ``--overwrite``).
#: (onnx and torchscript share ``model_card.json``: one folder may hold both exports of one checkpoint.)
WRITES = {"onnx": ("model.onnx",), "torchscript": ("model.ts",),
          "bundle": ("models/model.pt", "configs/metadata.json", "configs/inference.json", "docs/README.md")}


def export(ckpt: str, format: Literal["onnx", "torchscript", "bundle"], out: str,
           tolerance: float = 1e-3, overwrite: bool = False) -> dict:
    """Export a segmentation checkpoint and check it against PyTorch.

    Args:
        ckpt: a segmentation checkpoint written by ``python -m brainsegfounder.fit``.
        format: ``onnx`` (at the checkpoint's window size, dynamic batch), ``torchscript`` (traced at the
            checkpoint's window size) or ``bundle`` (a MONAI Bundle folder).
        out: output folder (created).
        tolerance: largest accepted absolute logit difference against PyTorch.
        overwrite: replace the files of an earlier export in ``out`` (refused otherwise).

    Returns:
        What was written and the measured differences.
    """
    if format not in WRITES:
        raise ConfigError(f"--format {format!r}: choose onnx, torchscript or bundle.")
    folder = Path(out).expanduser()
    existing = [folder / name for name in WRITES[format] if (folder / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists (an earlier export?): choose another --out, or pass "
                          "--overwrite to replace it.")
    from brainsegfounder.inference.engines import load_segmentation_module

    module = load_segmentation_module(ckpt)
    card = folder / "model_card.json"
    if format != "bundle" and card.exists() and not overwrite and _card_text(module) != card.read_text():
        raise ConfigError(f"{card} describes another checkpoint: choose another --out for {ckpt}, or pass "
                          "--overwrite to replace that folder's exports.")
    created = not folder.exists()
    try:
        _check_writable(folder)  # one line naming the folder, before a minute of tracing
        return _export(module, ckpt, format, folder, tolerance)
    except BaseException:
        if created:  # a refusal or failure leaves no empty folder behind
            _remove_empty_tree(folder)
        raise


def _check_writable(folder: Path) -> None:
    probe = folder / ".bsf-write-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataError(f"cannot write into {folder}: {err.strerror or err}; choose another --out.") from None


def _export(module, ckpt: str, format: str, folder: Path, tolerance: float) -> dict:
    import torch

    from brainsegfounder.inference import engines as ex

    roi = module.roi_size
    x = torch.randn(1, int(module.hparams.in_channels), *roi, generator=torch.Generator().manual_seed(0))
    report: dict = {"format": format, "checkpoint": str(ckpt)}
    try:
        path = _write(module, format, folder, ex)
    except OSError as err:
        raise DataError(f"cannot write the {format} export into {folder}: {err.strerror or err}; free space "
                        "or choose another --out.") from None
    if format == "onnx":
        report["max_abs_logit_difference"] = ex.verify(module, path, torch.cat([x, -x]))  # batch of 2
    elif format == "torchscript":
        report["max_abs_logit_difference"] = ex.verify(module, torch.jit.load(str(path)), x)
    difference = report.get("max_abs_logit_difference", 0.0)
    if difference > tolerance:
        raise ConfigError(f"the {format} export of {ckpt} differs from PyTorch by {difference:.2e} in the "
                          f"logits (tolerance {tolerance:g}); do not use {path}. Try --format torchscript.")
    report["path"] = str(path)
    print(json.dumps(report))  # noqa: T201
    return report


def _write(module, format: str, folder: Path, ex) -> Path:
    """Write the export (and its model card) into ``folder``; returns the model's path."""
    if format == "onnx":
        path = ex.export_onnx(module, folder / "model.onnx")
    elif format == "torchscript":
        path = ex.export_torchscript(module, folder / "model.ts")
    else:
        return ex.export_bundle(module, folder)
    (folder / "model_card.json").write_text(_card_text(module))
    return path


def _card_text(module) -> str:
    from brainsegfounder.inference.engines import model_card

    return json.dumps(model_card(module), indent=2) + "\n"


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` and its sub-folders if no file is in them (anything with a file stays)."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def main(argv: list[str] | None = None) -> None:
    command(export, argv, prog="python -m brainsegfounder.export")


if __name__ == "__main__":
    main(sys.argv[1:])
