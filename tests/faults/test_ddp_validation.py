"""Uneven DDP validation shards: each subject counts once in the synced metrics."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.reproducible import shard_for_ranks
from brainsegfounder.tasks.segmentation import SegmentationModule
from tests.conftest import DEMO, REPO
from tests.faults.conftest import write_case


def test_shards_are_padded_to_equal_length_and_mark_the_repeats():
    shares = [shard_for_ranks(list(range(3)), 2, rank) for rank in (0, 1)]
    assert [list(s) for s in shares] == [[0, 2], [1, 0]]  # equal step counts: no rank waits for ever
    assert [s.counted for s in shares] == [2, 1]  # subject 0 on rank 1 is padding, weighted 0
    assert shard_for_ranks(list(range(3)), 1, 0) is None


@pytest.mark.slow  # two gloo processes plus a one-process validation: about two minutes on two busy cores
def test_two_process_validation_mean_equals_the_one_process_mean_over_three_subjects(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        write_case(root, f"BraTS2021_0000{i}", seed=i)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "brainsegfounder.fit", "--config", str(DEMO), f"--data.init_args.root={root}",
               "--data.init_args.n_folds=2", "--data.init_args.test_fold=null", "--data.init_args.batch_size=1",
               "--data.init_args.samples_per_volume=1",
               "--data.init_args.queue_length=2", "--data.init_args.num_workers=0",
               f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
               "--trainer.max_steps=1", "--trainer.val_check_interval=1", "--trainer.num_sanity_val_steps=0",
               "--trainer.devices=2", "--trainer.strategy=ddp", "--quiet=true"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    # A timeout, not a hang: ranks with unequal validation work must still finish.
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    version = run / "finetune" / "version_0"
    rows = [r for r in csv.DictReader(open(version / "metrics.csv")) if r.get("val/dice_mean")]
    synced = float(rows[-1]["val/dice_mean"])

    data = SegmentationDataModule(root=str(root), n_folds=2, fold=0, patch_size=64, batch_size=1, num_workers=0,
                                  validate="off")
    data.setup("validate")
    assert len(data.val_cases) == 3
    model = SegmentationModule.from_checkpoint(version / "checkpoints" / "last.ckpt")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False)
    per_subject = []
    for case in data.val_cases:
        one = SegmentationDataModule(root=str(root), n_folds=2, fold=0, patch_size=64, batch_size=1,
                                     num_workers=0, validate="off")
        one.setup("validate")
        one.val_cases = [case]
        per_subject.append(trainer.validate(model, datamodule=one, verbose=False)[0]["val/dice_mean"])
    assert synced == pytest.approx(sum(per_subject) / 3, abs=1e-8)
    # Rank 0 validates subjects (0, 2), rank 1 (1, 0 repeated): the mean of the ranks' means
    # (what sync_dist gives) differs, so the test tells the two apart.
    d0, d1, d2 = per_subject
    assert abs(((d0 + d2) / 2 + (d1 + d0) / 2) / 2 - synced) > 1e-6, per_subject
