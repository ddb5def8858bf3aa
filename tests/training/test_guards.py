"""A run that goes non-finite stops at once, names the step and subjects, and saves nothing."""

import nibabel as nib
import numpy as np
import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from brainsegfounder.training.guards import FiniteGuard, NonFiniteError


def test_all_zero_modality_stops_training_and_leaves_no_checkpoint(brats2021_copy, tmp_path):
    # Every subject's T1ce all zero: z-scoring divides 0 by 0. The data check would refuse this
    # up front; here it is switched off to prove the second line of defence.
    for path in brats2021_copy.glob("*/*_t1ce.nii.gz"):
        image = nib.load(path)
        nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), path)
    pl.seed_everything(0)
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=4, roi_size=64, lr=1e-3)
    data = SegmentationDataModule(root=str(brats2021_copy), patch_size=64, batch_size=1, samples_per_volume=1,
                                  queue_length=2, num_workers=0, validate="off")
    ckpt_dir = tmp_path / "ckpts"
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False, num_sanity_val_steps=0,
                         val_check_interval=1, check_val_every_n_epoch=None, default_root_dir=tmp_path,
                         callbacks=[FiniteGuard(), ModelCheckpoint(ckpt_dir, monitor="val/dice_mean", mode="max",
                                                                   save_last=True)])
    with pytest.raises(NonFiniteError) as err:
        trainer.fit(model, datamodule=data)
    text = str(err.value)
    assert "at step" in text and "BraTS2021_" in text and "no checkpoint" in text
    assert not ckpt_dir.exists() or not list(ckpt_dir.glob("*.ckpt"))
