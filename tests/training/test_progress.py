"""The progress bar of step-based runs says "step 3/3", not "Epoch 1/-2", and shows no v_num."""

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
                     "metrics": self.bar.get_metrics(trainer, pl_module)}


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
