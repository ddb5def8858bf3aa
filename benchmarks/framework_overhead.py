"""Row 2: time per training step through Lightning (``Trainer.fit``, our module) vs a bare PyTorch loop.

Both train the same network (identical initial weights), on the same in-memory batches, with the
same loss (MONAI ``DiceLoss`` + binary cross-entropy), AdamW and warm-up cosine schedule (MONAI ``WarmupCosineSchedule``).
A step is timed from the start of one step to the start of the next, so everything the
framework does per step (hooks, logging, the scheduler, fetching the next batch) is inside it;
start-up (building the trainer, the first step) is not. Rounds of each alternate, so that load on a
shared machine falls on both alike.

Example:
    >>> from benchmarks.framework_overhead import run  # doctest: +SKIP
    >>> run()[0].ratio  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import tempfile
import time

import pytorch_lightning as pl
import torch

from benchmarks.common import Result

__all__ = ["run", "StepTimer", "make_batches", "lightning_steps", "bare_steps"]

MODALITIES = ["flair", "t1ce", "t1", "t2"]


class StepTimer(pl.Callback):
    """Seconds from the start of each training step to the start of the next (the last one ends
    at ``on_train_end``). ``startup`` is the time from ``on_fit_start`` to the first step."""

    def __init__(self):
        self.starts: list[float] = []
        self.fit_start = self.end = 0.0

    def on_fit_start(self, trainer, pl_module):
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.end = time.perf_counter()

    @property
    def steps(self) -> list[float]:
        marks = [*self.starts, self.end]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def make_batches(n: int, batch_size: int, patch: int, seed: int = 0) -> list[dict]:
    """``n`` batches as our data module yields them: one tensor per modality and a BraTS label map."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        batch = {m: torch.randn(batch_size, 1, patch, patch, patch, generator=g) for m in MODALITIES}
        labels = torch.tensor([0, 1, 2, 4], dtype=torch.uint8)
        batch["label"] = labels[torch.randint(0, 4, (batch_size, 1, patch, patch, patch), generator=g)]
        batch["subject_id"] = [f"case{i}" for i in range(batch_size)]
        batches.append(batch)
    return batches


def _loader(batches):
    # Batches are ready-made: batch_size=None hands each one over as it is.
    return torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)


def lightning_steps(model: pl.LightningModule, batches: list[dict]) -> tuple[list[float], float]:
    """Train ``model`` for one pass over ``batches`` with ``Trainer.fit``: per-step seconds, start-up seconds."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as log_dir:
        trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=len(batches),
                             logger=pl.loggers.CSVLogger(log_dir), log_every_n_steps=5,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                             callbacks=[timer], default_root_dir=log_dir)
        trainer.fit(model, train_dataloaders=_loader(batches))
    return timer.steps, timer.starts[0] - timer.fit_start


def bare_steps(model, batches: list[dict], lr: float, weight_decay: float, warmup_steps: int) -> list[float]:
    """The same training written as a plain PyTorch loop: per-step seconds."""
    from monai.optimizers import WarmupCosineSchedule

    net, loss_fn, scheme = model.net, model.loss_fn, model.scheme
    net.train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=warmup_steps, t_total=len(batches))
    starts = []
    for batch in _loader(batches):
        starts.append(time.perf_counter())
        x = torch.cat([batch[m] for m in MODALITIES], dim=1).float()
        y = scheme.to_regions(batch["label"])
        loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    starts.append(time.perf_counter())
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def run(full: bool = False, preset: str | None = None, feature_size: int | None = None,
        patch: int | None = None, batch_size: int | None = None, steps: int | None = None,
        rounds: int | None = None) -> list[Result]:
    """Measure row 2. Defaults: tiny preset, feature size 12, 64^3, batch 1, 2 rounds of 4 steps
    (``full``: small preset, feature size 48, 96^3, batch 2, 3 rounds of 8 steps)."""
    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    preset = preset or ("small" if full else "tiny")
    feature_size = feature_size or (48 if full else 12)
    patch = patch or (96 if full else 64)
    batch_size = batch_size or (2 if full else 1)
    steps = steps or (8 if full else 4)
    rounds = rounds or (3 if full else 2)
    lr, weight_decay, warmup = 1e-4, 1e-5, 0.05
    pl.seed_everything(0, verbose=False)
    template = SegmentationModule(backbone=Backbone(preset, feature_size), in_channels=4, regions="brats2021",
                                  modalities=MODALITIES, loss="dicebce", lr=lr, weight_decay=weight_decay,
                                  warmup=warmup, roi_size=patch)
    batches = make_batches(steps, batch_size, patch)
    warmup_steps = min(int(round(warmup * steps)), steps - 1)
    ours, base, startup = [], [], []
    for _ in range(rounds):
        # Drop each run's first step: it pays one-off allocation and dispatch warm-up in both.
        lightning, start = lightning_steps(copy.deepcopy(template), batches)
        ours += lightning[1:]
        startup.append(start)
        base += bare_steps(copy.deepcopy(template), batches, lr, weight_decay, warmup_steps)[1:]
    note = (f"{preset} preset, feature size {feature_size}, {patch}^3, batch {batch_size}, CPU fp32, "
            f"{rounds} alternating rounds of {steps} steps (first step of each dropped); Lightning with "
            "CSVLogger, no progress bar or checkpointing; a step is start-to-start. Trainer start-up "
            f"(not in the ratio): median {sorted(startup)[len(startup) // 2]:.2g} s.")
    return [Result(name="2. framework overhead", ours="Trainer.fit + SegmentationModule",
                   baseline="bare PyTorch loop", unit="s/step", ours_samples=ours, baseline_samples=base,
                   target_op="<=", target=1.05, note=note,
                   extra={"startup_s": startup, "preset": preset, "feature_size": feature_size,
                          "patch": patch, "batch_size": batch_size, "steps_per_round": steps})]


if __name__ == "__main__":
    for row in run():
        print(row.to_dict())
