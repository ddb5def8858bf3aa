"""The progress bar of step-based runs says "step 3/3", not "Epoch 1/-2", and shows no v_num.

It also tells the truth about time: its clock and rate run across queue "epochs" (Lightning resets
both at every one, and the bar once read ``100/100 0:00:14 • 26.35it/s`` for minutes of work).
"""

import time

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from brainsegfounder.training.progress import StepProgressBar


class _Seen(pl.Callback):
    """What the bar shows when training ends (the bar hides its tasks afterwards)."""

    def __init__(self, bar: StepProgressBar):
        self.bar, self.seen = bar, {}

    def on_train_end(self, trainer, pl_module):
        task = next(t for t in self.bar.progress.tasks if t.id == self.bar.train_progress_bar_id)
        self.seen = {"description": task.description, "completed": task.completed, "total": task.total,
                     "metrics": self.bar.get_metrics(trainer, pl_module), "elapsed": task.elapsed,
                     "speed": task.speed}


class _SlowSteps(pl.Callback):
    """Every training batch takes at least ``seconds`` more, so the true rate is known from above."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, None

    def on_train_start(self, trainer, pl_module):
        self.started = time.monotonic()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        time.sleep(self.seconds)


def test_step_based_run_shows_global_steps_across_queue_epochs_and_no_version(brats2021_root, tmp_path):
    pl.seed_everything(0)
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4, roi_size=64)
    # 2 training subjects x 1 patch: each queue "epoch" is 2 batches of 1, so 3 steps cross an epoch.
    data = SegmentationDataModule(root=str(brats2021_root), patch_size=64, batch_size=1, samples_per_volume=1,
                                  queue_length=2, num_workers=0, validate="off", train_count=2)
    bar = StepProgressBar()
    seen = _Seen(bar)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, limit_val_batches=0, logger=CSVLogger(tmp_path),
                         enable_model_summary=False, callbacks=[bar, seen], use_distributed_sampler=False)
    trainer.fit(model, datamodule=data)
    assert trainer.current_epoch >= 1  # the run did cross a queue epoch
    assert seen.seen["description"].strip() == "step"
    assert (seen.seen["completed"], seen.seen["total"]) == (3, 3)
    assert "v_num" not in seen.seen["metrics"] and "train/loss" in seen.seen["metrics"]


def test_clock_and_rate_run_across_queue_epochs(brats2021_root, tmp_path):
    pl.seed_everything(0)
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4, roi_size=64)
    data = SegmentationDataModule(root=str(brats2021_root), patch_size=64, batch_size=1, samples_per_volume=1,
                                  queue_length=2, num_workers=0, validate="off", train_count=2)
    bar, slow = StepProgressBar(), _SlowSteps(0.5)
    seen = _Seen(bar)
    trainer = pl.Trainer(accelerator="cpu", max_steps=5, limit_val_batches=0, logger=CSVLogger(tmp_path),
                         enable_model_summary=False, callbacks=[bar, slow, seen], use_distributed_sampler=False)
    trainer.fit(model, datamodule=data)
    wall = time.monotonic() - slow.started
    assert trainer.current_epoch >= 2  # 5 steps of 2-batch queue epochs: the clock survived two resets
    assert (seen.seen["completed"], seen.seen["total"]) == (5, 5)
    # The clock covers the whole run, not only the last queue epoch (which was one step of five).
    assert 0.8 * wall <= seen.seen["elapsed"] <= wall + 1.0
    # The rate is near the true one (5 steps in `wall` seconds; the first step is the slowest, so
    # the rate between steps may read a little higher), never the jumps of a reset count.
    assert seen.seen["speed"] is not None and seen.seen["speed"] <= 2.0 * 5 / wall
    assert seen.seen["speed"] >= 0.5 * 5 / wall
