"""Predict end to end vs MONAI's sliding-window inference alone, on one BraTS-sized case.

Ours: :func:`brainsegfounder.predict.predict` on four NIfTI files already on disk (240 x 240 x 155,
1 mm, the BraTS grid): load the checkpoint, read and decompress the files, preprocess (canonical,
z-score), MONAI Gaussian sliding window, threshold, paint the label map, write it (gzip) and the
volumes table. Baseline: ``monai.inferers.sliding_window_inference`` alone on the already-loaded,
already-normalised tensor with the same network and window settings. The ratio says what the
command costs beyond the network's own work (target: at most 10%).

The network is the tiny preset (depths 2-2-2-2, feature size 48, 62 M parameters), untrained
(speed does not depend on the weights), 96^3 windows, overlap 0.5, 2 windows per batch, fp32 on
CPU. Quick mode uses a smaller case (128 x 128 x 96) and feature size 24; ``full=True`` the
BraTS size and the preset's feature size 48.

    python -m benchmarks.inference           # quick
    python -m benchmarks.inference --full    # the figure reported
    python -m benchmarks.inference --full --repeats 2
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio
from monai.inferers import sliding_window_inference

from benchmarks.common import Result, machine, time_repeats

__all__ = ["run"]

BRATS_SHAPE = (240, 240, 155)
QUICK_SHAPE = (128, 128, 96)
MODALITIES = ("flair", "t1ce", "t1", "t2")


def _write_case(folder: Path, shape: tuple[int, int, int], seed: int = 0) -> list[Path]:
    """Four skull-stripped-looking float32 volumes (a brain-shaped ellipsoid of noise), 1 mm RAS."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid ** 2).sum(0) < 0.8
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    paths = []
    for modality in MODALITIES:
        data = (rng.normal(100, 20, shape) * brain).astype(np.float32)
        path = folder / f"{folder.name}_{modality}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), path)
        paths.append(path)
    return paths


def _checkpoint(path: Path, feature_size: int) -> None:
    """A real Lightning checkpoint of an untrained tiny module (``Trainer.save_checkpoint``)."""
    import pytorch_lightning as pl

    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    model = SegmentationModule(backbone=Backbone("tiny", feature_size), in_channels=4, regions="brats2021",
                               modalities=list(MODALITIES), roi_size=96, sw_batch_size=2, sw_overlap=0.5)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path, weights_only=True)


def run(full: bool = False, repeats: int | None = None) -> list[Result]:
    """Time predict end to end against sliding-window inference alone; one :class:`Result` row."""
    from rich.console import Console

    from brainsegfounder.predict import Predictor, predict

    shape = BRATS_SHAPE if full else QUICK_SHAPE
    feature_size = 48 if full else 24
    repeats = repeats or 3
    with tempfile.TemporaryDirectory(prefix="bsf-bench-") as tmp:
        tmp = Path(tmp)
        files = _write_case(tmp / "BraTS2021_99999", shape)
        ckpt = tmp / "tiny.ckpt"
        _checkpoint(ckpt, feature_size)
        quiet = Console(stderr=True, quiet=True)

        def ours() -> None:
            predict([ckpt], files, tmp / "out", overwrite=True, device="cpu", console=quiet)

        # The baseline's input: the same case, read and preprocessed once, outside the timing.
        predictor = Predictor.from_checkpoints([ckpt], device="cpu")
        images = {m: tio.ScalarImage(p) for m, p in zip(MODALITIES, files, strict=True)}
        subject = predictor.transform()(tio.Subject(images))
        x = torch.cat([subject[m].data for m in MODALITIES]).unsqueeze(0).float()
        module = predictor.modules[0]

        def baseline() -> None:
            with torch.inference_mode():
                sliding_window_inference(x, (96, 96, 96), 2, module, overlap=0.5, mode="gaussian")

        # Interleaved, so that load from other users of the machine falls on both alike.
        ours_samples, baseline_samples = [], []
        ours()  # warm-up: first-touch allocations, lazy imports
        for _ in range(repeats):
            baseline_samples += time_repeats(baseline, repeats=1, warmup=0)
            ours_samples += time_repeats(ours, repeats=1, warmup=0)
    size = "x".join(map(str, shape))
    return [Result(
        name=f"predict one case {size} x 4 end to end vs sliding window alone",
        ours="brainsegfounder.predict.predict (read NIfTI, preprocess, infer, write label + volumes)",
        baseline="monai sliding_window_inference on the loaded tensor",
        unit="seconds", ours_samples=ours_samples, baseline_samples=baseline_samples,
        target_op="<=", target=1.10,
        note=f"tiny preset, feature size {feature_size}, roi 96, overlap 0.5, sw batch 2, fp32 CPU",
        extra={"shape": list(shape), "feature_size": feature_size, "machine": machine()},
    )]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="BraTS size (240x240x155x4), feature size 48")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of each side (default 3)")
    args = parser.parse_args()
    for result in run(full=args.full, repeats=args.repeats):
        print(f"{result.name}: ours {result.ours_median:.2f} s, baseline {result.baseline_median:.2f} s, "
              f"ratio {result.ratio:.3f} (target {result.target_op} {result.target}), "
              f"samples ours {[round(s, 2) for s in result.ours_samples]}, "
              f"baseline {[round(s, 2) for s in result.baseline_samples]}")
