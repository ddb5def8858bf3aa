"""last.ckpt is the last training state, and a resume keeps the best score and continues.

Lightning 2.6 refreshed last.ckpt only when the monitored metric improved, so a step-based run
whose last validation did not improve left last.ckpt at an earlier step, and `--ckpt_path last`
retrained steps already done.
"""

import warnings

import pytorch_lightning as pl
import torch

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from brainsegfounder.training.checkpointing import BestAndLastCheckpoint


def _trainer(tmp_path, run: str, max_steps: int) -> tuple[pl.Trainer, BestAndLastCheckpoint]:
    ckpt = BestAndLastCheckpoint(dirpath=tmp_path / run, monitor="val/dice_mean", mode="max", filename="best-{step}")
    trainer = pl.Trainer(accelerator="cpu", max_steps=max_steps, val_check_interval=2, check_val_every_n_epoch=None,
                         limit_val_batches=1, num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False, default_root_dir=tmp_path,
                         callbacks=[ckpt])
    return trainer, ckpt


def _parts(root):
    # lr 0: every validation scores the same, so only the first one is a "best" (ties do not improve).
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4, roi_size=64, lr=0.0, sw_overlap=0.0)
    data = SegmentationDataModule(root=str(root), patch_size=64, batch_size=1, samples_per_volume=1, queue_length=2,
                                  num_workers=0, validate="off", n_folds=5)
    return model, data


def test_last_ckpt_holds_the_final_step_when_the_last_validation_does_not_improve(brats2021_root, tmp_path):
    pl.seed_everything(0)
    trainer, ckpt = _trainer(tmp_path, "first", max_steps=4)
    trainer.fit(*_parts(brats2021_root))
    assert torch.load(ckpt.best_model_path, weights_only=True)["global_step"] == 2
    last = torch.load(tmp_path / "first" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4

    # Resume into a new folder (a new version_N): the best score is kept, no step is redone, and
    # Lightning's "dirpath has changed" / "not resumable" warnings do not appear.
    trainer, resumed = _trainer(tmp_path, "second", max_steps=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(*_parts(brats2021_root), ckpt_path=tmp_path / "first" / "last.ckpt")
    texts = [str(w.message) for w in caught]
    assert not [t for t in texts if "dirpath has changed" in t or "unreliable results" in t], texts
    assert resumed.best_model_path == ckpt.best_model_path  # tie at step 6: the step-2 best stands
    assert float(resumed.best_model_score) == float(ckpt.best_model_score)
    assert torch.load(tmp_path / "second" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert (tmp_path / "first" / "last.ckpt").exists() and ckpt.best_model_path  # nothing of the first run lost
