"""GPU training step of BrainSegFounder-Small at 96^3 in bf16-mixed, with and without gradient checkpointing.

    python -m benchmarks.gpu_step               # needs one CUDA GPU; prints a table and writes JSON
    python -m benchmarks.gpu_step --steps 30 --batch 2 --out runs/bench/gpu_step.json

Each configuration runs real ``Trainer.fit`` steps of the segmentation task on random 4-channel
volumes with random BraTS labels (the data path is not what is measured here); a callback times
every optimiser step with CUDA synchronisation and reads ``torch.cuda.max_memory_allocated``.
The first ``--warmup`` steps (cuDNN autotuning, allocator growth) are left out of the timing.
Both configurations run in the same process, one after the other, so their ratio is a fair
comparison on that card.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import machine
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule


class RandomBraTS(Dataset):
    """Random 4-channel volumes with BraTS 2021 labels (0, 1, 2, 4), ``side``^3 voxels."""

    def __init__(self, n: int, side: int):
        self.n, self.side = n, side

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        s = self.side
        label = torch.tensor([0, 1, 2, 4])[torch.randint(0, 4, (1, s, s, s), generator=g)].float()
        images = {m: torch.randn(1, s, s, s, generator=g) for m in ("flair", "t1ce", "t1", "t2")}
        return {**images, "label": label}


class StepTimer(pl.Callback):
    """Seconds per optimiser step (CUDA-synchronised) and the peak allocated memory."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)


def measure(checkpointing: bool, steps: int, warmup: int, batch: int, side: int, preset: str) -> dict:
    model = SegmentationModule(backbone=Backbone(preset, gradient_checkpointing=checkpointing), in_channels=4,
                               regions="brats2021", loss="dice", roi_size=side,
                               modalities=["flair", "t1ce", "t1", "t2"])
    loader = DataLoader(RandomBraTS((steps + warmup) * batch, side), batch_size=batch, num_workers=4,
                        pin_memory=True)
    timer = StepTimer()
    trainer = pl.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=steps + warmup,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer], limit_val_batches=0)
    torch.cuda.empty_cache()
    trainer.fit(model, train_dataloaders=loader)
    timed = timer.times[warmup:]
    return {"gradient_checkpointing": checkpointing, "steps_timed": len(timed),
            "step_s_median": statistics.median(timed), "step_s_min": min(timed), "step_s_max": max(timed),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "batch": batch, "side": side, "preset": preset, "precision": "bf16-mixed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--out", default="runs/bench/gpu_step.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu_step needs a CUDA GPU")
    pl.seed_everything(0, verbose=False)
    rows = [measure(c, args.steps, args.warmup, args.batch, args.side, args.preset) for c in (False, True)]
    plain, ckpt = rows
    summary = {"machine": machine(), "rows": rows,
               "checkpointing_time_ratio": ckpt["step_s_median"] / plain["step_s_median"],
               "checkpointing_memory_ratio": ckpt["peak_memory_gib"] / plain["peak_memory_gib"]}
    print(f"{'grad. checkpointing':>20} {'step s (median)':>16} {'peak GiB':>9}")  # noqa: T201
    for r in rows:
        print(f"{str(r['gradient_checkpointing']):>20} {r['step_s_median']:>16.3f} {r['peak_memory_gib']:>9.2f}")  # noqa: T201
    print(f"with/without: time x{summary['checkpointing_time_ratio']:.2f}, "  # noqa: T201
          f"memory x{summary['checkpointing_memory_ratio']:.2f} on {summary['machine']['cuda']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
